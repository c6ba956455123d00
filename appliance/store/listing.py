"""A `ListQuery` (core/listing.py) as SQL: filters, sort, and a page by number or after a
cursor's position, with every value a bound parameter.

Every list of the experiments API goes through `fetch_page`. The order is always total:
the sort column, then the id as the tiebreak (in the same direction), with NULLs last in
either direction, so a cursor's position (last sort value, last id) says exactly where
the next page starts, and page N+1 starts where page N ended.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TypeVar

import aiosqlite
import msgspec

from appliance.core.listing import Filter, FilterOp, ListPage, ListQuery, Position, SortValue
from appliance.store.database import Database, SqlValue

ItemT = TypeVar("ItemT")

# A WHERE condition and its parameters.
Condition = tuple[str, tuple[SqlValue, ...]]

SORT_VALUE = "_sort_value"  # the column the page's SELECT adds for the cursor


class ListTable(msgspec.Struct, frozen=True, kw_only=True):
    """How a list's fields map onto a table. The expressions are ours, never a caller's:
    a caller names a field, and only fields listed here can be named."""

    table: str
    id_column: str
    columns: Mapping[str, str]  # API field -> SQL expression, for filters and sorts
    # Sort fields by prefix: "metrics." -> "json_extract(metrics, ?)"; the `?` is bound
    # to the JSON path of the name after the prefix ('$."val_loss"').
    prefix_columns: Mapping[str, str] = msgspec.field(default_factory=dict)

    def expression(self, field: str) -> Condition:
        if field in self.columns:
            return self.columns[field], ()
        for prefix, template in self.prefix_columns.items():
            if field.startswith(prefix) and len(field) > len(prefix):
                name = field[len(prefix) :]
                if '"' in name:
                    raise ValueError(f"field name {name!r} cannot be a JSON path key")
                return template, (f'$."{name}"',)
        raise ValueError(f"{self.table} has no list field {field!r}")


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def filter_condition(table: ListTable, item: Filter) -> Condition:
    expression, params = table.expression(item.field)
    if item.op is FilterOp.CONTAINS:
        return f"{expression} LIKE ? ESCAPE '\\'", (*params, f"%{_escape_like(str(item.values[0]))}%")
    if item.op is FilterOp.AT_OR_AFTER:
        return f"{expression} >= ?", (*params, item.values[0])
    if item.op is FilterOp.BEFORE:
        return f"{expression} < ?", (*params, item.values[0])
    if item.op is FilterOp.HAS:
        return f"EXISTS (SELECT 1 FROM json_each({expression}) WHERE json_each.value = ?)", (*params, item.values[0])
    if len(item.values) == 1:
        return f"{expression} = ?", (*params, item.values[0])
    marks = ", ".join("?" for _ in item.values)
    return f"{expression} IN ({marks})", (*params, *item.values)


def _after_condition(expression: str, params: tuple[SqlValue, ...], id_column: str, query: ListQuery) -> Condition:
    """Rows after `query.after` in the order `_order_by` gives (NULLs last)."""
    assert query.after is not None
    position = query.after
    beyond = "<" if query.sort.descending else ">"
    if position.value is None:  # among the NULLs already: only the id goes on
        return f"({expression} IS NULL AND {id_column} {beyond} ?)", (*params, position.id)
    sql = f"({expression} IS NULL OR {expression} {beyond} ? OR ({expression} = ? AND {id_column} {beyond} ?))"
    return sql, (*params, *params, position.value, *params, position.value, position.id)


def _order_by(expression: str, params: tuple[SqlValue, ...], id_column: str, descending: bool) -> Condition:
    direction = "DESC" if descending else "ASC"
    return f"({expression} IS NULL), {expression} {direction}, {id_column} {direction}", (*params, *params)


def _where(conditions: list[Condition]) -> Condition:
    if not conditions:
        return "", ()
    sql = " WHERE " + " AND ".join(f"({c})" for c, _ in conditions)
    return sql, tuple(p for _, params in conditions for p in params)


def _sort_value(row: aiosqlite.Row) -> SortValue:
    value = row[SORT_VALUE]
    if isinstance(value, bytes):
        raise TypeError("a list cannot be sorted on a blob column")
    result: SortValue = value
    return result


async def fetch_page(
    db: Database,
    table: ListTable,
    query: ListQuery,
    convert: Callable[[aiosqlite.Row], ItemT],
    scope: list[Condition] | None = None,
) -> ListPage[ItemT]:
    """The page `query` asks for, of the rows `scope` (e.g. the caller's own) allows."""
    conditions = list(scope or []) + [filter_condition(table, f) for f in query.filters]
    where, where_params = _where(conditions)
    total = await db.fetch_count(f"SELECT count(*) FROM {table.table}{where}", where_params)

    expression, sort_params = table.expression(query.sort.field)
    if query.after is not None:
        conditions.append(_after_condition(expression, sort_params, table.id_column, query))
    page_where, page_params = _where(conditions)
    order, order_params = _order_by(expression, sort_params, table.id_column, query.sort.descending)
    sql = f"SELECT *, {expression} AS {SORT_VALUE} FROM {table.table}{page_where} ORDER BY {order} LIMIT ? OFFSET ?"
    params = (*sort_params, *page_params, *order_params, query.per_page + 1, query.offset)
    rows = await db.fetch_all(sql, params)
    has_more = len(rows) > query.per_page
    rows = rows[: query.per_page]
    last = Position(value=_sort_value(rows[-1]), id=str(rows[-1][table.id_column])) if rows else None
    return ListPage(
        items=[convert(row) for row in rows],
        total=total,
        per_page=query.per_page,
        page=query.page,
        has_more=has_more,
        last=last,
    )
