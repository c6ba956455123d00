"""experiments-api.md's success bodies: `{"data": ...}` for one item, `{"data": [...],
"meta": {...}}` for a page of a list. Generic Structs, so each operation's schema in
/api/openapi.json names what `data` holds."""

from __future__ import annotations

from typing import Generic, TypeVar

import msgspec

T = TypeVar("T")


class Item(msgspec.Struct, Generic[T]):
    data: T


class ListMeta(msgspec.Struct, kw_only=True):
    total: int  # items matching the filters, over all pages
    page: int | None  # null when the page was asked for by cursor
    per_page: int
    next_cursor: str | None  # continues after this page; null on the last one
    has_more: bool


class Page(msgspec.Struct, Generic[T], kw_only=True):
    data: list[T]
    meta: ListMeta
