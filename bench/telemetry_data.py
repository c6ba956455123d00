"""The data of bench/telemetry.py: events of the issue's shape (20 event names, 3
measurements and 4 metadata keys each), loaded straight into telemetry.db (and into
DuckDB for the comparison), and the bare executemany baseline.

Loading never goes through HTTP: rows are made in chunks and written with the store's
own insert and rollup code (store/telemetry/rollups.py) in large transactions, the
secondary indexes dropped during the load and built after, as a bulk load does.
"""

from __future__ import annotations

import random
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec

from appliance.core.telemetry import IngestBatch
from appliance.store.telemetry import rollups
from appliance.store.telemetry.database import connect_writer

NAMES = [f"bench.svc{s}.op{o}" for s in range(5) for o in range(4)]  # 20
EXPERIMENTS = [f"exp_{n:012x}" for n in range(100)]
MODELS = ["gpt-4", "llama-3-8b", "claude-3", "mistral-7b", "qwen-2"]
REGIONS = ["eu", "us", "ap", "sa"]
OWNER = "admin"
CHUNK = 100_000
_encode = msgspec.json.encode

Row = tuple[int, str, str, str | None, str, str]


def one_event(rng: random.Random, ts_ms: int, n: int) -> tuple[Row, dict[str, int | float]]:
    name = NAMES[n % len(NAMES)]
    experiment = EXPERIMENTS[rng.randrange(len(EXPERIMENTS))]
    measurements: dict[str, int | float] = {
        "duration_ms": round(rng.lognormvariate(5.0, 0.7), 3),
        "tokens": rng.randint(1, 4000),
        "cost": round(rng.random() / 100, 6),
    }
    metadata = {
        "experiment_id": experiment,
        "model": MODELS[n % len(MODELS)],
        "region": REGIONS[rng.randrange(4)],
        "request_id": f"req_{n:x}",
    }
    row = (ts_ms, name, OWNER, experiment, _encode(measurements).decode(), _encode(metadata).decode())
    return row, measurements


def chunks(total: int, start_ms: int, end_ms: int, seed: int = 7) -> Iterator[IngestBatch]:
    """`total` events spread evenly over [start, end), in time order, CHUNK at a time."""
    rng = random.Random(seed)
    step = (end_ms - start_ms) / max(1, total)
    for first in range(0, total, CHUNK):
        batch = IngestBatch(rows=[], values=[])
        for n in range(first, min(total, first + CHUNK)):
            row, values = one_event(rng, start_ms + int(n * step), n)
            batch.rows.append(row)
            batch.values.append(values)
        yield batch


def bulk_load(path: Path, total: int, days: float, progress: bool = True) -> float:
    """Write `total` events over the `days` before now into a new telemetry.db; seconds."""
    started = time.perf_counter()
    conn = connect_writer(path)
    indexes = [
        (name, sql)
        for name, sql in conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events' AND sql IS NOT NULL"
        )
    ]
    for name, _ in indexes:
        conn.execute(f"DROP INDEX {name}")
    conn.execute("PRAGMA synchronous=OFF")
    names = rollups.NameCache()
    end = int(time.time() * 1000)
    start = end - int(days * 86_400_000)
    loaded = 0
    for batch in chunks(total, start, end):
        conn.execute("BEGIN IMMEDIATE")
        rollups.insert_events(conn, names, [batch])
        conn.execute("COMMIT")
        loaded += len(batch.rows)
        if progress and loaded % 1_000_000 == 0:
            print(f"  loaded {loaded:,} events ({time.perf_counter() - started:.0f} s)", flush=True)
    for _, sql in indexes:
        conn.execute(sql)
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return time.perf_counter() - started


def ingest_batches(count: int, size: int, seed: int) -> list[IngestBatch]:
    """`count` batches of `size` events stamped around now (for HTTP and the baseline)."""
    rng = random.Random(seed)
    now = int(time.time() * 1000)
    out = []
    for b in range(count):
        batch = IngestBatch(rows=[], values=[])
        for i in range(size):
            row, values = one_event(rng, now - rng.randrange(60_000), b * size + i)
            batch.rows.append(row)
            batch.values.append(values)
        out.append(batch)
    return out


def http_body(batch: IngestBatch) -> bytes:
    events = [
        {
            "event_name": row[1].split("."),
            "measurements": values,
            "metadata": msgspec.json.decode(row[5]),
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(row[0] / 1000)) + f".{row[0] % 1000:03d}Z",
        }
        for row, values in zip(batch.rows, batch.values, strict=True)
    ]
    return _encode({"events": events})


def bare_executemany(path: Path, batches: list[IngestBatch], seconds: float) -> float:
    """Events/s of a bare executemany of the batches' rows into the same schema and
    indexes (a new telemetry.db), one transaction per batch, for about `seconds`."""
    conn = connect_writer(path)
    ids = rollups.NameCache().ensure(conn, NAMES)
    prepared = [[(ts, ids[name], owner, exp, m, md) for ts, name, owner, exp, m, md in b.rows] for b in batches]
    done = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        for rows in prepared:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(rollups._INSERT_EVENT, rows)
            conn.execute("COMMIT")
            done += len(rows)
            if time.perf_counter() - started >= seconds:
                break
    rate = done / (time.perf_counter() - started)
    conn.close()
    return rate


