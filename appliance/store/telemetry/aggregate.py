"""Aggregates over events (synchronous: a reader thread, one snapshot).

Two ways to an answer:
- the rollups, for what they are keyed by: a measurement (or the events themselves)
  by event name and owner, in whole hours, with intervals of whole hours (1h, 1d, or
  the wider buckets of points=N). The partial hours at a range's ends come from the
  events themselves. count, sum, min, max and avg are exact; percentiles come from
  the cells' sketches (core/telemetry_sketch.py: within 0.5% of the value).
- an exact scan of the events, for everything else (an experiment filter, group_by
  experiment_id or a metadata key, intervals under an hour): bounded by `max_rows`
  (the events the filter takes, counted first); more is refused (TooManyRows).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any

from appliance.core.telemetry import (
    AggregateAnswer,
    AggregatePoint,
    AggregateQuery,
    GroupKind,
    from_ms,
)
from appliance.core.telemetry_sketch import Histogram, exact_quantile
from appliance.store.database import SqlValue
from appliance.store.telemetry.queries import (
    cell_conditions,
    conditions,
    count_events,
    name_ids,
    name_table,
    split_range,
    where_sql,
)
from appliance.store.telemetry.rollups import EVENTS_MEASUREMENT


class TooManyRows(Exception):
    """An exact aggregate would read more events than allowed."""

    def __init__(self, rows: int, limit: int) -> None:
        super().__init__(f"{rows} events, more than {limit}")
        self.rows, self.limit = rows, limit


class _Bucket:
    __slots__ = ("count", "high", "histogram", "low", "total")

    def __init__(self, sketch: bool) -> None:
        self.count = 0
        self.total = 0.0
        self.low: float | None = None
        self.high: float | None = None
        self.histogram = Histogram() if sketch else None

    def add_cell(self, count: int, total: float, low: float | None, high: float | None, sketch: bytes | None) -> None:
        self.count += count
        self.total += total
        if low is not None and (self.low is None or low < self.low):
            self.low = low
        if high is not None and (self.high is None or high > self.high):
            self.high = high
        if self.histogram is not None and sketch:
            self.histogram.merge_encoded(sketch)

    def add_value(self, value: float) -> None:
        self.add_cell(1, value, value, value, None)
        if self.histogram is not None:
            self.histogram.add(value)


def uses_rollups(q: AggregateQuery) -> bool:
    return (
        q.filter.experiment_id is None
        and (q.group_by is None or q.group_by.kind is GroupKind.EVENT_NAME)
        and (q.interval_seconds is None or q.interval_seconds % 3600 == 0)
    )


def aggregate(conn: sqlite3.Connection, q: AggregateQuery, max_rows: int) -> AggregateAnswer:
    names = name_table(conn)
    ids = name_ids(q.filter, names)
    if ids is not None and not ids:
        return AggregateAnswer(points=[], interval_seconds=q.interval_seconds, exact=True)
    if uses_rollups(q):
        return _from_rollups(conn, q, ids, names)
    rows = count_events(conn, q.filter, ids)
    if rows > max_rows:
        raise TooManyRows(rows, max_rows)
    return _exact(conn, q, ids, names)


def _value_sql(metric: str | None) -> tuple[str, list[SqlValue]]:
    if metric is None:
        return "1", []
    return "json_extract(measurements, ?)", [f'$."{metric}"']


def _from_rollups(
    conn: sqlite3.Connection, q: AggregateQuery, ids: list[int] | None, names: dict[int, str]
) -> AggregateAnswer:
    sketch = q.agg.quantile is not None
    by_name = q.group_by is not None
    interval = q.interval_seconds
    buckets: dict[tuple[int | None, Any], _Bucket] = {}

    def bucket(start_s: int | None, group: Any) -> _Bucket:
        key = (None if interval is None or start_s is None else start_s - start_s % interval, group)
        found = buckets.get(key)
        if found is None:
            found = buckets[key] = _Bucket(sketch)
        return found

    hour_from, hour_to, edges = split_range(q.filter.after_ms, q.filter.before_ms)
    if hour_from is None or hour_to is None or hour_from < hour_to:
        where, params = cell_conditions(
            q.metric or EVENTS_MEASUREMENT, hour_from, hour_to, ids, by_name, q.filter.owner
        )
        columns = "hour, name_id, count, sum, min, max" + (", sketch" if sketch else "")
        for row in conn.execute(f"SELECT {columns} FROM rollups WHERE {where}", params):
            group = names.get(row[1]) if by_name else None
            bucket(row[0], group).add_cell(row[2], row[3], row[4], row[5], row[6] if sketch else None)
    value, value_params = _value_sql(q.metric)
    for edge in edges:
        where_list, params = conditions(q.filter, ids, edge)
        if q.metric is not None:
            where_list.append(f"{value} IS NOT NULL")
            params = [*params, *value_params]
        sql = f"SELECT ts, name_id, {value} FROM events{where_sql(where_list)}"
        for ts, name_id, v in conn.execute(sql, [*value_params, *params]):
            bucket(ts // 1000, names.get(name_id) if by_name else None).add_value(float(v))
    points = [
        AggregatePoint(
            timestamp=None if start is None else from_ms(start * 1000),
            group=group,
            value=_answer(q, b.count, b.total, b.low, b.high, b.histogram, None),
            count=b.count,
        )
        for (start, group), b in buckets.items()
        if b.count > 0
    ]
    points.sort(key=_order)
    return AggregateAnswer(points=points, interval_seconds=interval, exact=not sketch)


def _answer(
    q: AggregateQuery,
    count: int,
    total: float,
    low: float | None,
    high: float | None,
    histogram: Histogram | None,
    ordered: list[float] | None,
) -> float | None:
    agg = q.agg.value
    if agg == "count":
        return float(count)
    if count == 0:
        return None
    if agg == "sum":
        return total
    if agg == "avg":
        return total / count
    if agg == "min":
        return low
    if agg == "max":
        return high
    quantile = q.agg.quantile
    assert quantile is not None
    if ordered is not None:
        return exact_quantile(ordered, quantile)
    assert histogram is not None
    return histogram.quantile(quantile, low, high)


def _order(point: AggregatePoint) -> tuple[float, str]:
    stamp = point.timestamp.timestamp() if point.timestamp is not None else 0.0
    return stamp, "" if point.group is None else str(point.group)


def _group_sql(q: AggregateQuery) -> tuple[str, list[SqlValue]]:
    if q.group_by is None:
        return "NULL", []
    if q.group_by.kind is GroupKind.EVENT_NAME:
        return "name_id", []
    if q.group_by.kind is GroupKind.EXPERIMENT:
        return "experiment_id", []
    path = "$" + "".join(f'."{key}"' for key in q.group_by.path.split("."))
    return "json_extract(metadata, ?)", [path]


def _exact(
    conn: sqlite3.Connection, q: AggregateQuery, ids: Sequence[int] | None, names: dict[int, str]
) -> AggregateAnswer:
    interval_ms = None if q.interval_seconds is None else q.interval_seconds * 1000
    bucket_sql = "NULL" if interval_ms is None else f"(ts / {int(interval_ms)}) * {int(interval_ms)}"
    group_sql, group_params = _group_sql(q)
    value_sql, value_params = _value_sql(q.metric)
    where, params = conditions(q.filter, ids)
    if q.metric is not None:
        where.append(f"{value_sql} IS NOT NULL")
    select_params = [*group_params, *value_params]
    where_params = [*params, *(value_params if q.metric is not None else [])]
    by_name = q.group_by is not None and q.group_by.kind is GroupKind.EVENT_NAME

    def group_value(raw: Any) -> Any:
        return names.get(raw) if by_name else raw

    points: list[AggregatePoint] = []
    if q.agg.quantile is None:
        sql = (
            f"SELECT {bucket_sql} AS b, {group_sql} AS g, count({value_sql}), total({value_sql}), "
            f"min({value_sql}), max({value_sql}) FROM events{where_sql(where)} GROUP BY b, g"
        )
        all_params = [*group_params, *value_params, *value_params, *value_params, *value_params, *where_params]
        for start, group, count, total, low, high in conn.execute(sql, all_params):
            points.append(
                AggregatePoint(
                    timestamp=None if start is None else from_ms(start),
                    group=group_value(group),
                    value=_answer(q, count, total, low, high, None, None),
                    count=count,
                )
            )
    else:
        values: dict[tuple[int | None, Any], list[float]] = {}
        sql = f"SELECT {bucket_sql}, {group_sql}, {value_sql} FROM events{where_sql(where)}"
        for start, group, v in conn.execute(sql, [*select_params, *where_params]):
            key = (start, group)
            found = values.get(key)
            if found is None:
                values[key] = [float(v)]
            else:
                found.append(float(v))
        for (start, group), found in values.items():
            found.sort()
            points.append(
                AggregatePoint(
                    timestamp=None if start is None else from_ms(start),
                    group=group_value(group),
                    value=_answer(q, len(found), 0.0, found[0], found[-1], None, found),
                    count=len(found),
                )
            )
    points.sort(key=_order)
    return AggregateAnswer(points=points, interval_seconds=q.interval_seconds, exact=True)
