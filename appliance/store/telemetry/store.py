"""TelemetryStore: what the telemetry service asks of telemetry.db, as coroutines.

Reads run on the reader threads, each in one snapshot; writes on the writer thread.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import datetime

import msgspec

from appliance.core.clock import iso_z, parse_iso, parse_iso_required
from appliance.core.reports import TelemetryPoint
from appliance.core.statistics import KeyedValue
from appliance.core.telemetry import (
    MODEL_CALL_NAME,
    MODEL_CALL_OK,
    AggregateAnswer,
    AggregateQuery,
    EventFilter,
    ExportFormat,
    ExportJob,
    ExportStatus,
    IngestBatch,
    StoredEvent,
    event_id,
    from_ms,
)
from appliance.core.telemetry_sketch import nearest_rank
from appliance.store.telemetry import maintenance
from appliance.store.telemetry.aggregate import TooManyRows, aggregate
from appliance.store.telemetry.database import TelemetryDatabase
from appliance.store.telemetry.experiment_reads import (
    TooManyEvents,
    measurement_series,
    metadata_keys_naming,
    metric_values,
)
from appliance.store.telemetry.queries import (
    EventRow,
    conditions,
    count_events,
    name_ids,
    name_table,
    page_of_events,
    time_span,
    where_sql,
)

__all__ = ["EventPage", "ModelCallFigures", "TelemetryStore", "TooManyEvents", "TooManyRows"]


class EventPage(msgspec.Struct, kw_only=True):
    events: list[StoredEvent]
    has_more: bool
    last: tuple[int, int] | None  # (ts, id) of the last event, for the next cursor


class ModelCallFigures(msgspec.Struct, kw_only=True):
    calls: int
    ok: int
    avg_latency_ms: float | None
    p99_latency_ms: float | None
    tokens: int
    errors: dict[str, int]


def _stored(row: EventRow, names: dict[int, str]) -> StoredEvent:
    ts, rowid, name_id, _, measurements, metadata = row
    return StoredEvent(
        id=event_id(rowid),
        event_name=names.get(name_id, "").split("."),
        measurements=msgspec.Raw(measurements.encode()),
        metadata=msgspec.Raw(metadata.encode()),
        timestamp=from_ms(ts),
    )


_JOB_COLUMNS = (
    "id, owner, status, format, file, rows, bytes, estimated_rows, error, created_at, completed_at, expires_at"
)


def _job(row: sqlite3.Row | tuple[object, ...]) -> ExportJob:
    values = tuple(row)
    return ExportJob(
        id=str(values[0]),
        owner=str(values[1]),
        status=ExportStatus(values[2]),
        format=ExportFormat(values[3]),
        file=str(values[4]),
        rows=int(str(values[5])),
        bytes=int(str(values[6])),
        estimated_rows=int(str(values[7])),
        error=None if values[8] is None else str(values[8]),
        created_at=parse_iso_required(str(values[9])),
        completed_at=parse_iso(None if values[10] is None else str(values[10])),
        expires_at=parse_iso(None if values[11] is None else str(values[11])),
    )


class TelemetryStore:
    def __init__(self, db: TelemetryDatabase) -> None:
        self.db = db

    # --- events -------------------------------------------------------------------------------

    async def insert(self, batch: IngestBatch) -> int:
        return await self.db.insert(batch)

    async def page(
        self,
        f: EventFilter,
        *,
        descending: bool,
        per_page: int,
        offset: int = 0,
        after: tuple[int, int] | None = None,
        with_total: bool = True,
    ) -> tuple[EventPage, int]:
        """A page of events and the number the filter takes in all."""

        def read(conn: sqlite3.Connection) -> tuple[EventPage, int]:
            names = name_table(conn)
            ids = name_ids(f, names)
            rows = page_of_events(conn, f, ids, descending=descending, limit=per_page + 1, offset=offset, after=after)
            has_more = len(rows) > per_page
            rows = rows[:per_page]
            total = count_events(conn, f, ids) if with_total else 0
            last = (rows[-1][0], rows[-1][1]) if rows else None
            return EventPage(events=[_stored(r, names) for r in rows], has_more=has_more, last=last), total

        return await self.db.read(read)

    async def count(self, f: EventFilter) -> int:
        def read(conn: sqlite3.Connection) -> int:
            return count_events(conn, f, name_ids(f, name_table(conn)))

        return await self.db.read(read)

    async def count_all(self) -> int:
        return await self.count(EventFilter())

    async def span(self, f: EventFilter) -> tuple[int, int] | None:
        def read(conn: sqlite3.Connection) -> tuple[int, int] | None:
            return time_span(conn, f, name_ids(f, name_table(conn)))

        return await self.db.read(read)

    async def aggregate(self, q: AggregateQuery, max_rows: int) -> AggregateAnswer:
        """Raises TooManyRows when an exact scan would read more than `max_rows` events."""
        return await self.db.read(lambda conn: aggregate(conn, q, max_rows))

    async def export_chunk(
        self, f: EventFilter, after: tuple[int, int] | None, limit: int
    ) -> tuple[list[tuple[StoredEvent, str | None]], tuple[int, int] | None]:
        """Up to `limit` events after (ts, id) `after`, oldest first, each with its
        experiment id, and the position to go on from (None: done). Each chunk is its own
        read: an export never holds one snapshot (and the WAL) for its whole length."""

        def read(conn: sqlite3.Connection) -> tuple[list[tuple[StoredEvent, str | None]], tuple[int, int] | None]:
            names = name_table(conn)
            rows = page_of_events(conn, f, name_ids(f, names), descending=False, limit=limit, after=after)
            chunk = [(_stored(r, names), r[3]) for r in rows]
            return chunk, ((rows[-1][0], rows[-1][1]) if len(rows) == limit else None)

        return await self.db.read(read)

    # --- one experiment's events, for statistics and reports (experiment_reads.py) ----------

    async def experiment_values(
        self,
        experiment_id: str,
        owner: str | None,
        metric: str,
        group_path: str,
        pair_path: str | None,
        max_rows: int,
    ) -> list[KeyedValue]:
        """Raises TooManyEvents past `max_rows`."""
        return await self.db.read(
            lambda conn: metric_values(conn, experiment_id, owner, metric, group_path, pair_path, max_rows)
        )

    async def experiment_keys_naming(
        self, experiment_id: str, owner: str | None, groups: Sequence[str], max_rows: int
    ) -> list[str]:
        return await self.db.read(lambda conn: metadata_keys_naming(conn, experiment_id, owner, groups, max_rows))

    async def experiment_series(
        self, experiment_id: str, owner: str | None, points: int, max_series: int, max_events: int
    ) -> list[TelemetryPoint]:
        return await self.db.read(
            lambda conn: measurement_series(conn, experiment_id, owner, points, max_series, max_events)
        )

    async def delete_experiment(self, experiment_id: str, owner: str | None) -> int:
        return await self.db.write(lambda conn: maintenance.delete_experiment(conn, experiment_id, owner))

    async def delete_before(self, cutoff_ms: int) -> int:
        return await self.db.write(lambda conn: maintenance.delete_before(conn, cutoff_ms))

    async def used_bytes(self) -> int:
        return await self.db.read(maintenance.used_bytes)

    async def cutoff_for(self, remove_events: int) -> int | None:
        return await self.db.read(lambda conn: maintenance.oldest_cutoff_for(conn, remove_events))

    # --- model calls ------------------------------------------------------------------------

    async def model_calls(self, model_id: str, since: datetime, until: datetime) -> ModelCallFigures:
        def read(conn: sqlite3.Connection) -> ModelCallFigures:
            found = conn.execute("SELECT id FROM event_names WHERE name = ?", (MODEL_CALL_NAME,)).fetchone()
            if found is None:
                return ModelCallFigures(calls=0, ok=0, avg_latency_ms=None, p99_latency_ms=None, tokens=0, errors={})
            f = EventFilter(after_ms=int(since.timestamp() * 1000), before_ms=int(until.timestamp() * 1000))
            where, params = conditions(f, [found[0]])
            where.append("json_extract(metadata, '$.model_id') = ?")
            params.append(model_id)
            scope = where_sql(where)
            status = "json_extract(metadata, '$.status')"
            latency = "json_extract(measurements, '$.latency_ms')"
            tokens = (
                "coalesce(json_extract(measurements, '$.tokens_in'), 0) + "
                "coalesce(json_extract(measurements, '$.tokens_out'), 0)"
            )
            calls, ok, avg, latencies, total_tokens = conn.execute(
                f"SELECT count(*), coalesce(sum({status} = ?), 0), avg({latency}), count({latency}), "
                f"coalesce(sum({tokens}), 0) FROM events{scope}",
                [MODEL_CALL_OK, *params],
            ).fetchone()
            p99 = None
            if latencies:
                offset = nearest_rank(0.99, int(latencies)) - 1
                p99 = conn.execute(
                    f"SELECT {latency} AS v FROM events{scope} AND v IS NOT NULL ORDER BY v LIMIT 1 OFFSET ?",
                    [*params, offset],
                ).fetchone()[0]
            errors = {
                str(kind): int(n)
                for kind, n in conn.execute(
                    f"SELECT coalesce(json_extract(metadata, '$.error_kind'), 'unknown'), count(*) "
                    f"FROM events{scope} AND coalesce({status}, '') != ? GROUP BY 1",
                    [*params, MODEL_CALL_OK],
                )
            }
            return ModelCallFigures(
                calls=int(calls),
                ok=int(ok),
                avg_latency_ms=None if avg is None else float(avg),
                p99_latency_ms=None if p99 is None else float(p99),
                tokens=int(total_tokens),
                errors=errors,
            )

        return await self.db.read(read)

    # --- export jobs --------------------------------------------------------------------------

    async def add_job(self, job: ExportJob, request: bytes) -> None:
        def write(conn: sqlite3.Connection) -> None:
            conn.execute(
                f"INSERT INTO export_jobs ({_JOB_COLUMNS}, request) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    job.id,
                    job.owner,
                    job.status.value,
                    job.format.value,
                    job.file,
                    job.rows,
                    job.bytes,
                    job.estimated_rows,
                    job.error,
                    iso_z(job.created_at),
                    iso_z(job.completed_at),
                    iso_z(job.expires_at),
                    request.decode(),
                ),
            )

        await self.db.write(write)

    async def update_job(self, job: ExportJob) -> None:
        def write(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE export_jobs SET status = ?, rows = ?, bytes = ?, error = ?, completed_at = ?, expires_at = ? "
                "WHERE id = ?",
                (
                    job.status.value,
                    job.rows,
                    job.bytes,
                    job.error,
                    iso_z(job.completed_at),
                    iso_z(job.expires_at),
                    job.id,
                ),
            )

        await self.db.write(write)

    async def job(self, job_id: str) -> ExportJob | None:
        def read(conn: sqlite3.Connection) -> ExportJob | None:
            row = conn.execute(f"SELECT {_JOB_COLUMNS} FROM export_jobs WHERE id = ?", (job_id,)).fetchone()
            return None if row is None else _job(row)

        return await self.db.read(read)

    async def job_request(self, job_id: str) -> bytes | None:
        def read(conn: sqlite3.Connection) -> bytes | None:
            row = conn.execute("SELECT request FROM export_jobs WHERE id = ?", (job_id,)).fetchone()
            return None if row is None else str(row[0]).encode()

        return await self.db.read(read)

    async def jobs_with_status(self, statuses: Sequence[ExportStatus]) -> list[ExportJob]:
        def read(conn: sqlite3.Connection) -> list[ExportJob]:
            marks = ",".join("?" * len(statuses))
            rows = conn.execute(
                f"SELECT {_JOB_COLUMNS} FROM export_jobs WHERE status IN ({marks})", [s.value for s in statuses]
            )
            return [_job(r) for r in rows]

        return await self.db.read(read)

    async def expired_jobs(self, now: datetime) -> list[ExportJob]:
        def read(conn: sqlite3.Connection) -> list[ExportJob]:
            rows = conn.execute(
                f"SELECT {_JOB_COLUMNS} FROM export_jobs WHERE expires_at IS NOT NULL AND expires_at < ?",
                (iso_z(now),),
            )
            return [_job(r) for r in rows]

        return await self.db.read(read)

    async def delete_job(self, job_id: str) -> None:
        await self.db.write(lambda conn: conn.execute("DELETE FROM export_jobs WHERE id = ?", (job_id,)))
