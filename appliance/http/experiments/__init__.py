"""The experiments API (experiments-api.md) under /api/v1: its router, error shape,
`{data, meta}` envelopes and list parameters, and one module per area."""
