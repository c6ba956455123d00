"""The warm pool's figures per lane, as the runtime counts them and /api/status shows
them (`sandbox_pool`)."""

from __future__ import annotations

import msgspec


class PoolSize(msgspec.Struct, kw_only=True):
    language: str
    engine: str
    image: str
    idle: int  # ready for the next request
    target: int  # idle containers the pool aims to keep
    creating: int  # being made now
