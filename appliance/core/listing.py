"""Lists of the experiments API (experiments, runs, models, ...): which filters and sorts
a list takes, the page a caller asked for, and the opaque cursor that continues it.

The http layer parses a request's `filter[...]`, `sort`, `page`, `per_page` and `cursor`
into a `ListQuery` against the list's `ListSpec`; the store turns a `ListQuery` into SQL
(store/listing.py). A cursor names the last item a page ended with (its sort value and
id) and is signed, so a cursor that was altered, or that belongs to another list, sort
or set of filters, is refused instead of silently paging something else.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from enum import StrEnum
from typing import Generic, TypeVar

import msgspec

from appliance.core.errors import ValidationError

DEFAULT_PER_PAGE = 25
MAX_PER_PAGE = 100


class FilterOp(StrEnum):
    EQUALS = "eq"  # the value, or any of a comma-separated list of values
    CONTAINS = "contains"  # case-insensitive substring
    AT_OR_AFTER = "gte"  # a time at or after the value
    BEFORE = "lt"  # a time strictly before the value
    HAS = "has"  # a JSON array column (tags) holds the value


class ValueKind(StrEnum):
    TEXT = "text"
    CHOICE = "choice"  # one of FilterField.choices
    DATETIME = "datetime"  # ISO 8601; compared as the stored `...Z` text
    BOOLEAN = "boolean"  # true/false (1/0 in the store)


class FilterField(msgspec.Struct, frozen=True, kw_only=True):
    """One `filter[param]` a list accepts, on the item field `field`."""

    param: str
    field: str
    op: FilterOp = FilterOp.EQUALS
    kind: ValueKind = ValueKind.TEXT
    choices: tuple[str, ...] = ()


class ListSpec(msgspec.Struct, frozen=True, kw_only=True):
    """What one list of the API accepts. `name` binds cursors to the list."""

    name: str
    sorts: tuple[str, ...]
    default_sort: str  # e.g. "-created_at"
    filters: tuple[FilterField, ...] = ()
    # Sort fields named by a prefix and any name after it ("metrics." takes
    # "metrics.val_loss"): the store maps the prefix to an expression.
    sort_prefixes: tuple[str, ...] = ()

    def filter_named(self, param: str) -> FilterField | None:
        return next((f for f in self.filters if f.param == param), None)


# A filter's value as the store compares it: text, or 1/0 for a boolean.
FilterValue = str | int


class Filter(msgspec.Struct, frozen=True):
    field: str
    op: FilterOp
    values: tuple[FilterValue, ...]


class SortKey(msgspec.Struct, frozen=True):
    field: str
    descending: bool = False

    @property
    def text(self) -> str:
        return f"-{self.field}" if self.descending else self.field


# A sort column's value as the store holds it.
SortValue = str | int | float | None


class Position(msgspec.Struct, frozen=True):
    """Where a page ended: the last item's sort value and id (the tiebreak)."""

    value: SortValue
    id: str


class ListQuery(msgspec.Struct, frozen=True, kw_only=True):
    """A page of a list: by number (`page`) or after a cursor's position (`after`)."""

    list_name: str
    sort: SortKey
    filters: tuple[Filter, ...] = ()
    per_page: int = DEFAULT_PER_PAGE
    page: int | None = 1  # None when the page is asked for by cursor
    after: Position | None = None

    @property
    def offset(self) -> int:
        return 0 if self.page is None else (self.page - 1) * self.per_page

    def values_of(self, field: str, op: FilterOp = FilterOp.EQUALS) -> tuple[FilterValue, ...]:
        """The values the filter on `field` with `op` asks for; () without one (for a
        store that takes its own typed query instead of `store.listing.fetch_page`)."""
        return next((f.values for f in self.filters if f.field == field and f.op is op), ())


ItemT = TypeVar("ItemT")


class ListPage(msgspec.Struct, Generic[ItemT], kw_only=True):
    """One page of a list, as the store answers it."""

    items: list[ItemT]
    total: int  # items matching the filters, on every page
    per_page: int
    page: int | None
    has_more: bool
    last: Position | None  # the last item's position, for the next cursor


# --- cursors --------------------------------------------------------------------------------

_SIGNATURE_BYTES = 16


def _fingerprint(query: ListQuery) -> str:
    """What a cursor is only good for: this list, this sort, these filters."""
    filters = sorted([f.field, f.op.value, [str(v) for v in f.values]] for f in query.filters)
    text = json.dumps([query.list_name, query.sort.text, filters], separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(key: bytes, payload: bytes) -> bytes:
    return hmac.new(key, payload, hashlib.sha256).digest()[:_SIGNATURE_BYTES]


def encode_cursor(key: bytes, query: ListQuery, position: Position) -> str:
    payload = json.dumps({"l": _fingerprint(query), "v": position.value, "i": position.id}, separators=(",", ":"))
    data = payload.encode()
    return f"{_b64(data)}.{_b64(_sign(key, data))}"


def _bad_cursor(reason: str) -> ValidationError:
    return ValidationError(f"cursor: {reason}", details={"field": "cursor", "reason": reason})


def decode_cursor(key: bytes, text: str, query: ListQuery) -> Position:
    """The position `text` names, for a query with `query`'s list, sort and filters."""
    data_part, dot, signature_part = text.partition(".")
    try:
        data, signature = _unb64(data_part), _unb64(signature_part)
    except (binascii.Error, ValueError):
        raise _bad_cursor("not a cursor this appliance issued; pass next_cursor as it was given") from None
    if not dot or not hmac.compare_digest(signature, _sign(key, data)):
        raise _bad_cursor("not a cursor this appliance issued (or it was changed); pass next_cursor as it was given")
    try:
        payload = json.loads(data)
        fingerprint, value, item_id = payload["l"], payload["v"], payload["i"]
    except (ValueError, KeyError, TypeError):
        raise _bad_cursor("not a cursor this appliance issued") from None
    if fingerprint != _fingerprint(query):
        raise _bad_cursor(
            "this cursor continues a different list, sort or set of filters: "
            "repeat the sort and filter[...] parameters of the request that returned it"
        )
    if not isinstance(item_id, str) or not (value is None or isinstance(value, str | int | float)):
        raise _bad_cursor("not a cursor this appliance issued")
    return Position(value=value, id=item_id)
