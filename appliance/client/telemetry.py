"""Telemetry (/api/v1/telemetry): ingest, query, aggregate, export and delete events."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from appliance.client.listing import ListsApi, list_params
from appliance.client.transport import error_from_response

TELEMETRY = "/api/v1/telemetry"
# progress(rows written so far, rows the export holds by the server's estimate)
Progress = Callable[[int, int], None]
JOB_POLL_SECONDS = 0.5


def _filter_params(filters: Mapping[str, Any] | None) -> dict[str, Any]:
    return {f"filter[{name}]": value for name, value in (filters or {}).items()}


class TelemetryApi(ListsApi):
    def ingest_events(self, events: Sequence[Mapping[str, Any]]) -> Any:
        """Send a batch: each event `{"event_name": [...], "measurements": {...},
        "metadata": {...}, "timestamp": "..."}`. Returns `accepted`, `rejected` and
        `rejections` (each rejected event's index, reason and field)."""
        return self.call("POST", f"{TELEMETRY}/events", json={"events": list(events)})["data"]

    def query_events(
        self,
        filters: Mapping[str, Any] | None = None,
        *,
        sort: str | None = None,
        page: int | None = None,
        per_page: int | None = None,
        cursor: str | None = None,
    ) -> Any:
        """One page of events: filters event_name, experiment_id, after, before."""
        return self.list_page(
            f"{TELEMETRY}/events", filters=filters, sort=sort, page=page, per_page=per_page, cursor=cursor
        )

    def iter_events(self, filters: Mapping[str, Any] | None = None, *, sort: str | None = None) -> Iterator[Any]:
        return self.iterate(f"{TELEMETRY}/events", filters=filters, sort=sort)

    def aggregate_events(
        self,
        agg: str,
        metric: str | None = None,
        *,
        interval: str | None = None,
        points: int | None = None,
        group_by: str | None = None,
        filters: Mapping[str, Any] | None = None,
    ) -> Any:
        """GET /telemetry/aggregate: `data`, the points (`timestamp`, `value`, `count`,
        and `group` with group_by), and `meta` (the interval used, whether exact)."""
        params = {**list_params(filters), "agg": agg}
        for name, value in (("metric", metric), ("interval", interval), ("points", points), ("group_by", group_by)):
            if value is not None:
                params[name] = value
        return self.call("GET", f"{TELEMETRY}/aggregate", params=params)

    def delete_experiment_events(self, experiment_id: str) -> None:
        self.call("DELETE", f"{TELEMETRY}/events", params=_filter_params({"experiment_id": experiment_id}))

    def export_events(
        self,
        target: Path | str,
        *,
        format: str = "csv",
        filters: Mapping[str, Any] | None = None,
        fields: Sequence[str] | None = None,
        run_async: bool | None = None,
        progress: Progress | None = None,
    ) -> int:
        """Write an export to `target`, streamed (a large export waits for its job,
        then downloads the file); returns the events written. `progress` is called
        as it goes."""
        body: dict[str, Any] = {"format": format, "filters": dict(filters or {})}
        if fields is not None:
            body["fields"] = list(fields)
        if run_async is not None:
            body["async"] = run_async
        with self.http.stream("POST", f"{TELEMETRY}/export", json=body) as response:
            if response.status_code >= 400:
                response.read()
                raise error_from_response(response)
            if response.status_code == 202:
                response.read()
                job = response.json()["data"]
            else:
                total = int(response.headers.get("x-export-rows") or 0)
                return _save(response.iter_bytes(), Path(target), format, total, progress)
        job = self._await_job(job, progress)
        with self.http.stream("GET", job["download_url"]) as download:
            if download.status_code >= 400:
                download.read()
                raise error_from_response(download)
            return _save(download.iter_bytes(), Path(target), format, int(job["rows"]), None)

    def export_job(self, export_id: str) -> Any:
        return self.call("GET", f"{TELEMETRY}/export/{export_id}")["data"]

    def _await_job(self, job: Any, progress: Progress | None) -> Any:
        while True:
            if progress is not None:
                progress(int(job["rows"]), int(job["estimated_rows"]))
            if job["status"] == "completed":
                return job
            if job["status"] == "failed":
                raise RuntimeError(f"export {job['id']} failed: {job.get('error')}")
            time.sleep(JOB_POLL_SECONDS)
            job = self.export_job(job["id"])


def _save(chunks: Iterator[bytes], target: Path, format: str, total: int, progress: Progress | None) -> int:
    """Write `chunks` to `target`; the events written, counted as lines (less a CSV's
    header; a CSV value holding a line break would count twice)."""
    lines = 0
    with open(target, "wb") as out:
        for chunk in chunks:
            out.write(chunk)
            lines += chunk.count(b"\n")
            if progress is not None:
                progress(max(0, lines - (format == "csv")), total)
    return max(0, lines - (format == "csv"))
