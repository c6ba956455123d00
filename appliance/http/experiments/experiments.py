"""`/api/v1/experiments`: experiments (experiments-api.md, Experiment Endpoints): list,
create, get (with its runs and results summary), update, delete, and the actions start,
pause, resume, cancel and clone. An action the experiment's status does not allow, and a
delete while it runs or is paused, are 422s naming the status and the allowed actions."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import msgspec
from litestar import Controller, delete, get, patch, post
from litestar.handlers import HTTPRouteHandler

from appliance.core.clock import iso_z
from appliance.core.experiments import EXPERIMENT_LIST, Experiment
from appliance.core.identity import Identity
from appliance.http.error_docs import errors, example
from appliance.http.experiments.envelope import Item, Page, Timestamp
from appliance.http.experiments.listing import ListRequest, list_parameters
from appliance.services.experiments.experiments import (
    ExperimentCreate,
    ExperimentDetail,
    ExperimentService,
    ExperimentUpdate,
    ResultsSummary,
)


class ExperimentInput(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: str | None = None  # required: left out, it is a 422 "can't be blank"
    description: str | None = None
    config: dict[str, Any] | None = None  # required; its `type` decides what starting it does
    tags: list[str] | None = None


class ExperimentCreateBody(msgspec.Struct, forbid_unknown_fields=True):
    experiment: ExperimentInput


class ExperimentPatch(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: str | None = None
    description: str | None = None
    tags: list[str] | None = None
    config: dict[str, Any] | None = None  # only while pending; replaces the config whole


class ExperimentUpdateBody(msgspec.Struct, forbid_unknown_fields=True):
    experiment: ExperimentPatch


class CloneBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: str | None = None  # default: the source's name with " (copy)"


class PauseBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    # Stop running runs at once and put them back in line (default: let them finish).
    stop_running: bool = False


class ExperimentBody(msgspec.Struct, kw_only=True):
    id: str
    name: str
    description: str
    status: str
    config: dict[str, Any]
    tags: list[str]
    program_sha256: str | None  # the program its runs execute, fixed at start
    started_at: Timestamp | None
    completed_at: Timestamp | None
    created_at: Timestamp
    updated_at: Timestamp


class RunSummaryBody(msgspec.Struct, kw_only=True):
    id: str
    status: str
    progress: float
    attempt: int
    source: str


class ExperimentDetailBody(ExperimentBody, kw_only=True):
    runs: list[RunSummaryBody]
    # total_runs, completed_runs, failed_runs, cancelled_runs, running_runs, pending_runs,
    # objective {metric, direction} or null, best_<metric> and best_run_id.
    results_summary: dict[str, Any]
    progress: float
    eta_seconds: float | None
    allowed_actions: list[str]


def _when(moment: Any) -> str | None:
    return None if moment is None else iso_z(moment)


def _fields(experiment: Experiment) -> dict[str, Any]:
    return {
        "id": experiment.id,
        "name": experiment.name,
        "description": experiment.description,
        "status": experiment.status.value,
        "config": experiment.config,
        "tags": experiment.tags,
        "program_sha256": experiment.program_sha256,
        "started_at": _when(experiment.started_at),
        "completed_at": _when(experiment.completed_at),
        "created_at": iso_z(experiment.created_at),
        "updated_at": iso_z(experiment.updated_at),
    }


def experiment_body(experiment: Experiment) -> ExperimentBody:
    return ExperimentBody(**_fields(experiment))


def summary_body(summary: ResultsSummary) -> dict[str, Any]:
    body: dict[str, Any] = {
        "total_runs": summary.total_runs,
        "completed_runs": summary.completed_runs,
        "failed_runs": summary.failed_runs,
        "cancelled_runs": summary.cancelled_runs,
        "running_runs": summary.running_runs,
        "pending_runs": summary.pending_runs,
        "objective": None,
    }
    if summary.objective is not None:
        metric = summary.objective.metric
        body["objective"] = {"metric": metric, "direction": summary.objective.direction.value}
        body[f"best_{metric}"] = summary.best_value
        body["best_run_id"] = summary.best_run_id
    return body


def detail_body(detail: ExperimentDetail) -> ExperimentDetailBody:
    return ExperimentDetailBody(
        **_fields(detail.experiment),
        runs=[
            RunSummaryBody(
                id=r.id, status=r.status.value, progress=r.progress, attempt=r.attempt, source=r.source.value
            )
            for r in detail.runs
        ],
        results_summary=summary_body(detail.results_summary),
        progress=detail.progress,
        eta_seconds=detail.eta_seconds,
        allowed_actions=[a.value for a in detail.allowed_actions],
    )


_CREATE_EXAMPLE = example(
    "A grid of 2 x 2 points of a Python program",
    {
        "experiment": {
            "name": "lr sweep",
            "description": "learning rate and batch size",
            "config": {
                "type": "code",
                "language": "python",
                "code": 'print(\'{"metrics": {"loss": 0.5}, "step": 1}\')',
                "grid": {"lr": [0.1, 0.01], "batch_size": [16, 32]},
                "max_parallel": 2,
                "objective": {"metric": "loss", "direction": "minimize"},
            },
            "tags": ["sweep"],
        }
    },
)


Transition = Callable[[ExperimentService, Identity, str], Awaitable[Experiment]]


def _transition(action: str, act: Transition, summary: str) -> HTTPRouteHandler:
    """`POST /{experiment_id}/{action}`: an action with no body that answers the experiment
    as it left it (a 422 when its status does not allow it)."""

    async def handler(
        self: Controller, experiments: ExperimentService, identity: Identity, experiment_id: str
    ) -> Item[ExperimentBody]:
        return Item(experiment_body(await act(experiments, identity, experiment_id)))

    handler.__name__ = handler.__qualname__ = f"{action}_experiment"
    return post(f"/{{experiment_id:str}}/{action}", status_code=200, summary=summary, opt=errors(403, 404, 422))(
        handler
    )


class ExperimentController(Controller):
    path = "/api/v1/experiments"
    tags = ["experiments"]

    @get(
        "/",
        dependencies={"listing": list_parameters(EXPERIMENT_LIST)},
        summary="List experiments",
        opt=errors(403),
    )
    async def list_experiments(
        self, experiments: ExperimentService, identity: Identity, listing: ListRequest
    ) -> Page[ExperimentBody]:
        return listing.page(await experiments.list(identity, listing.query), experiment_body)

    @post("/", status_code=201, summary="Create an experiment (pending)", opt=errors(403, 404))
    async def create_experiment(
        self,
        experiments: ExperimentService,
        identity: Identity,
        data: Annotated[ExperimentCreateBody, _CREATE_EXAMPLE],
    ) -> Item[ExperimentBody]:
        fields = msgspec.convert(msgspec.structs.asdict(data.experiment), ExperimentCreate)
        return Item(experiment_body(await experiments.create(identity, fields)))

    @get("/{experiment_id:str}", summary="Get an experiment with its runs and results", opt=errors(403, 404))
    async def get_experiment(
        self, experiments: ExperimentService, identity: Identity, experiment_id: str
    ) -> Item[ExperimentDetailBody]:
        return Item(detail_body(await experiments.details(identity, experiment_id)))

    @patch(
        "/{experiment_id:str}",
        summary="Change an experiment (config only while pending)",
        opt=errors(403, 404),
    )
    async def update_experiment(
        self, experiments: ExperimentService, identity: Identity, experiment_id: str, data: ExperimentUpdateBody
    ) -> Item[ExperimentBody]:
        changes = msgspec.convert(msgspec.structs.asdict(data.experiment), ExperimentUpdate)
        return Item(experiment_body(await experiments.update(identity, experiment_id, changes)))

    @delete(
        "/{experiment_id:str}",
        status_code=204,
        summary="Delete an experiment with its runs (refused while running or paused)",
        opt=errors(403, 404, 422),
    )
    async def delete_experiment(self, experiments: ExperimentService, identity: Identity, experiment_id: str) -> None:
        await experiments.delete(identity, experiment_id)

    start_experiment = _transition("start", ExperimentService.start, "Start a pending experiment")

    @post(
        "/{experiment_id:str}/pause",
        status_code=200,
        summary="Pause a running experiment (running runs finish unless stop_running)",
        opt=errors(403, 404, 422),
    )
    async def pause_experiment(
        self,
        experiments: ExperimentService,
        identity: Identity,
        experiment_id: str,
        data: PauseBody | None = None,
    ) -> Item[ExperimentBody]:
        stop_running = data.stop_running if data is not None else False
        return Item(experiment_body(await experiments.pause(identity, experiment_id, stop_running)))

    resume_experiment = _transition("resume", ExperimentService.resume, "Resume a paused experiment")
    cancel_experiment = _transition(
        "cancel", ExperimentService.cancel, "Cancel an experiment (running runs are killed)"
    )

    @post(
        "/{experiment_id:str}/clone",
        status_code=201,
        summary="Clone an experiment: a new pending one with its config and tags",
        opt=errors(403, 404),
    )
    async def clone_experiment(
        self,
        experiments: ExperimentService,
        identity: Identity,
        experiment_id: str,
        data: CloneBody | None = None,
    ) -> Item[ExperimentBody]:
        name = data.name if data is not None else None
        return Item(experiment_body(await experiments.clone(identity, experiment_id, name)))