# --- exact answers straight from SQLite (what the rollups replace) -------------------------


def sqlite_exact_p99_by_hour(path: Path) -> tuple[float, int]:
    """p99 of duration_ms per hour over every event, read and sorted in full; (seconds,
    hours)."""
    started = time.perf_counter()
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    per_hour: dict[int, list[float]] = {}
    for hour, value in conn.execute("SELECT ts / 3600000, json_extract(measurements, '$.duration_ms') FROM events"):
        per_hour.setdefault(hour, []).append(value)
    for values in per_hour.values():
        values.sort()
        _ = values[max(0, -(-99 * len(values) // 100) - 1)]
    conn.close()
    return time.perf_counter() - started, len(per_hour)


def sqlite_experiment_page(path: Path, experiment: str) -> float:
    """One experiment's newest 100 events and their count, in SQL on the file; seconds."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    started = time.perf_counter()
    conn.execute(
        "SELECT ts, id, name_id, measurements, metadata FROM events WHERE experiment_id = ? "
        "ORDER BY ts DESC, id DESC LIMIT 101",
        (experiment,),
    ).fetchall()
    conn.execute("SELECT count(*) FROM events WHERE experiment_id = ?", (experiment,)).fetchone()
    elapsed = time.perf_counter() - started
    conn.close()
    return elapsed


# --- DuckDB -------------------------------------------------------------------------------------

DUCK_TABLE = (
    "CREATE TABLE events (ts BIGINT, seq BIGINT, name VARCHAR, owner VARCHAR, experiment_id VARCHAR, "
    "duration_ms DOUBLE, tokens DOUBLE, cost DOUBLE, metadata VARCHAR)"
)
DUCK_INSERT = (
    "INSERT INTO events SELECT * FROM (SELECT unnest($1), unnest($2), unnest($3), unnest($4), unnest($5), "
    "unnest($6), unnest($7), unnest($8), unnest($9))"
)


def duck_columns(batch: IngestBatch, first_seq: int) -> list[list[Any]]:
    rows = batch.rows
    return [
        [r[0] for r in rows],
        list(range(first_seq, first_seq + len(rows))),
        [r[1] for r in rows],
        [r[2] for r in rows],
        [r[3] for r in rows],
        [float(v["duration_ms"]) for v in batch.values],
        [float(v["tokens"]) for v in batch.values],
        [float(v["cost"]) for v in batch.values],
        [r[5] for r in rows],
    ]


def duck_load(duckdb: Any, path: Path, total: int, days: float) -> float:
    started = time.perf_counter()
    conn = duckdb.connect(str(path))
    conn.execute(DUCK_TABLE)
    end = int(time.time() * 1000)
    seq = 1
    for batch in chunks(total, end - int(days * 86_400_000), end):
        conn.execute(DUCK_INSERT, duck_columns(batch, seq))
        seq += len(batch.rows)
    conn.close()
    return time.perf_counter() - started


def duck_ingest(duckdb: Any, path: Path, batches: list[IngestBatch], seconds: float) -> float:
    """Events/s of DuckDB's fastest plain-Python insert (lists unnested), a batch per
    transaction, for about `seconds`."""
    conn = duckdb.connect(str(path))
    conn.execute(DUCK_TABLE)
    columns = [duck_columns(b, 0) for b in batches]
    done = 0
    started = time.perf_counter()
    while time.perf_counter() - started < seconds:
        for cols in columns:
            conn.execute(DUCK_INSERT, cols)
            done += len(cols[0])
            if time.perf_counter() - started >= seconds:
                break
    rate = done / (time.perf_counter() - started)
    conn.close()
    return rate


def duck_queries(duckdb: Any, path: Path, experiment: str, runs: int = 3) -> tuple[float, float]:
    """Best of `runs`: exact p99 of duration_ms by hour over everything, and one
    experiment's newest 100 events with their count; seconds each."""
    conn = duckdb.connect(str(path), read_only=True)
    p99, page = [], []
    for _ in range(runs):
        started = time.perf_counter()
        conn.execute(
            "SELECT ts // 3600000 AS h, quantile_disc(duration_ms, 0.99) FROM events GROUP BY h ORDER BY h"
        ).fetchall()
        p99.append(time.perf_counter() - started)
        started = time.perf_counter()
        conn.execute(
            "SELECT ts, seq, name, duration_ms, tokens, cost, metadata FROM events WHERE experiment_id = ? "
            "ORDER BY ts DESC, seq DESC LIMIT 101",
            [experiment],
        ).fetchall()
        conn.execute("SELECT count(*) FROM events WHERE experiment_id = ?", [experiment]).fetchone()
        page.append(time.perf_counter() - started)
    conn.close()
    return min(p99), min(page)
