"""Writing events and keeping their hourly rollups (synchronous: the writer thread).

Each group commit inserts the events and adds what they bring to the rollup cells of
their hours, in the same transaction, so a rollup never counts an event that is not
stored, nor misses one that is. A cell is (measurement, hour, name, owner), and every
cell also feeds the cell of its hour for every name together (name_id 0), which answers
queries over all names without merging twenty cells per hour.
"""

from __future__ import annotations

import math
import sqlite3
from collections import Counter
from collections.abc import Iterable, Sequence

import msgspec

from appliance.core.telemetry import IngestBatch
from appliance.core.telemetry_sketch import _POSITIVE_BASE, GAMMA, Histogram

ALL_NAMES = 0
EVENTS_MEASUREMENT = ""  # the cells that count events, whatever their measurements
HOUR_MS = 3_600_000
_INV_LOG_GAMMA = 1 / math.log(GAMMA)
_log, _ceil = math.log, math.ceil

# (measurement, hour, name_id, owner)
CellKey = tuple[str, int, int, str]


class NameCache:
    """Dotted event name <-> id of the writer's connection."""

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}

    def forget(self) -> None:
        self.ids.clear()

    def ensure(self, conn: sqlite3.Connection, names: Iterable[str]) -> dict[str, int]:
        missing = [name for name in set(names) if name not in self.ids]
        if missing:
            conn.executemany("INSERT OR IGNORE INTO event_names (name) VALUES (?)", [(n,) for n in missing])
            marks = ",".join("?" * len(missing))
            for row in conn.execute(f"SELECT name, id FROM event_names WHERE name IN ({marks})", missing):
                self.ids[row[0]] = row[1]
        return self.ids


class CellDelta:
    """What some events add to one cell."""

    __slots__ = ("count", "high", "histogram", "low", "total")

    def __init__(self, count: int, total: float, low: float | None, high: float | None, histogram: Histogram | None):
        self.count, self.total, self.low, self.high, self.histogram = count, total, low, high, histogram

    def merge(self, other: CellDelta) -> None:
        self.count += other.count
        self.total += other.total
        if other.low is not None and (self.low is None or other.low < self.low):
            self.low = other.low
        if other.high is not None and (self.high is None or other.high > self.high):
            self.high = other.high
        if other.histogram is not None:
            if self.histogram is None:
                self.histogram = Histogram(dict(other.histogram.counts))
            else:
                self.histogram.merge(other.histogram)


def _histogram(values: list[float]) -> Histogram:
    """The sketch of `values` (bucket_code, inlined: this runs for every value ingested)."""
    base, inv = _POSITIVE_BASE, _INV_LOG_GAMMA
    counts = Counter([base + _ceil(_log(v) * inv) for v in values if v > 0])
    if counts.total() != len(values):
        counts.update([-(base + _ceil(_log(-v) * inv)) for v in values if v < 0])
        counts.update([0 for v in values if v == 0])
    return Histogram(dict(counts))


def cell_deltas(events: Iterable[tuple[int, int, str, dict[str, int | float]]]) -> dict[CellKey, CellDelta]:
    """The cell deltas of (ts ms, name_id, owner, measurements) events, the every-name
    cells included."""
    # (hour, name_id, owner) -> [events, {measurement: values}]
    groups: dict[tuple[int, int, str], tuple[list[int], dict[str, list[float]]]] = {}
    for ts, name_id, owner, measurements in events:
        group_key = (ts // HOUR_MS * 3600, name_id, owner)
        group = groups.get(group_key)
        if group is None:
            group = groups[group_key] = ([0], {})
        group[0][0] += 1
        by_name = group[1]
        for name, value in measurements.items():
            found = by_name.get(name)
            if found is None:
                by_name[name] = [value]
            else:
                found.append(value)
    deltas: dict[CellKey, CellDelta] = {}
    for (hour, name_id, owner), (count, by_name) in groups.items():
        deltas[(EVENTS_MEASUREMENT, hour, name_id, owner)] = CellDelta(count[0], 0.0, None, None, None)
        for name, found in by_name.items():
            deltas[(name, hour, name_id, owner)] = CellDelta(
                len(found), math.fsum(found), min(found), max(found), _histogram(found)
            )
    for key, delta in list(deltas.items()):
        everyone = (key[0], key[1], ALL_NAMES, key[3])
        combined = deltas.get(everyone)
        if combined is None:
            combined = deltas[everyone] = CellDelta(0, 0.0, None, None, None)
        combined.merge(delta)
    return deltas


_SELECT_CELL = (
    "SELECT count, sum, min, max, sketch FROM rollups WHERE measurement = ? AND hour = ? AND name_id = ? AND owner = ?"
)
_WRITE_CELL = (
    "INSERT OR REPLACE INTO rollups (measurement, hour, name_id, owner, count, sum, min, max, sketch) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def apply_deltas(conn: sqlite3.Connection, deltas: dict[CellKey, CellDelta]) -> None:
    rows = []
    for key, delta in deltas.items():
        stored = conn.execute(_SELECT_CELL, key).fetchone()
        if stored is not None:
            before = CellDelta(
                stored[0], stored[1], stored[2], stored[3], Histogram.decode(stored[4]) if stored[4] else None
            )
            before.merge(delta)
            delta = before
        sketch = delta.histogram.encode() if delta.histogram is not None else None
        rows.append((*key, delta.count, delta.total, delta.low, delta.high, sketch))
    conn.executemany(_WRITE_CELL, rows)


_INSERT_EVENT = (
    "INSERT INTO events (ts, name_id, owner, experiment_id, measurements, metadata) VALUES (?, ?, ?, ?, ?, ?)"
)


def insert_events(conn: sqlite3.Connection, names: NameCache, batches: Sequence[IngestBatch]) -> int:
    """Insert the batches' events and their rollups (inside the caller's transaction)."""
    ids = names.ensure(conn, {row[1] for batch in batches for row in batch.rows})
    stored = 0
    rollup_input: list[tuple[int, int, str, dict[str, int | float]]] = []
    for batch in batches:
        rows = [(ts, ids[name], owner, exp, m, md) for ts, name, owner, exp, m, md in batch.rows]
        conn.executemany(_INSERT_EVENT, rows)
        if rows:
            # INTEGER PRIMARY KEY with no AUTOINCREMENT, one writer: the rows got consecutive ids.
            batch.first_rowid = conn.execute("SELECT last_insert_rowid()").fetchone()[0] - len(rows) + 1
        stored += len(rows)
        rollup_input.extend((row[0], row[1], row[2], values) for row, values in zip(rows, batch.values, strict=True))
    apply_deltas(conn, cell_deltas(rollup_input))
    return stored


_measurements = msgspec.json.Decoder(dict[str, int | float])


def rebuild_hours(conn: sqlite3.Connection, hours: Iterable[int]) -> None:
    """Recompute the rollup cells of `hours` (hour starts, seconds) from the events
    stored now: after events were deleted from them."""
    for hour in sorted(set(hours)):
        conn.execute("DELETE FROM rollups WHERE hour = ?", (hour,))
        rows = conn.execute(
            "SELECT ts, name_id, owner, measurements FROM events WHERE ts >= ? AND ts < ?",
            (hour * 1000, hour * 1000 + HOUR_MS),
        )
        events = ((ts, name_id, owner, _measurements.decode(m)) for ts, name_id, owner, m in rows)
        apply_deltas(conn, cell_deltas(events))
