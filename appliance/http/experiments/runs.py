"""`/api/v1/runs` and `/api/v1/experiments/:id/runs` (experiments-api.md, Run Endpoints):
lists, a run with its checkpoints, its metric history, logs (`level`, `since`, `tail`),
checkpoints and their download; and runs tracked from outside: created in an experiment,
then params, metrics with steps, log lines, progress and checkpoint files logged to
them, and ended. Logging calls are refused (422) for a run the appliance runs itself,
and for a run that has ended."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any
from urllib.parse import quote

from litestar import Controller, Request, get, post
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import Parameter
from litestar.response import File

from appliance.core.errors import invalid_fields
from appliance.core.experiments import RUN_LIST, LogLevel, LogQuery, RunStatus
from appliance.core.identity import Identity
from appliance.http.error_docs import errors, example
from appliance.http.experiments.envelope import Item, Page
from appliance.http.experiments.listing import ListRequest, list_parameters
from appliance.http.experiments.run_schemas import (
    CheckpointBody,
    LoggedBody,
    LogLineBody,
    LogsBody,
    MetricPointBody,
    MetricsBody,
    ParamsBody,
    ProgressBody,
    RunBody,
    RunCreateBody,
    RunDetailBody,
    RunEndBody,
    checkpoint_body,
    history_body,
    log_line_body,
    run_body,
    run_detail_body,
)
from appliance.services.experiments.runs import LogIn, MetricsIn, RunCreate, RunEnd, RunService

_LEVELS = tuple(level.value for level in LogLevel)
_ENDED = tuple(s.value for s in RunStatus if s.is_terminal)


def _log_query(level: str | None, since: str | None, tail: str | None) -> LogQuery:
    problems: dict[str, list[str]] = {}
    wanted: LogLevel | None = None
    if level is not None:
        if level.strip().lower() in _LEVELS:
            wanted = LogLevel(level.strip().lower())
        else:
            problems["level"] = [f"must be one of {', '.join(_LEVELS)}, not {level!r}"]
    moment: datetime | None = None
    if since is not None:
        try:
            moment = datetime.fromisoformat(since.strip().replace("Z", "+00:00"))
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)  # the API speaks UTC
        except ValueError:
            problems["since"] = [f"must be an ISO 8601 time (2024-01-15T10:30:00Z), not {since!r}"]
    count: int | None = None
    if tail is not None:
        try:
            count = int(tail.strip())
        except ValueError:
            problems["tail"] = [f"must be a whole number, not {tail!r}"]
    if problems:
        raise invalid_fields(problems)
    return LogQuery(level=wanted, since=moment, tail=count)


_LEVEL = Parameter(description="this level and the more severe ones: debug, info, warning, error")
_SINCE = Parameter(description="lines at or after this ISO 8601 time")
_TAIL = Parameter(description="only the last that many lines that match (1 to 10000)")
_CHECKPOINT_NAME = Parameter(description="the file's name, as the checkpoint keeps it (epoch_3.pt)")


class ExperimentRunsController(Controller):
    path = "/api/v1/experiments/{experiment_id:str}/runs"
    tags = ["runs"]

    @get(
        "/",
        dependencies={"listing": list_parameters(RUN_LIST)},
        summary="List an experiment's runs",
        opt=errors(403, 404),
    )
    async def list_experiment_runs(
        self, runs: RunService, identity: Identity, experiment_id: str, listing: ListRequest
    ) -> Page[RunBody]:
        return listing.page(await runs.list(identity, listing.query, experiment_id=experiment_id), run_body)

    @post("/", status_code=201, summary="Create a run tracked from outside (running until ended)", opt=errors(403, 404))
    async def create_run(
        self,
        runs: RunService,
        identity: Identity,
        experiment_id: str,
        data: Annotated[
            RunCreateBody,
            example(
                "A run with its params and tags",
                {"run": {"hyperparameters": {"lr": 0.01}, "tags": ["baseline", "model:gpt4"]}},
            ),
        ],
    ) -> Item[RunBody]:
        request = RunCreate(hyperparameters=data.run.hyperparameters, tags=data.run.tags)
        return Item(run_body(await runs.create(identity, experiment_id, request)))


class RunController(Controller):
    path = "/api/v1/runs"
    tags = ["runs"]

    @get("/", dependencies={"listing": list_parameters(RUN_LIST)}, summary="List runs", opt=errors(403))
    async def list_runs(self, runs: RunService, identity: Identity, listing: ListRequest) -> Page[RunBody]:
        return listing.page(await runs.list(identity, listing.query), run_body)

    @get("/{run_id:str}", summary="Get a run with its checkpoints", opt=errors(403, 404))
    async def get_run(self, runs: RunService, identity: Identity, run_id: str) -> Item[RunDetailBody]:
        detail = await runs.get(identity, run_id)
        return Item(run_detail_body(detail.run, detail.checkpoints))

    @get("/{run_id:str}/metrics", summary="A run's metric history, by metric, in step order", opt=errors(403, 404))
    async def metric_history(
        self,
        runs: RunService,
        identity: Identity,
        run_id: str,
        name: Annotated[str | None, Parameter(description="one metric only")] = None,
    ) -> Item[dict[str, list[MetricPointBody]]]:
        return Item(history_body(await runs.metric_history(identity, run_id, name)))

    @get("/{run_id:str}/logs", summary="A run's log lines (level, since, tail)", opt=errors(403, 404))
    async def logs(
        self,
        runs: RunService,
        identity: Identity,
        run_id: str,
        level: Annotated[str | None, _LEVEL] = None,
        since: Annotated[str | None, _SINCE] = None,
        tail: Annotated[str | None, _TAIL] = None,
    ) -> Item[list[LogLineBody]]:
        lines = await runs.logs(identity, run_id, _log_query(level, since, tail))
        return Item([log_line_body(line) for line in lines])

    @get("/{run_id:str}/checkpoints", summary="A run's checkpoints", opt=errors(403, 404))
    async def checkpoints(self, runs: RunService, identity: Identity, run_id: str) -> Item[list[CheckpointBody]]:
        return Item([checkpoint_body(c) for c in await runs.checkpoints(identity, run_id)])

    @get(
        "/{run_id:str}/checkpoints/{checkpoint_id:str}/download",
        summary="Download a checkpoint's file",
        opt=errors(403, 404),
        responses={
            200: ResponseSpec(
                data_container=bytes,
                media_type="application/octet-stream",
                description="The file's bytes, with its Content-Length",
                generate_examples=False,
            )
        },
    )
    async def download_checkpoint(self, runs: RunService, identity: Identity, run_id: str, checkpoint_id: str) -> File:
        found = await runs.checkpoint_file(identity, run_id, checkpoint_id)
        fallback = "".join(ch if 32 <= ord(ch) < 127 and ch not in '"\\' else "_" for ch in found.name)
        return File(
            path=found.path,
            media_type=found.content_type,
            headers={
                "Content-Disposition": f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(found.name)}",
                "X-Content-Type-Options": "nosniff",
            },
        )

    # --- logging calls of a run tracked from outside ----------------------------------

    @post(
        "/{run_id:str}/checkpoints",
        status_code=201,
        summary="Upload a checkpoint file of a run tracked from outside (the body is the file)",
        opt=errors(403, 404, 413, 422),
        # The file streams to disk under the checkpoint caps, not the app's body limit.
        request_max_body_size=None,
    )
    async def upload_checkpoint(
        self,
        runs: RunService,
        identity: Identity,
        run_id: str,
        request: Request[Any, Any, Any],
        name: Annotated[str, _CHECKPOINT_NAME],
    ) -> Item[CheckpointBody]:
        checkpoint = await runs.upload_checkpoint(identity, run_id, name, request.stream())
        return Item(checkpoint_body(checkpoint))

    @post("/{run_id:str}/params", status_code=200, summary="Log params (hyperparameters)", opt=errors(403, 404))
    async def log_params(
        self,
        runs: RunService,
        identity: Identity,
        run_id: str,
        data: Annotated[ParamsBody, example("Two params", {"params": {"lr": 0.01, "optimizer": "adam"}})],
    ) -> Item[RunBody]:
        return Item(run_body(await runs.log_params(identity, run_id, data.params)))

    @post("/{run_id:str}/metrics", status_code=200, summary="Log metrics lines with steps", opt=errors(403, 404))
    async def log_metrics(
        self,
        runs: RunService,
        identity: Identity,
        run_id: str,
        data: Annotated[
            MetricsBody, example("One line", {"metrics": [{"metrics": {"loss": 0.42, "epoch": 3}, "step": 3}]})
        ],
    ) -> Item[RunBody]:
        lines = [MetricsIn(metrics=line.metrics, step=line.step) for line in data.metrics]
        return Item(run_body(await runs.log_metrics(identity, run_id, lines)))

    @post("/{run_id:str}/logs", status_code=200, summary="Log lines with levels", opt=errors(403, 404))
    async def log_lines(
        self,
        runs: RunService,
        identity: Identity,
        run_id: str,
        data: Annotated[LogsBody, example("One line", {"logs": [{"level": "info", "message": "epoch 3 done"}]})],
    ) -> Item[LoggedBody]:
        lines = [LogIn(message=line.message, level=line.level) for line in data.logs]
        return Item(LoggedBody(accepted=await runs.log_lines(identity, run_id, lines)))

    @post("/{run_id:str}/progress", status_code=200, summary="Set a run's progress (0 to 1)", opt=errors(403, 404))
    async def set_progress(
        self, runs: RunService, identity: Identity, run_id: str, data: ProgressBody
    ) -> Item[RunBody]:
        return Item(run_body(await runs.set_progress(identity, run_id, data.progress)))

    @post("/{run_id:str}/end", status_code=200, summary="End a run tracked from outside", opt=errors(403, 404))
    async def end_run(
        self,
        runs: RunService,
        identity: Identity,
        run_id: str,
        data: Annotated[RunEndBody, example("Completed", {"status": "completed"})],
    ) -> Item[RunBody]:
        if data.status not in _ENDED:
            raise invalid_fields({"status": [f"must be one of {', '.join(_ENDED)}, not {data.status!r}"]})
        request = RunEnd(status=RunStatus(data.status), error=data.error)
        return Item(run_body(await runs.end(identity, run_id, request)))
