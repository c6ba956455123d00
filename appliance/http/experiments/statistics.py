"""`/api/v1/statistical-results` and `/api/v1/experiments/:experiment_id/statistical-results`
(experiments-api.md, Statistical Results Endpoints)."""

from __future__ import annotations

import msgspec
from litestar import Controller, get, post

from appliance.core.identity import Identity
from appliance.core.listing import FilterField, FilterOp, ListSpec, ValueKind
from appliance.core.statistics import TEST_TYPES, StatisticalResultView, TestOptions, result_view
from appliance.http.experiments.envelope import Item, Page
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
    # Which values form each group: hyperparameters.<name> (runs) or metadata.<name>
    # (telemetry events); for paired tests pair_field says what makes an item.
    group_field: str | None = None
    pair_field: str | None = None
    # Or the values themselves: group -> list (paired by position) or -> {item id: value}.
    data: dict[str, list[float | bool] | dict[str, float | bool]] | None = None
    options: TestOptions = msgspec.field(default_factory=TestOptions)


class TestCreate(msgspec.Struct, forbid_unknown_fields=True):
    test: TestInput


class StatisticalResultController(Controller):
    path = "/api/v1/statistical-results"
    tags = ["statistical results"]

    @get("/", dependencies={"listing": list_parameters(RESULT_LIST)}, summary="List statistical results")
    async def list_results(
        self, statistics: StatisticsService, identity: Identity, listing: ListRequest
    ) -> Page[StatisticalResultView]:
        return listing.page(await statistics.list(identity, listing.query), result_view)

    @post("/", status_code=201, summary="Run a statistical test and store its result")
    async def run_test(
        self, statistics: StatisticsService, identity: Identity, data: TestCreate
    ) -> Item[StatisticalResultView]:
        request = msgspec.convert(msgspec.structs.asdict(data.test), TestRequest)
        return Item(result_view(await statistics.run(identity, request)))

    @get("/{stat_id:str}", summary="Get a statistical result")
    async def get_result(
        self, statistics: StatisticsService, identity: Identity, stat_id: str
    ) -> Item[StatisticalResultView]:
        return Item(result_view(await statistics.get(identity, stat_id)))


class ExperimentResultsController(Controller):
    path = "/api/v1/experiments/{experiment_id:str}/statistical-results"
    tags = ["statistical results"]

    @get("/", dependencies={"listing": list_parameters(RESULT_LIST)}, summary="List an experiment's results")
    async def list_experiment_results(
        self, statistics: StatisticsService, identity: Identity, experiment_id: str, listing: ListRequest
    ) -> Page[StatisticalResultView]:
        found = await statistics.list(identity, listing.query, experiment_id)
        return listing.page(found, result_view)
