"""Experiments and runs (/api/v1/experiments, /api/v1/runs), and the logging calls a
training script makes to report a run tracked from outside:

    with ApplianceClient(url, api_key=key) as client:
        run = client.create_run(experiment_id, hyperparameters={"lr": 0.01})
        for epoch in range(10):
            client.log_metrics(run.id, {"loss": train(), "epoch": epoch}, step=epoch)
        client.log(run.id, "training done")
        client.upload_checkpoint(run.id, "model.pt")
        client.end_run(run.id)
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

from appliance.client.listing import ListsApi

EXPERIMENTS = "/api/v1/experiments"
RUNS = "/api/v1/runs"


class ExperimentsApi(ListsApi):
    # --- experiments --------------------------------------------------------------------

    def list_experiments(self, filters: Mapping[str, Any] | None = None, **params: Any) -> Any:
        """One page (`data`, `meta`); `params`: sort, page, per_page, cursor."""
        return self.list_page(EXPERIMENTS, filters=filters, **params)

    def iter_experiments(self, filters: Mapping[str, Any] | None = None, *, sort: str | None = None) -> Iterator[Any]:
        return self.iterate(EXPERIMENTS, filters=filters, sort=sort)

    def create_experiment(
        self,
        name: str,
        config: Mapping[str, Any],
        *,
        description: str | None = None,
        tags: list[str] | None = None,
    ) -> Any:
        experiment: dict[str, Any] = {"name": name, "config": dict(config)}
        if description is not None:
            experiment["description"] = description
        if tags is not None:
            experiment["tags"] = tags
        return self.call("POST", EXPERIMENTS, json={"experiment": experiment})["data"]

    def get_experiment(self, experiment_id: str) -> Any:
        """With its `runs`, `results_summary`, `progress`, `eta_seconds` and `allowed_actions`."""
        return self.call("GET", f"{EXPERIMENTS}/{experiment_id}")["data"]

    def update_experiment(self, experiment_id: str, **changes: Any) -> Any:
        """`name=`, `description=`, `tags=`, `config=` (only while pending)."""
        return self.call("PATCH", f"{EXPERIMENTS}/{experiment_id}", json={"experiment": changes})["data"]

    def delete_experiment(self, experiment_id: str) -> None:
        self.call("DELETE", f"{EXPERIMENTS}/{experiment_id}")

    def start_experiment(self, experiment_id: str) -> Any:
        return self.call("POST", f"{EXPERIMENTS}/{experiment_id}/start")["data"]

    def pause_experiment(self, experiment_id: str, *, stop_running: bool = False) -> Any:
        """Running runs finish first, unless `stop_running` (they go back in line)."""
        body = {"stop_running": True} if stop_running else None
        return self.call("POST", f"{EXPERIMENTS}/{experiment_id}/pause", json=body)["data"]

    def resume_experiment(self, experiment_id: str) -> Any:
        return self.call("POST", f"{EXPERIMENTS}/{experiment_id}/resume")["data"]

    def cancel_experiment(self, experiment_id: str) -> Any:
        return self.call("POST", f"{EXPERIMENTS}/{experiment_id}/cancel")["data"]

    def clone_experiment(self, experiment_id: str, name: str | None = None) -> Any:
        body = {"name": name} if name is not None else None
        return self.call("POST", f"{EXPERIMENTS}/{experiment_id}/clone", json=body)["data"]

    # --- runs -----------------------------------------------------------------------------

    def list_runs(
        self, filters: Mapping[str, Any] | None = None, *, experiment_id: str | None = None, **params: Any
    ) -> Any:
        """One page of all runs, or of one experiment's; sort by a metric with
        `sort="metrics.loss"` (`-` in front for descending); `{"tag": "baseline"}` in
        `filters`: only the runs carrying that tag."""
        path = f"{EXPERIMENTS}/{experiment_id}/runs" if experiment_id else RUNS
        return self.list_page(path, filters=filters, **params)

    def iter_runs(
        self, filters: Mapping[str, Any] | None = None, *, experiment_id: str | None = None, sort: str | None = None
    ) -> Iterator[Any]:
        path = f"{EXPERIMENTS}/{experiment_id}/runs" if experiment_id else RUNS
        return self.iterate(path, filters=filters, sort=sort)

    def get_run(self, run_id: str) -> Any:
        return self.call("GET", f"{RUNS}/{run_id}")["data"]

    def run_metrics(self, run_id: str, name: str | None = None) -> Any:
        """The metric history: {metric: [{step, value, timestamp}, ...]}."""
        params = {"name": name} if name is not None else None
        return self.call("GET", f"{RUNS}/{run_id}/metrics", params=params)["data"]

    def run_logs(
        self, run_id: str, *, level: str | None = None, since: str | None = None, tail: int | None = None
    ) -> Any:
        params = {k: v for k, v in (("level", level), ("since", since), ("tail", tail)) if v is not None}
        return self.call("GET", f"{RUNS}/{run_id}/logs", params=params)["data"]

    def run_checkpoints(self, run_id: str) -> Any:
        return self.call("GET", f"{RUNS}/{run_id}/checkpoints")["data"]

    def download_checkpoint(self, run_id: str, checkpoint_id: str) -> bytes:
        return self.request("GET", f"{RUNS}/{run_id}/checkpoints/{checkpoint_id}/download").content

    # --- logging a run tracked from outside ---------------------------------------------

    def create_run(
        self,
        experiment_id: str,
        hyperparameters: Mapping[str, Any] | None = None,
        *,
        tags: list[str] | None = None,
    ) -> Any:
        """A run of the experiment, running until `end_run`; `tags` to find it by
        (`list_runs({"tag": ...})`) and to group runs by in statistics."""
        run: dict[str, Any] = {"hyperparameters": dict(hyperparameters)} if hyperparameters is not None else {}
        if tags is not None:
            run["tags"] = list(tags)
        return self.call("POST", f"{EXPERIMENTS}/{experiment_id}/runs", json={"run": run})["data"]

    def log_params(self, run_id: str, params: Mapping[str, Any]) -> Any:
        return self.call("POST", f"{RUNS}/{run_id}/params", json={"params": dict(params)})["data"]

    def log_metrics(self, run_id: str, metrics: Mapping[str, float], step: int | None = None) -> Any:
        """One metrics line; `step` defaults to the one after the run's latest."""
        line: dict[str, Any] = {"metrics": dict(metrics)}
        if step is not None:
            line["step"] = step
        return self.call("POST", f"{RUNS}/{run_id}/metrics", json={"metrics": [line]})["data"]

    def log_metrics_batch(self, run_id: str, lines: list[Mapping[str, Any]]) -> Any:
        """Several lines at once: [{"metrics": {...}, "step": 3}, ...] (at most 1000)."""
        return self.call("POST", f"{RUNS}/{run_id}/metrics", json={"metrics": [dict(x) for x in lines]})["data"]

    def log(self, run_id: str, message: str, level: str = "info") -> Any:
        return self.call("POST", f"{RUNS}/{run_id}/logs", json={"logs": [{"level": level, "message": message}]})["data"]

    def set_run_progress(self, run_id: str, progress: float) -> Any:
        return self.call("POST", f"{RUNS}/{run_id}/progress", json={"progress": progress})["data"]

    def upload_checkpoint(self, run_id: str, file: str | Path | bytes | IO[bytes], name: str | None = None) -> Any:
        """A checkpoint file (a path, bytes or a binary file object), streamed; `name`
        defaults to the path's file name."""
        if isinstance(file, str | Path):
            path = Path(file)
            with path.open("rb") as handle:
                return self._upload(run_id, handle, name or path.name)
        if name is None:
            raise ValueError("name is required when the checkpoint is not given as a path")
        return self._upload(run_id, file, name)

    def _upload(self, run_id: str, content: bytes | IO[bytes], name: str) -> Any:
        headers = {"Content-Type": "application/octet-stream"}
        return self.call(
            "POST", f"{RUNS}/{run_id}/checkpoints", params={"name": name}, content=content, headers=headers
        )["data"]

    def end_run(self, run_id: str, status: str = "completed", error: str | None = None) -> Any:
        body: dict[str, Any] = {"status": status}
        if error is not None:
            body["error"] = error
        return self.call("POST", f"{RUNS}/{run_id}/end", json=body)["data"]
