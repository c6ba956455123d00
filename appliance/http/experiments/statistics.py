"""`/api/v1/statistical-results` and `/api/v1/experiments/:experiment_id/statistical-results`
(experiments-api.md, Statistical Results Endpoints)."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, get, post

from appliance.core.identity import Identity
from appliance.core.listing import FilterField, FilterOp, ListSpec, ValueKind
from appliance.core.statistics import TEST_TYPES, StatisticalResult, StatisticalResultView, TestOptions, result_view
from appliance.http.error_docs import errors, example
from appliance.http.experiments.envelope import Item, Page, Timestamp
from appliance.http.experiments.listing import ListRequest, list_parameters
from appliance.services.statistics.service import StatisticsService, TestRequest

RESULT_LIST = ListSpec(
    name="statistical_results",
    sorts=("created_at", "test_type", "metric", "p_value"),
    default_sort="-created_at",
    filters=(
        FilterField(param="experiment_id", field="experiment_id"),
        FilterField(param="test_type", field="test_type", kind=ValueKind.CHOICE, choices=TEST_TYPES),
        FilterField(param="metric", field="metric"),
        FilterField(param="created_after", field="created_at", op=FilterOp.AT_OR_AFTER, kind=ValueKind.DATETIME),
        FilterField(param="created_before", field="created_at", op=FilterOp.BEFORE, kind=ValueKind.DATETIME),
    ),
)


class TestInput(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    test_type: str
    # The groups to compare, in order (a one-sided alternative reads "first vs second").
    groups: list[str] | None = None
    experiment_id: str | None = None
    metric: str | None = None
    # Which values form each group: hyperparameters.<name>, tags or tags.<key> (runs), or
    # metadata.<name> (telemetry events); for paired tests pair_field says what makes an item.
    group_field: str | None = None
    pair_field: str | None = None
    # Or the values themselves: group -> list (paired by position) or -> {item id: value}.
    data: dict[str, list[float | bool] | dict[str, float | bool]] | None = None
    options: TestOptions = msgspec.field(default_factory=TestOptions)


class TestCreate(msgspec.Struct, forbid_unknown_fields=True):
    test: TestInput


class StatisticalResultBody(StatisticalResultView, kw_only=True):
    """The view, with its time as the document's `Timestamp` (for the OpenAPI schema)."""

    created_at: Timestamp


def result_body(result: StatisticalResult) -> StatisticalResultBody:
    view = result_view(result)
    return StatisticalResultBody(**{name: getattr(view, name) for name in view.__struct_fields__})


RUN_TEST_EXAMPLE = example(
    "McNemar: two models scored right (1) or wrong (0) on the same items",
    {
        "test": {
            "test_type": "mcnemar",
            "groups": ["model_a", "model_b"],
            "metric": "correct",
            "data": {"model_a": {"q1": 1, "q2": 1, "q3": 0, "q4": 1}, "model_b": {"q1": 0, "q2": 1, "q3": 0, "q4": 0}},
            "options": {"alpha": 0.05},
        }
    },
)


class StatisticalResultController(Controller):
    path = "/api/v1/statistical-results"
    tags = ["statistical results"]

    @get(
        "/",
        dependencies={"listing": list_parameters(RESULT_LIST)},
        summary="List statistical results",
        opt=errors(403),
    )
    async def list_results(
        self, statistics: StatisticsService, identity: Identity, listing: ListRequest
    ) -> Page[StatisticalResultBody]:
        return listing.page(await statistics.list(identity, listing.query), result_body)

    @post("/", status_code=201, summary="Run a statistical test and store its result", opt=errors(403, 404))
    async def run_test(
        self, statistics: StatisticsService, identity: Identity, data: Annotated[TestCreate, RUN_TEST_EXAMPLE]
    ) -> Item[StatisticalResultBody]:
        request = msgspec.convert(msgspec.structs.asdict(data.test), TestRequest)
        return Item(result_body(await statistics.run(identity, request)))

    @get("/{stat_id:str}", summary="Get a statistical result", opt=errors(403, 404))
    async def get_result(
        self, statistics: StatisticsService, identity: Identity, stat_id: str
    ) -> Item[StatisticalResultBody]:
        return Item(result_body(await statistics.get(identity, stat_id)))


class ExperimentResultsController(Controller):
    path = "/api/v1/experiments/{experiment_id:str}/statistical-results"
    tags = ["statistical results"]

    @get(
        "/",
        dependencies={"listing": list_parameters(RESULT_LIST)},
        summary="List an experiment's results",
        opt=errors(403, 404),
    )
    async def list_experiment_results(
        self, statistics: StatisticsService, identity: Identity, experiment_id: str, listing: ListRequest
    ) -> Page[StatisticalResultBody]:
        found = await statistics.list(identity, listing.query, experiment_id)
        return listing.page(found, result_body)
