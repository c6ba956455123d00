"""Reading events (synchronous: a reader thread): filters as SQL, pages, counts, spans,
and chunks of an export.

Counting uses the rollups where they can answer (no experiment filter): whole hours
from the cells, the partial hours at the range's ends from the events themselves.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from appliance.core.telemetry import EventFilter
from appliance.store.database import SqlValue
from appliance.store.telemetry.rollups import ALL_NAMES, EVENTS_MEASUREMENT, HOUR_MS

# (start, end) in ms of a stretch read from the events themselves; None: open
Edge = tuple[int | None, int | None]


def name_table(conn: sqlite3.Connection) -> dict[int, str]:
    return {row[0]: row[1] for row in conn.execute("SELECT id, name FROM event_names")}


def name_ids(f: EventFilter, names: dict[int, str]) -> list[int] | None:
    """The ids of the names the filter takes; None when it takes every name."""
    if not f.by_name:
        return None
    wanted = set(f.names)
    prefixes = tuple(p + "." for p in f.name_prefixes)
    return sorted(
        i for i, name in names.items() if name in wanted or name in f.name_prefixes or name.startswith(prefixes)
    )


def conditions(f: EventFilter, ids: Sequence[int] | None, edge: Edge | None = None) -> tuple[list[str], list[SqlValue]]:
    """WHERE conditions on the events table (names resolved to `ids`); `edge` narrows
    the time range further."""
    where: list[str] = []
    params: list[SqlValue] = []
    if ids is not None:
        where.append(f"name_id IN ({','.join('?' * len(ids))})")
        params.extend(ids)
    if f.experiment_id is not None:
        where.append("experiment_id = ?")
        params.append(f.experiment_id)
    low, high = f.after_ms, f.before_ms
    if edge is not None:
        low = edge[0] if low is None or (edge[0] is not None and edge[0] > low) else low
        high = edge[1] if high is None or (edge[1] is not None and edge[1] < high) else high
    if low is not None:
        where.append("ts >= ?")
        params.append(low)
    if high is not None:
        where.append("ts < ?")
        params.append(high)
    if f.owner is not None:
        where.append("owner = ?")
        params.append(f.owner)
    return where, params


def where_sql(where: list[str]) -> str:
    return (" WHERE " + " AND ".join(where)) if where else ""


def split_range(after_ms: int | None, before_ms: int | None) -> tuple[int | None, int | None, list[Edge]]:
    """The whole hours of [after, before) (hour starts in seconds, None: open) that the
    rollups answer, and the partial stretches at its ends that the events answer."""
    hour_from = None if after_ms is None else -(-after_ms // HOUR_MS) * 3600
    hour_to = None if before_ms is None else before_ms // HOUR_MS * 3600
    if hour_from is not None and hour_to is not None and hour_from >= hour_to:
        return hour_from, hour_from, [(after_ms, before_ms)]  # no whole hour inside
    edges: list[Edge] = []
    if after_ms is not None and hour_from is not None and after_ms < hour_from * 1000:
        edges.append((after_ms, hour_from * 1000))
    if before_ms is not None and hour_to is not None and hour_to * 1000 < before_ms:
        edges.append((hour_to * 1000, before_ms))
    return hour_from, hour_to, edges


def cell_conditions(
    measurement: str,
    hour_from: int | None,
    hour_to: int | None,
    ids: Sequence[int] | None,
    by_name: bool,
    owner: str | None,
) -> tuple[str, list[SqlValue]]:
    where = ["measurement = ?"]
    params: list[SqlValue] = [measurement]
    if hour_from is not None:
        where.append("hour >= ?")
        params.append(hour_from)
    if hour_to is not None:
        where.append("hour < ?")
        params.append(hour_to)
    if ids is not None:
        where.append(f"name_id IN ({','.join('?' * len(ids))})")
        params.extend(ids)
    elif by_name:
        where.append("name_id != ?")
        params.append(ALL_NAMES)
    else:
        where.append("name_id = ?")
        params.append(ALL_NAMES)
    if owner is not None:
        where.append("owner = ?")
        params.append(owner)
    return " AND ".join(where), params


def count_events(conn: sqlite3.Connection, f: EventFilter, ids: Sequence[int] | None) -> int:
    if ids is not None and not ids:
        return 0
    if f.experiment_id is not None:
        where, params = conditions(f, ids)
        return int(conn.execute(f"SELECT count(*) FROM events{where_sql(where)}", params).fetchone()[0])
    hour_from, hour_to, edges = split_range(f.after_ms, f.before_ms)
    total = 0
    if hour_from is None or hour_to is None or hour_from < hour_to:
        cells, params = cell_conditions(EVENTS_MEASUREMENT, hour_from, hour_to, ids, False, f.owner)
        total += int(conn.execute(f"SELECT coalesce(sum(count), 0) FROM rollups WHERE {cells}", params).fetchone()[0])
    for edge in edges:
        where, params = conditions(f, ids, edge)
        total += int(conn.execute(f"SELECT count(*) FROM events{where_sql(where)}", params).fetchone()[0])
    return total


def time_span(conn: sqlite3.Connection, f: EventFilter, ids: Sequence[int] | None) -> tuple[int, int] | None:
    """The first and last timestamp (ms) of the events the filter takes; None for none."""
    if ids is not None and not ids:
        return None
    where, params = conditions(f, ids)
    row = conn.execute(f"SELECT min(ts), max(ts) FROM events{where_sql(where)}", params).fetchone()
    return None if row[0] is None else (int(row[0]), int(row[1]))


# (ts, id, name_id, experiment_id, measurements, metadata)
EventRow = tuple[int, int, int, str | None, str, str]
_EVENT_COLUMNS = "ts, id, name_id, experiment_id, measurements, metadata"


def page_of_events(
    conn: sqlite3.Connection,
    f: EventFilter,
    ids: Sequence[int] | None,
    *,
    descending: bool,
    limit: int,
    offset: int = 0,
    after: tuple[int, int] | None = None,
) -> list[EventRow]:
    """Up to `limit` events in (ts, id) order, after `offset` of them or after the
    position `after` (ts, id) in that order."""
    if ids is not None and not ids:
        return []
    where, params = conditions(f, ids)
    if after is not None:
        where.append("(ts, id) < (?, ?)" if descending else "(ts, id) > (?, ?)")
        params.extend(after)
    direction = "DESC" if descending else "ASC"
    sql = (
        f"SELECT {_EVENT_COLUMNS} FROM events{where_sql(where)} "
        f"ORDER BY ts {direction}, id {direction} LIMIT ? OFFSET ?"
    )
    return list(conn.execute(sql, [*params, limit, offset]))
