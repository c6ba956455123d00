"""Statistical results (/api/v1/statistical-results) and exports and reports
(/api/v1/experiments/:id/export, /api/v1/export/comparison)."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from appliance.client.listing import ListsApi

RESULTS = "/api/v1/statistical-results"
_FILENAME = re.compile(r'filename="([^"]+)"')


class ExportedFile:
    """An export or report as the appliance made it: its bytes and suggested name."""

    def __init__(self, content: bytes, filename: str, media_type: str) -> None:
        self.content = content
        self.filename = filename
        self.media_type = media_type

    def save(self, path: str | Path | None = None) -> Path:
        """Write the file (to `path`, or its own name in the current directory)."""
        target = Path(path) if path is not None else Path(self.filename)
        if target.is_dir():
            target = target / self.filename
        target.write_bytes(self.content)
        return target


class StatisticsApi(ListsApi):
    # --- statistical results ----------------------------------------------------------------

    def run_statistical_test(
        self,
        test_type: str,
        *,
        data: Mapping[str, Any] | None = None,
        groups: Sequence[str] | None = None,
        experiment_id: str | None = None,
        metric: str | None = None,
        group_field: str | None = None,
        pair_field: str | None = None,
        **options: Any,
    ) -> Any:
        """Run a test and store its result. The values: `data` ({group: [values]} or
        {group: {item_id: value}}), or `experiment_id`, `metric` and `group_field`
        (and `pair_field` for paired tests). `options`: alpha, alternative, ...."""
        test: dict[str, Any] = {"test_type": test_type}
        for name, value in (
            ("data", data),
            ("groups", list(groups) if groups is not None else None),
            ("experiment_id", experiment_id),
            ("metric", metric),
            ("group_field", group_field),
            ("pair_field", pair_field),
        ):
            if value is not None:
                test[name] = value
        if options:
            test["options"] = options
        return self.call("POST", RESULTS, json={"test": test})["data"]

    def get_statistical_result(self, stat_id: str) -> Any:
        return self.call("GET", f"{RESULTS}/{stat_id}")["data"]

    def list_statistical_results(self, experiment_id: str | None = None, **params: Any) -> Any:
        """One page; an experiment's results with `experiment_id`."""
        path = RESULTS if experiment_id is None else f"/api/v1/experiments/{experiment_id}/statistical-results"
        return self.list_page(path, **params)

    def iter_statistical_results(
        self, filters: Mapping[str, Any] | None = None, sort: str | None = None
    ) -> Iterator[Any]:
        return self.iterate(RESULTS, filters=filters, sort=sort)

    # --- exports and reports ------------------------------------------------------------------

    def _file(self, path: str, body: dict[str, Any]) -> ExportedFile:
        response = self.request("POST", path, json=body)
        found = _FILENAME.search(response.headers.get("content-disposition", ""))
        media_type = response.headers.get("content-type", "application/octet-stream")
        return ExportedFile(response.content, found.group(1) if found else "export", media_type)

    def export_experiment(
        self, experiment_id: str, format: str = "json", include: Sequence[str] | None = None
    ) -> ExportedFile:
        """json (config, results, runs, telemetry: `include` picks) or csv (one table)."""
        body: dict[str, Any] = {"format": format}
        if include is not None:
            body["include"] = list(include)
        return self._file(f"/api/v1/experiments/{experiment_id}/export", body)

    def export_comparison(
        self,
        experiment_ids: Sequence[str],
        format: str = "html",
        template: str = "publication",
        *,
        metrics: Sequence[str] | None = None,
        baseline: str | None = None,
        alpha: float | None = None,
        title: str | None = None,
    ) -> ExportedFile:
        """A comparison report: json, csv, markdown, html or latex (`template`
        publication, a whole document, or table)."""
        body: dict[str, Any] = {"experiment_ids": list(experiment_ids), "format": format, "template": template}
        if metrics is not None:
            body["metrics"] = list(metrics)
        for name, value in (("baseline", baseline), ("alpha", alpha), ("title", title)):
            if value is not None:
                body[name] = value
        return self._file("/api/v1/export/comparison", body)
