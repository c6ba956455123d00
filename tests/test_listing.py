"""The list query builder every list of the experiments API shares (store/listing.py), on
a real SQLite file: NULLs in the sort column, sorts by a JSON field, ties, every filter
kind, and signed cursors (core/listing.py)."""

from __future__ import annotations

import json

import pytest

from appliance.core.errors import ValidationError
from appliance.core.listing import (
    Filter,
    FilterOp,
    ListQuery,
    Position,
    SortKey,
    decode_cursor,
    encode_cursor,
)
from appliance.store.database import Database
from appliance.store.listing import ListTable, fetch_page

TABLE = ListTable(
    table="things",
    id_column="id",
    columns={"name": "name", "score": "score", "done": "done", "at": "at"},
    prefix_columns={"metrics.": "json_extract(metrics, ?)"},
)
# id, name, score (nullable), done, at, metrics
ROWS = [
    ("t1", "a", 3.0, 1, "2024-01-01T00:00:00.000Z", {"loss": 0.5}),
    ("t2", "b", None, 0, "2024-01-02T00:00:00.000Z", {}),
    ("t3", "c", 1.0, 1, "2024-01-03T00:00:00.000Z", {"loss": 0.1}),
    ("t4", "d", 3.0, 0, "2024-01-04T00:00:00.000Z", {"loss": 0.9}),
    ("t5", "e", None, 1, "2024-01-05T00:00:00.000Z", {"loss": 0.3}),
    ("t6", "f", 2.0, 0, "2024-01-06T00:00:00.000Z", {}),
]


@pytest.fixture
async def db(tmp_path):
    database = Database(tmp_path / "appliance.db")
    await database.open()
    async with database.write() as conn:
        await conn.execute(
            "CREATE TABLE things (id TEXT PRIMARY KEY, name TEXT, score REAL, done INTEGER, at TEXT, metrics TEXT)"
        )
        for row in ROWS:
            await conn.execute("INSERT INTO things VALUES (?, ?, ?, ?, ?, ?)", (*row[:5], json.dumps(row[5])))
    yield database
    await database.close()


def query(sort: str, descending: bool = False, per_page: int = 25, **kwargs) -> ListQuery:
    return ListQuery(list_name="things", sort=SortKey(sort, descending), per_page=per_page, **kwargs)


async def ids(db, q: ListQuery) -> list[str]:
    page = await fetch_page(db, TABLE, q, lambda row: row["id"])
    return page.items


async def walk(db, q: ListQuery) -> list[str]:
    """Every id, page after page from each page's last position."""
    seen: list[str] = []
    while True:
        page = await fetch_page(db, TABLE, q, lambda row: row["id"])
        seen += page.items
        if not page.has_more:
            return seen
        assert page.last is not None
        q = ListQuery(
            list_name=q.list_name, sort=q.sort, filters=q.filters, per_page=q.per_page, page=None, after=page.last
        )


async def test_nulls_come_last_either_way_and_ties_go_by_id(db):
    assert await ids(db, query("score")) == ["t3", "t6", "t1", "t4", "t2", "t5"]
    assert await ids(db, query("score", descending=True)) == ["t4", "t1", "t6", "t3", "t5", "t2"]
    for per_page in (1, 2, 4):
        assert await walk(db, query("score", per_page=per_page)) == ["t3", "t6", "t1", "t4", "t2", "t5"]
        assert await walk(db, query("score", True, per_page)) == ["t4", "t1", "t6", "t3", "t5", "t2"]


async def test_sort_by_a_json_field_named_after_a_prefix(db):
    assert await ids(db, query("metrics.loss")) == ["t3", "t5", "t1", "t4", "t2", "t6"]
    assert await walk(db, query("metrics.loss", True, 1)) == ["t4", "t1", "t5", "t3", "t6", "t2"]
    with pytest.raises(ValueError):
        TABLE.expression('metrics.a"b')
    with pytest.raises(ValueError):
        TABLE.expression("colour")


async def test_page_numbers_total_and_has_more(db):
    page = await fetch_page(db, TABLE, query("name", per_page=4, page=2), lambda row: row["id"])
    assert page.items == ["t5", "t6"] and page.total == 6 and not page.has_more and page.page == 2
    first = await fetch_page(db, TABLE, query("name", per_page=4), lambda row: row["id"])
    assert first.has_more and first.last == Position(value="d", id="t4")


async def test_every_filter_kind_and_a_scope(db):
    def with_filters(*filters: Filter) -> ListQuery:
        return query("name", filters=filters)

    assert await ids(db, with_filters(Filter("done", FilterOp.EQUALS, (1,)))) == ["t1", "t3", "t5"]
    assert await ids(db, with_filters(Filter("name", FilterOp.EQUALS, ("a", "f")))) == ["t1", "t6"]
    assert await ids(db, with_filters(Filter("at", FilterOp.AT_OR_AFTER, ("2024-01-05T00:00:00.000Z",)))) == [
        "t5",
        "t6",
    ]
    assert await ids(db, with_filters(Filter("at", FilterOp.BEFORE, ("2024-01-02T00:00:00.000Z",)))) == ["t1"]
    assert await ids(db, with_filters(Filter("name", FilterOp.CONTAINS, ("C",)))) == ["t3"]
    scoped = await fetch_page(
        db, TABLE, with_filters(Filter("done", FilterOp.EQUALS, (0,))), lambda r: r["id"], [("score > ?", (1.5,))]
    )
    assert scoped.items == ["t4", "t6"] and scoped.total == 2


def test_cursors_are_signed_and_bound_to_their_query():
    key, other_key = b"k" * 32, b"o" * 32
    q = query("score", True, filters=(Filter("done", FilterOp.EQUALS, (1,)),))
    for position in (Position(value=2.5, id="t9"), Position(value=None, id="t2"), Position(value="x", id="t1")):
        assert decode_cursor(key, encode_cursor(key, q, position), q) == position
    cursor = encode_cursor(key, q, Position(value=2.5, id="t9"))
    for wrong_key, wrong_query in (
        (other_key, q),
        (key, query("score", False, filters=q.filters)),
        (key, query("score", True)),
        (key, ListQuery(list_name="others", sort=q.sort, filters=q.filters)),
    ):
        with pytest.raises(ValidationError) as caught:
            decode_cursor(wrong_key, cursor, wrong_query)
        assert caught.value.details == {"field": "cursor", "reason": caught.value.details["reason"]}
    for garbage in ("", "x", "x.y", cursor.replace(".", ""), "!!!.???"):
        with pytest.raises(ValidationError):
            decode_cursor(key, garbage, q)
