"""The sandbox API (sandbox-api.md); its router and path spaces are in router.py."""
