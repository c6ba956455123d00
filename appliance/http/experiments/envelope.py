"""experiments-api.md's success bodies: `{"data": ...}` for one item, `{"data": [...],
"meta": {...}}` for a page of a list. Generic Structs, so each operation's schema in
/api/openapi.json names what `data` holds."""

from __future__ import annotations

from typing import Annotated, Generic, TypeVar

import msgspec
from litestar.openapi.spec import OpenAPIFormat
from litestar.params import KwargDefinition

T = TypeVar("T")

# A moment as `iso_z` writes it (`2024-01-15T10:30:00.000Z`): always milliseconds, so two
# timestamps compare as text the way they compare as times. msgspec's own datetime
# encoding drops a zero fraction, and `...:44Z` then sorts after `...:44.010Z`.
Timestamp = Annotated[str, KwargDefinition(format=OpenAPIFormat.DATE_TIME)]


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
