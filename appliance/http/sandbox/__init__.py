"""The sandbox API (sandbox-api.md): sync execution, sandboxes, files, snapshots,
templates, alerts, API keys. Errors here use that document's shape (see http/errors.py)."""
