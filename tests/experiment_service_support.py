"""Helpers for the experiment tests at the service level: a real `Appliance` (real SQLite,
real Docker) in the test's own event loop, and waits on what its experiments do."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from appliance.app import Appliance
from appliance.config import load_settings
from appliance.core.experiments import EXPERIMENT_LIST, RUN_LIST, Experiment, ExperimentStatus, Run
from appliance.core.identity import LOCAL_OPERATOR, Identity
from appliance.core.listing import Filter, ListQuery, ListSpec, Position, SortKey
from appliance.services.experiments.experiments import ExperimentCreate
from tests.support import HANG_SECONDS, eventually_async

ADMIN = LOCAL_OPERATOR

# No warm containers for every language and engine at start (the machine has 2 cores):
# runs and evaluations get containers made for them. gVisor has its own tests.
BASE_SETTINGS: dict[str, Any] = {
    "engines": ["docker"],
    "batch_lane_engines": [],
    "warm_pool_min_idle": 0,
    "workers": 3,
}


@contextlib.asynccontextmanager
async def running_appliance(data_dir: Path, **overrides: Any) -> AsyncIterator[Appliance]:
    appliance = Appliance(load_settings({"data_dir": str(data_dir), **BASE_SETTINGS, **overrides}, environ={}))
    await appliance.start()
    try:
        yield appliance
    finally:
        await appliance.stop()


def code_config(code: str, **fields: Any) -> dict[str, Any]:
    return {"type": "code", "language": "python", "code": code, **fields}


def list_query(
    spec: ListSpec, sort: str, *, per_page: int = 100, page: int = 1, after: Position | None = None, **filters: Any
) -> ListQuery:
    """A query as the http layer would parse it: `sort` with "-" for descending, and
    `filter[param]` values by param (a tuple for several)."""
    parsed = []
    for param, value in filters.items():
        field = spec.filter_named(param)
        assert field is not None, param
        parsed.append(Filter(field.field, field.op, value if isinstance(value, tuple) else (value,)))
    return ListQuery(
        list_name=spec.name,
        sort=SortKey(sort.lstrip("-"), sort.startswith("-")),
        filters=tuple(parsed),
        per_page=per_page,
        page=None if after is not None else page,
        after=after,
    )


def run_query(sort: str = "-created_at", **kwargs: Any) -> ListQuery:
    return list_query(RUN_LIST, sort, **kwargs)


def experiment_query(sort: str = "-created_at", **kwargs: Any) -> ListQuery:
    return list_query(EXPERIMENT_LIST, sort, **kwargs)


async def create_experiment(
    appliance: Appliance, config: dict[str, Any], name: str = "test", identity: Identity = ADMIN, **fields: Any
) -> Experiment:
    return await appliance.experiments.create(identity, ExperimentCreate(name=name, config=config, **fields))


async def wait_status(
    appliance: Appliance, experiment_id: str, *statuses: ExperimentStatus, timeout: float = HANG_SECONDS
) -> Experiment:
    async def reached() -> Experiment:
        experiment = await appliance.experiments.get(ADMIN, experiment_id)
        assert experiment.status in statuses, experiment.status
        return experiment

    result: Experiment = await eventually_async(
        reached, timeout=timeout, interval=0.1, message=f"experiment {experiment_id} reaching {statuses}"
    )
    return result


async def runs_of(appliance: Appliance, experiment_id: str) -> list[Run]:
    page = await appliance.runs.list(ADMIN, run_query("position"), experiment_id=experiment_id)
    return page.items


async def wait_runs(appliance: Appliance, experiment_id: str, check: Any, message: str, timeout: float = HANG_SECONDS):
    """Wait until `check(runs)` is true (or, if it asserts, passes); returns the runs then."""

    async def holds() -> list[Run]:
        runs = await runs_of(appliance, experiment_id)
        assert check(runs) is not False, [(r.status.value, r.attempt) for r in runs]
        return runs

    return await eventually_async(holds, timeout=timeout, interval=0.1, message=message)
