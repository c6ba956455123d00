"""The list parameters every list of experiments-api.md takes, parsed against the list's
`ListSpec` (core/listing.py):

- `page` (from 1) and `per_page` (1 to 100, default 25), or `cursor` (the `next_cursor`
  of the page before; not together with `page`);
- `sort`: one of the list's fields, `-` in front for descending;
- `filter[<name>]`: only the filters the list documents; an unknown one, or a value that
  is not one of a field's values, or not a time, is a 422 naming the parameter.

A route takes them as one dependency: `dependencies={"listing": list_parameters(SPEC)}`
and a parameter `listing: ListRequest`; `listing.query` goes to the service and
`listing.page(found, convert)` makes the response.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

import msgspec
from litestar import Request
from litestar.di import Provide
from litestar.params import Parameter

from appliance.core.clock import iso_z
from appliance.core.errors import invalid_fields
from appliance.core.listing import (
    DEFAULT_PER_PAGE,
    MAX_PER_PAGE,
    Filter,
    FilterField,
    FilterOp,
    FilterValue,
    ListPage,
    ListQuery,
    ListSpec,
    Position,
    SortKey,
    ValueKind,
    decode_cursor,
    encode_cursor,
)
from appliance.http.app_state import appliance_of
from appliance.http.experiments.envelope import ListMeta, Page

CURSOR_PURPOSE = "list-cursor"
_FILTER_PARAM = re.compile(r"^filter\[([^\]]*)\]$")
# A name after a sort prefix ("metrics.val_loss"): what a metric's name may hold, and
# never a quote, so it is always one JSON key.
_PREFIXED_NAME = re.compile(r"^[A-Za-z0-9_.:/\- ]{1,128}$")
_TRUE, _FALSE = ("true", "1", "yes"), ("false", "0", "no")

ItemT = TypeVar("ItemT")
BodyT = TypeVar("BodyT")
Problems = dict[str, list[str]]


class ListRequest:
    """A parsed list request: the query for the service, and how to answer it."""

    def __init__(self, query: ListQuery, cursor_key: bytes) -> None:
        self.query = query
        self._cursor_key = cursor_key

    def page(self, found: ListPage[ItemT], convert: Callable[[ItemT], BodyT]) -> Page[BodyT]:
        return self.respond(
            [convert(item) for item in found.items], total=found.total, has_more=found.has_more, last=found.last
        )

    def respond(self, items: list[BodyT], *, total: int, has_more: bool, last: Position | None) -> Page[BodyT]:
        """The page of `items`; `last` is the position (sort value, id) of the last item
        the store returned, from which the next cursor is made."""
        next_cursor = encode_cursor(self._cursor_key, self.query, last) if has_more and last is not None else None
        meta = ListMeta(
            total=total,
            page=self.query.page,
            per_page=self.query.per_page,
            next_cursor=next_cursor,
            has_more=has_more,
        )
        return Page(data=items, meta=meta)


def _whole_number(text: str, name: str, low: int, high: int | None, problems: Problems) -> int | None:
    try:
        value = int(text.strip())
    except ValueError:
        value = None
    if value is None or value < low or (high is not None and value > high):
        bounds = f"from {low} to {high}" if high is not None else f"of at least {low}"
        problems[name] = [f"must be a whole number {bounds}, not {text!r}"]
        return None
    return value


def parse_sort(spec: ListSpec, text: str | None, problems: Problems) -> SortKey:
    raw = (text or spec.default_sort).strip()
    descending = raw.startswith("-")
    field = raw[1:] if descending else raw
    if field in spec.sorts:
        return SortKey(field, descending)
    for prefix in spec.sort_prefixes:
        if field.startswith(prefix) and _PREFIXED_NAME.match(field[len(prefix) :]):
            return SortKey(field, descending)
    choices = [*spec.sorts, *(f"{p}<name>" for p in spec.sort_prefixes)]
    problems["sort"] = [f"cannot sort by {raw!r}; sort by one of {', '.join(choices)} ('-' in front: descending)"]
    return SortKey(spec.default_sort.lstrip("-"), spec.default_sort.startswith("-"))


def _datetime_value(text: str) -> str | None:
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)  # the API speaks UTC
    return iso_z(moment)


def _one_value(field: FilterField, text: str) -> tuple[FilterValue | None, str]:
    """A single filter value as the store compares it, or None and what is wrong."""
    if field.kind is ValueKind.DATETIME:
        moment = _datetime_value(text)
        return moment, f"must be an ISO 8601 time (2024-01-15T10:30:00Z), not {text!r}"
    if field.kind is ValueKind.BOOLEAN:
        lowered = text.strip().lower()
        value = 1 if lowered in _TRUE else 0 if lowered in _FALSE else None
        return value, f"must be true or false, not {text!r}"
    return text, ""


def _filter_values(field: FilterField, raw: list[str], param: str, problems: Problems) -> tuple[FilterValue, ...]:
    """The values of `filter[param]`: a value-list field takes several (comma-separated
    or repeated), any other field exactly one."""
    texts = [p.strip() for v in raw for p in v.split(",")] if field.kind is ValueKind.CHOICE else raw
    texts = [t for t in texts if t.strip()]
    if not texts:
        problems[param] = ["must not be empty"]
        return ()
    if field.kind is ValueKind.CHOICE:
        wrong = [t for t in texts if t not in field.choices]
        if wrong:
            problems[param] = [f"{', '.join(map(repr, wrong))} is not one of {', '.join(field.choices)}"]
        return tuple(texts)
    if len(texts) > 1:
        problems[param] = ["give it once"]
        return ()
    value, problem = _one_value(field, texts[0])
    if value is None:
        problems[param] = [problem]
        return ()
    return (value,)


def parse_filters(spec: ListSpec, request: Request[Any, Any, Any], problems: Problems) -> tuple[Filter, ...]:
    filters: list[Filter] = []
    for param in request.query_params:
        if not param.startswith("filter"):
            continue
        match = _FILTER_PARAM.match(param)
        field = spec.filter_named(match.group(1)) if match else None
        if field is None:
            known = ", ".join(f"filter[{f.param}]" for f in spec.filters) or "none"
            problems[param] = [f"unknown filter; this list takes {known}"]
            continue
        values = _filter_values(field, request.query_params.getall(param), param, problems)
        if param not in problems:
            filters.append(Filter(field.field, field.op, values))
    return tuple(filters)


def parse_list_request(
    spec: ListSpec,
    request: Request[Any, Any, Any],
    page: str | None,
    per_page: str | None,
    sort: str | None,
    cursor: str | None,
) -> ListRequest:
    problems: Problems = {}
    page_number = _whole_number(page, "page", 1, None, problems) if page is not None else 1
    size = _whole_number(per_page, "per_page", 1, MAX_PER_PAGE, problems) if per_page is not None else None
    if cursor is not None and page is not None:
        problems["cursor"] = ["give either page or cursor, not both"]
    query = ListQuery(
        list_name=spec.name,
        sort=parse_sort(spec, sort, problems),
        filters=parse_filters(spec, request, problems),
        per_page=size or DEFAULT_PER_PAGE,
        page=page_number or 1,
    )
    if problems:
        raise invalid_fields(problems)
    key = appliance_of(request.app.state).auth.derived_key(CURSOR_PURPOSE)
    if cursor is not None:
        position = decode_cursor(key, cursor.strip(), query)
        query = msgspec.structs.replace(query, page=None, after=position)
    return ListRequest(query, key)


_PAGE = Parameter(description="page number, from 1 (default 1); not with cursor")
_PER_PAGE = Parameter(description=f"items per page, 1 to {MAX_PER_PAGE} (default {DEFAULT_PER_PAGE})")
_SORT = Parameter(description="field to sort by; '-' in front for descending")
_CURSOR = Parameter(description="next_cursor of the previous page; continues after it")


def list_parameters(spec: ListSpec) -> Provide:
    """The `listing` dependency of a list route. Its signature names the list's own sort
    fields and each `filter[...]` it takes, so /api/openapi.json documents them; the
    filters are read from the query string as a whole (an unknown one is a 422)."""

    async def provide_listing(
        request: Request[Any, Any, Any],
        page: Annotated[str | None, _PAGE] = None,
        per_page: Annotated[str | None, _PER_PAGE] = None,
        sort: Annotated[str | None, _SORT] = None,
        cursor: Annotated[str | None, _CURSOR] = None,
        **_filters: str | None,
    ) -> ListRequest:
        return parse_list_request(spec, request, page, per_page, sort, cursor)

    _document_parameters(provide_listing, spec)
    return Provide(provide_listing)


def _document_parameters(provider: Callable[..., Any], spec: ListSpec) -> None:
    sorts = ", ".join([*spec.sorts, *(f"{prefix}<name>" for prefix in spec.sort_prefixes)])
    sort = Parameter(description=f"one of {sorts}; '-' in front for descending (default {spec.default_sort})")
    annotations = dict(provider.__annotations__)
    annotations["sort"] = Annotated[str | None, sort]
    annotations.pop("_filters", None)
    signature = inspect.signature(provider)
    parameters = [p for p in signature.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
    for index, field in enumerate(spec.filters):
        name = f"filter_{index}"
        annotations[name] = Annotated[str | None, Parameter(query=f"filter[{field.param}]", description=_about(field))]
        parameters.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None))
    provider.__annotations__ = annotations
    provider.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]


_MEANING = {
    FilterOp.EQUALS: "equals the value (a comma-separated list: any of them)",
    FilterOp.CONTAINS: "contains the value (case-insensitive)",
    FilterOp.AT_OR_AFTER: "at or after the value (ISO 8601)",
    FilterOp.BEFORE: "before the value (ISO 8601)",
    FilterOp.HAS: "holds the value",
}


def _about(field: FilterField) -> str:
    about = f"{field.field} {_MEANING[field.op]}"
    if field.choices:
        about += f"; values: {', '.join(field.choices)}"
    if field.kind is ValueKind.BOOLEAN:
        about += "; true or false"
    return about
