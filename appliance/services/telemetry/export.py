"""POST /telemetry/export: events as CSV or JSON lines, streamed from the store a chunk
at a time (never the whole result in memory).

An export of up to `sync_max_rows` events is the response itself. A larger one (or one
asked for with `"async": true`) becomes a job: it writes DATA_DIR/exports/<id>.<ext>
in the background; its status says how far it got, and once completed the file is
downloaded from it until it expires (`keep_hours`). A job that was running when the
appliance stopped is failed at the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import logging
import os
import secrets
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import msgspec

from appliance.core.clock import iso_z, utc_now_ms
from appliance.core.errors import NotFound
from appliance.core.identity import READ, Identity
from appliance.core.telemetry import (
    EXPORT_ID_PREFIX,
    EventFilter,
    ExportFormat,
    ExportJob,
    ExportSpec,
    ExportStatus,
    StoredEvent,
)
from appliance.services.access.auth import require_permission
from appliance.store.telemetry.store import TelemetryStore

log = logging.getLogger(__name__)

CHUNK_ROWS = 5000
MEDIA_TYPES = {ExportFormat.CSV: "text/csv", ExportFormat.JSONL: "application/x-ndjson"}
EXTENSIONS = {ExportFormat.CSV: "csv", ExportFormat.JSONL: "jsonl"}

_object = msgspec.json.Decoder(dict[str, Any])


class ExportLimits(msgspec.Struct, frozen=True, kw_only=True):
    sync_max_rows: int = 100_000
    keep_hours: float = 24.0


class ExportStart(msgspec.Struct, kw_only=True):
    """Either a stream to answer with (job None) or the job that writes the file."""

    job: ExportJob | None
    estimated_rows: int
    media_type: str
    filename: str


def _path_value(document: dict[str, Any] | None, path: list[str]) -> Any:
    value: Any = document
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


class _Renderer:
    """Events to lines of the export, field by field."""

    def __init__(self, spec: ExportSpec) -> None:
        self.spec = spec
        self.fields = list(spec.fields)
        self.paths = [f.split(".")[1:] if "." in f else [] for f in self.fields]
        self.heads = [f.split(".", 1)[0] for f in self.fields]
        self.needs = {h for h, p in zip(self.heads, self.paths, strict=True) if p}

    def header(self) -> bytes:
        if self.spec.format is ExportFormat.CSV:
            return self._csv([self.fields])
        return b""

    def values(self, event: StoredEvent, experiment: str | None, for_csv: bool) -> list[Any]:
        measurements = _object.decode(event.measurements) if "measurements" in self.needs else None
        metadata = _object.decode(event.metadata) if "metadata" in self.needs else None
        out: list[Any] = []
        for head, path in zip(self.heads, self.paths, strict=True):
            if head == "id":
                out.append(event.id)
            elif head == "timestamp":
                out.append(iso_z(event.timestamp))
            elif head == "event_name":
                out.append(".".join(event.event_name))
            elif head == "experiment_id":
                out.append(experiment)
            elif not path:
                raw = event.measurements if head == "measurements" else event.metadata
                out.append(bytes(raw).decode() if for_csv else raw)
            else:
                value = _path_value(measurements if head == "measurements" else metadata, path)
                if for_csv and isinstance(value, dict | list):
                    value = msgspec.json.encode(value).decode()
                out.append(value)
        return out

    def chunk(self, events: list[tuple[StoredEvent, str | None]]) -> bytes:
        if self.spec.format is ExportFormat.CSV:
            return self._csv([["" if v is None else v for v in self.values(e, x, True)] for e, x in events])
        lines = [msgspec.json.encode(dict(zip(self.fields, self.values(e, x, False), strict=True))) for e, x in events]
        return b"\n".join(lines) + b"\n" if lines else b""

    @staticmethod
    def _csv(rows: list[list[Any]]) -> bytes:
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerows(rows)
        return out.getvalue().encode()


class TelemetryExports:
    def __init__(self, store: TelemetryStore, folder: Path, limits: ExportLimits) -> None:
        self._store = store
        self._folder = folder
        self._limits = limits
        self._tasks: dict[str, asyncio.Task[None]] = {}

    async def start(self) -> None:
        for job in await self._store.jobs_with_status([ExportStatus.QUEUED, ExportStatus.RUNNING]):
            job.status, job.error, job.completed_at = ExportStatus.FAILED, "appliance_restart", utc_now_ms()
            await self._store.update_job(job)

    async def stop(self) -> None:
        for task in list(self._tasks.values()):
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        self._tasks.clear()

    async def begin(self, identity: Identity, spec: ExportSpec, run_async: bool | None) -> ExportStart:
        require_permission(identity, READ)
        estimate = await self._store.count(spec.filter)
        name = f"telemetry.{EXTENSIONS[spec.format]}"
        media = MEDIA_TYPES[spec.format]
        if not run_async and (run_async is False or estimate <= self._limits.sync_max_rows):
            return ExportStart(job=None, estimated_rows=estimate, media_type=media, filename=name)
        job_id = EXPORT_ID_PREFIX + secrets.token_hex(6)
        job = ExportJob(
            id=job_id,
            owner=identity.owner,
            status=ExportStatus.QUEUED,
            format=spec.format,
            file=f"{job_id}.{EXTENSIONS[spec.format]}",
            rows=0,
            bytes=0,
            estimated_rows=estimate,
            error=None,
            created_at=utc_now_ms(),
            completed_at=None,
            expires_at=None,
        )
        await self._store.add_job(job, msgspec.json.encode(spec))
        self._tasks[job_id] = asyncio.create_task(self._run(job, spec), name=f"telemetry-export-{job_id}")
        return ExportStart(job=job, estimated_rows=estimate, media_type=media, filename=job.file)

    async def stream(self, spec: ExportSpec) -> AsyncIterator[bytes]:
        """The export's bytes, a chunk of events at a time."""
        renderer = _Renderer(spec)
        header = renderer.header()
        if header:
            yield header
        async for events in self._chunks(spec.filter):
            yield renderer.chunk(events)

    async def _chunks(self, f: EventFilter) -> AsyncIterator[list[tuple[StoredEvent, str | None]]]:
        after: tuple[int, int] | None = None
        while True:
            events, after = await self._store.export_chunk(f, after, CHUNK_ROWS)
            if events:
                yield events
            if after is None:
                return

    async def _run(self, job: ExportJob, spec: ExportSpec) -> None:
        self._folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        final = self._folder / job.file
        partial = final.with_name(final.name + ".partial")
        job.status = ExportStatus.RUNNING
        try:
            await self._store.update_job(job)
            renderer = _Renderer(spec)
            with open(partial, "wb", opener=_private) as out:
                written = out.write(renderer.header())
                async for events in self._chunks(spec.filter):
                    data = renderer.chunk(events)
                    await asyncio.to_thread(out.write, data)
                    written += len(data)
                    job.rows += len(events)
                    job.bytes = written
                    await self._store.update_job(job)
                out.flush()
                os.fsync(out.fileno())
            partial.rename(final)
            job.status = ExportStatus.COMPLETED
            job.completed_at = utc_now_ms()
            job.expires_at = job.completed_at + timedelta(hours=self._limits.keep_hours)
        except asyncio.CancelledError:
            partial.unlink(missing_ok=True)
            raise
        except Exception as exc:
            log.exception("telemetry export %s failed", job.id)
            partial.unlink(missing_ok=True)
            job.status, job.error, job.completed_at = ExportStatus.FAILED, str(exc)[:500], utc_now_ms()
            job.expires_at = job.completed_at + timedelta(hours=self._limits.keep_hours)
        finally:
            self._tasks.pop(job.id, None)
        await self._store.update_job(job)

    async def job(self, identity: Identity, job_id: str) -> ExportJob:
        require_permission(identity, READ)
        job = await self._store.job(job_id)
        if job is None or not identity.may_see(job.owner):
            raise NotFound(f"no export {job_id}")
        return job

    async def download(self, identity: Identity, job_id: str) -> tuple[ExportJob, Path]:
        job = await self.job(identity, job_id)
        path = self._folder / job.file
        if job.status is not ExportStatus.COMPLETED or not path.is_file():
            raise NotFound(f"export {job_id} has no file to download (status {job.status.value})")
        return job, path

    async def remove_expired(self) -> int:
        """Expired jobs and their files (a scheduler job)."""
        expired = await self._store.expired_jobs(utc_now_ms())
        for job in expired:
            with contextlib.suppress(OSError):
                (self._folder / job.file).unlink(missing_ok=True)
            await self._store.delete_job(job.id)
        return len(expired)


def _private(path: str, flags: int) -> int:
    return os.open(path, flags, 0o600)
