"""Cluster mode: sandboxes on the nodes of a Ray cluster (docs/cluster.md).

Only `placement` and `status` are free of Ray; the rest imports it and is loaded only
when `cluster` is set or `appliance node` runs.
"""
