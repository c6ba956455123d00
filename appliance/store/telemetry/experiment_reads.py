"""What statistics and reports read of one experiment's events (synchronous: a reader
thread, one snapshot), through the `experiment_id` column and its index:

- `metric_values`: one value per event, its measurement `metric`, grouped by a
  metadata key and keyed, for paired tests, by another;
- `metadata_values`: the scalar values each top-level metadata key takes (which key
  names every group a test asks for);
- `measurement_series`: each (event name, measurement) averaged per time bucket, for a
  report's "telemetry over time".

`owner` None reads every owner's events (an admin), a name only that owner's. Each read
is bounded: at most `max_rows` events are read, the newest when there are more.
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict

from appliance.core.reports import TelemetryPoint
from appliance.core.statistics import KeyedValue
from appliance.core.telemetry import from_ms
from appliance.store.database import SqlValue
from appliance.store.telemetry.queries import name_table

# json_type of the metadata values that name a group or an item; objects, arrays and
# null do not.
SCALAR_TYPES = ("text", "integer", "real", "true", "false")
_SCALARS = ",".join(f"'{t}'" for t in SCALAR_TYPES)


class TooManyEvents(Exception):
    """A read would take more than `limit` events."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"more than {limit} events")
        self.limit = limit


def json_path(keys: str) -> str:
    """`a.b` -> `$."a"."b"`: a dotted metadata path (core/telemetry.py METADATA_PATH,
    whose keys hold no quote) as a JSON path."""
    parts = keys.split(".")
    if any('"' in part or "\\" in part or not part for part in parts):
        raise ValueError(f"{keys!r} is not a metadata path")
    return "$" + "".join(f'."{part}"' for part in parts)


def _scope(experiment_id: str, owner: str | None, alias: str = "") -> tuple[str, list[SqlValue]]:
    where = f"{alias}experiment_id = ?"
    params: list[SqlValue] = [experiment_id]
    if owner is not None:
        where += f" AND {alias}owner = ?"
        params.append(owner)
    return where, params


def key_text(kind: str | None, value: SqlValue) -> str | None:
    """A scalar metadata value as a group or item key: text as it is, whole numbers
    without a fraction (1.0 is "1", as the runs' source has it), true/false as words."""
    if kind not in SCALAR_TYPES or value is None:
        return None
    if kind in ("true", "false"):
        return kind
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def metric_values(
    conn: sqlite3.Connection,
    experiment_id: str,
    owner: str | None,
    metric: str,
    group_path: str,
    pair_path: str | None,
    max_rows: int,
) -> list[KeyedValue]:
    """Every event of the experiment with measurement `metric` and a scalar at
    `group_path` in its metadata, oldest first; TooManyEvents past `max_rows`."""
    scope, params = _scope(experiment_id, owner)
    pair_sql = "json_type(metadata, ?), json_extract(metadata, ?)" if pair_path else "NULL, NULL"
    pair_params = [pair_path, pair_path] if pair_path else []
    sql = (
        f"SELECT json_extract(measurements, ?) AS value, json_type(metadata, ?) AS kind, "
        f"json_extract(metadata, ?), {pair_sql} FROM events "
        f"WHERE {scope} AND value IS NOT NULL AND kind IN ({_SCALARS}) ORDER BY ts, id LIMIT ?"
    )
    rows = conn.execute(sql, [f'$."{metric}"', group_path, group_path, *pair_params, *params, max_rows + 1]).fetchall()
    if len(rows) > max_rows:
        raise TooManyEvents(max_rows)
    found = []
    for value, kind, group, pair_kind, pair in rows:
        name = key_text(kind, group)
        if name is None or not isinstance(value, int | float):
            continue
        found.append(KeyedValue(group=name, value=float(value), pair=key_text(pair_kind, pair)))
    return found


def metadata_values(
    conn: sqlite3.Connection, experiment_id: str, owner: str | None, max_rows: int
) -> dict[str, set[str]]:
    """The scalar values each top-level metadata key takes in the experiment's newest
    `max_rows` events."""
    scope, params = _scope(experiment_id, owner)
    sql = (
        f"SELECT DISTINCT m.key, m.type, m.atom FROM "
        f"(SELECT metadata FROM events WHERE {scope} ORDER BY ts DESC LIMIT ?) e, json_each(e.metadata) m "
        f"WHERE m.type IN ({_SCALARS})"
    )
    taken: dict[str, set[str]] = defaultdict(set)
    for key, kind, atom in conn.execute(sql, [*params, max_rows]):
        text = key_text(kind, atom)
        if text is not None:
            taken[str(key)].add(text)
    return dict(taken)


def measurement_series(
    conn: sqlite3.Connection,
    experiment_id: str,
    owner: str | None,
    points: int,
    max_series: int,
    max_rows: int,
) -> list[TelemetryPoint]:
    """Each measurement of each event name of the experiment, averaged over at most
    `points` equal buckets of whole seconds spanning its events (series
    `<event name>.<measurement>`, value the bucket's mean, count its events); the
    `max_series` series with the most values; over the newest `max_rows` events."""
    scope, params = _scope(experiment_id, owner)
    cutoff = conn.execute(
        f"SELECT ts FROM events WHERE {scope} ORDER BY ts DESC LIMIT 1 OFFSET ?", [*params, max_rows - 1]
    ).fetchone()
    if cutoff is not None:
        scope += " AND ts >= ?"
        params.append(cutoff[0])
    first, last = conn.execute(f"SELECT min(ts), max(ts) FROM events WHERE {scope}", params).fetchone()
    if first is None:
        return []
    width = max(1000, -(-(last - first + 1) // max(1, points)))
    width = -(-width // 1000) * 1000  # whole seconds
    scoped, scoped_params = _scope(experiment_id, owner, "e.")
    if cutoff is not None:
        scoped += " AND e.ts >= ?"
        scoped_params.append(cutoff[0])
    sql = (
        "SELECT e.name_id, m.key, (e.ts - ?) / ? AS bucket, avg(m.value), count(*) "
        f"FROM events e, json_each(e.measurements) m WHERE {scoped} AND m.type IN ('integer', 'real') "
        "GROUP BY e.name_id, m.key, bucket"
    )
    names = name_table(conn)
    cells: dict[str, list[tuple[int, float, int]]] = defaultdict(list)
    for name_id, key, bucket, mean, count in conn.execute(sql, [first, width, *scoped_params]):
        cells[f"{names.get(name_id, '')}.{key}"].append((int(bucket), float(mean), int(count)))
    chosen = sorted(cells, key=lambda series: (-sum(c[2] for c in cells[series]), series))[:max_series]
    return [
        TelemetryPoint(timestamp=from_ms(first + bucket * width), series=series, value=mean, count=count)
        for series in sorted(chosen)
        for bucket, mean, count in sorted(cells[series])
    ]
