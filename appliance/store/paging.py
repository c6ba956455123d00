"""Ordering and keyset pagination for the experiment and run lists.

A page after a cursor continues strictly after the (sort value, id) of the previous
page's last item, so rows added or removed meanwhile shift nothing. A nullable sort
column (a metric a run may not report, a start time a pending run lacks) puts its NULLs
last in either direction.
"""

from __future__ import annotations

from collections.abc import Sequence

import aiosqlite
import msgspec

from appliance.core.experiments import ListCursor, SortValue
from appliance.store.database import SqlValue


class Ordering(msgspec.Struct, frozen=True, kw_only=True):
    column: str  # an SQL expression; never caller text (a metric's path is a parameter)
    params: tuple[SqlValue, ...] = ()  # the expression's own parameters
    descending: bool = True
    nullable: bool = False

    def order_by(self) -> tuple[str, list[SqlValue]]:
        way = "DESC" if self.descending else "ASC"
        if self.nullable:
            return f"({self.column}) IS NULL, {self.column} {way}, id {way}", [*self.params, *self.params]
        return f"{self.column} {way}, id {way}", list(self.params)

    def after(self, cursor: ListCursor) -> tuple[str, list[SqlValue]]:
        """The condition for rows strictly after `cursor` in this order."""
        op = "<" if self.descending else ">"
        col, p = self.column, list(self.params)
        if not self.nullable:
            return f"({col}, id) {op} (?, ?)", [*p, cursor.value, cursor.id]
        if cursor.value is None:
            return f"({col}) IS NULL AND id {op} ?", [*p, cursor.id]
        return (
            f"((({col}) IS NOT NULL AND ({col}, id) {op} (?, ?)) OR ({col}) IS NULL)",
            [*p, *p, cursor.value, cursor.id, *p],
        )


def where_sql(conditions: Sequence[str]) -> str:
    return f"WHERE {' AND '.join(conditions)}" if conditions else ""


def cursor_of(row: aiosqlite.Row) -> ListCursor:
    """The cursor after `row`, which must hold `sort_value` and `id` columns."""
    value: SortValue = row["sort_value"]
    return ListCursor(value=value, id=row["id"])
