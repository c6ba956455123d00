"""What statistics and reports read of one experiment's events (synchronous: a reader
thread, one snapshot), through the `experiment_id` column and its index:

- `metric_values`: one value per event, its measurement `metric`, grouped by a
  metadata key and keyed, for paired tests, by another;
- `metadata_keys_naming`: the top-level metadata keys that take every group a test
  names as a value (its group_field, when the test gives none);
- `measurement_series`: each (event name, measurement) averaged per time bucket, for a
  report's "telemetry over time" (the averaging in SQL: a report never holds events).

`owner` None reads every owner's events (an admin), a name only that owner's. Each read
is bounded: a test's values and the metadata keys by `max_rows` (the newest events for
the keys; a test refuses more), a report's series by a sample past `max_events`.
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from collections.abc import Sequence

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


def metadata_keys_naming(
    conn: sqlite3.Connection, experiment_id: str, owner: str | None, groups: Sequence[str], max_rows: int
) -> list[str]:
    """The top-level metadata keys that take every one of `groups` as a value in the
    experiment's newest `max_rows` events."""
    scope, params = _scope(experiment_id, owner)
    wanted = set(groups)
    # Text values are matched in SQL, so a key of many values (an item id) is not
    # gathered whole; numbers and booleans are few, and turned into keys here.
    marks = ",".join("?" * len(wanted))
    sql = (
        f"SELECT DISTINCT m.key, m.type, m.atom FROM "
        f"(SELECT metadata FROM events WHERE {scope} ORDER BY ts DESC LIMIT ?) e, json_each(e.metadata) m "
        f"WHERE m.type IN ('integer', 'real', 'true', 'false') OR (m.type = 'text' AND m.atom IN ({marks}))"
    )
    taken: dict[str, set[str]] = defaultdict(set)
    for key, kind, atom in conn.execute(sql, [*params, max_rows, *wanted]):
        text = key_text(kind, atom)
        if text in wanted:
            taken[str(key)].add(text)
    return sorted(key for key, values in taken.items() if values == wanted)


# Over more events than a report reads, it reads about that many, a sample spread over
# the whole experiment: the events whose id hashes (Knuth's multiplicative hash of its
# low 20 bits, so a pattern in arrival order does not line up with the stride) to 0
# modulo the stride.
_SAMPLED = "(((id % 1048576) * 2654435761) >> 16) % ? = 0"


def measurement_series(
    conn: sqlite3.Connection,
    experiment_id: str,
    owner: str | None,
    points: int,
    max_series: int,
    max_events: int,
) -> list[TelemetryPoint]:
    """Each measurement of each event name of the experiment, averaged over at most
    `points` equal buckets of whole seconds spanning its events (series
    `<event name>.<measurement>`, value the bucket's mean, count the events averaged);
    the `max_series` series with the most values. Past `max_events` events, over a
    sample of about that many."""
    scope, params = _scope(experiment_id, owner)
    total, first, last = conn.execute(f"SELECT count(*), min(ts), max(ts) FROM events WHERE {scope}", params).fetchone()
    if not total:
        return []
    stride = -(-total // max(1, max_events))
    if stride > 1:
        scope += f" AND {_SAMPLED}"
        params.append(stride)
    width = max(1000, -(-(last - first + 1) // max(1, points)))
    width = -(-width // 1000) * 1000  # whole seconds
    sql = (
        "SELECT e.name_id, m.key, (e.ts - ?) / ? AS bucket, avg(m.value), count(*) "
        f"FROM (SELECT name_id, ts, measurements FROM events WHERE {scope}) e, json_each(e.measurements) m "
        "WHERE m.type IN ('integer', 'real') GROUP BY e.name_id, m.key, bucket"
    )
    names = name_table(conn)
    cells: dict[str, list[tuple[int, float, int]]] = defaultdict(list)
    for name_id, key, bucket, mean, count in conn.execute(sql, [first, width, *params]):
        cells[f"{names.get(name_id, '')}.{key}"].append((int(bucket), float(mean), int(count)))
    chosen = sorted(cells, key=lambda series: (-sum(c[2] for c in cells[series]), series))[:max_series]
    return [
        TelemetryPoint(timestamp=from_ms(first + bucket * width), series=series, value=mean, count=count)
        for series in sorted(chosen)
        for bucket, mean, count in sorted(cells[series])
    ]
