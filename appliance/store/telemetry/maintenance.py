"""Removing events (synchronous: the writer thread, inside its transaction): one
experiment's, and the oldest for retention by age or size. Rollups stay true to the
events: retention removes whole hours (cells and events together); removing an
experiment's events recomputes the cells of the hours it had events in.
"""

from __future__ import annotations

import sqlite3

from appliance.store.telemetry.rollups import HOUR_MS, rebuild_hours

# Events one retention step removes at most: each step is its own transaction, so ingest
# waits for one step, not for the whole clean-up.
RETENTION_STEP_EVENTS = 100_000


def delete_experiment(conn: sqlite3.Connection, experiment_id: str, owner: str | None) -> int:
    scope, params = ("", [experiment_id]) if owner is None else (" AND owner = ?", [experiment_id, owner])
    hours = [
        row[0]
        for row in conn.execute(
            f"SELECT DISTINCT ts / {HOUR_MS} * 3600 FROM events WHERE experiment_id = ?{scope}", params
        )
    ]
    deleted = conn.execute(f"DELETE FROM events WHERE experiment_id = ?{scope}", params).rowcount
    rebuild_hours(conn, hours)
    return deleted


def delete_before(conn: sqlite3.Connection, cutoff_ms: int) -> int:
    """One step of retention: the oldest whole hours before `cutoff_ms` (rounded down to
    an hour), at most about RETENTION_STEP_EVENTS events. Returns the events removed; 0
    when nothing before the cutoff is left."""
    cutoff = cutoff_ms // HOUR_MS * HOUR_MS
    row = conn.execute("SELECT ts FROM events ORDER BY ts LIMIT 1 OFFSET ?", (RETENTION_STEP_EVENTS,)).fetchone()
    end = cutoff
    if row is not None:
        # The hour after the step's last event: whole hours, and at least one.
        oldest = conn.execute("SELECT min(ts) FROM events").fetchone()[0]
        step_end = max(row[0] // HOUR_MS * HOUR_MS, oldest // HOUR_MS * HOUR_MS + HOUR_MS)
        end = min(cutoff, step_end)
    deleted = conn.execute("DELETE FROM events WHERE ts < ?", (end,)).rowcount
    conn.execute("DELETE FROM rollups WHERE hour < ?", (end // 1000,))
    return deleted


def used_bytes(conn: sqlite3.Connection) -> int:
    """Bytes of the file in use (free pages, which new events fill first, not counted)."""
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    free = conn.execute("PRAGMA freelist_count").fetchone()[0]
    return int((pages - free) * page_size)


def oldest_cutoff_for(conn: sqlite3.Connection, remove_events: int) -> int | None:
    """The timestamp (ms) before which about `remove_events` of the oldest events lie."""
    row = conn.execute("SELECT ts FROM events ORDER BY ts LIMIT 1 OFFSET ?", (max(0, remove_events),)).fetchone()
    if row is None:
        last = conn.execute("SELECT max(ts) FROM events").fetchone()[0]
        return None if last is None else int(last) + 1
    return int(row[0])
