"""`/api/v1/statistical-results` and `/api/v1/experiments/:experiment_id/statistical-results`
(experiments-api.md, Statistical Results Endpoints)."""

from __future__ import annotations

from datetime import datetime

import msgspec
from litestar import Controller, get, post

from appliance.core.identity import Identity
from appliance.core.listing import FilterField, FilterOp, ListSpec, ValueKind
from appliance.core.statistics import (
    TEST_TYPES,
    Bootstrap,
    Interpretation,
    Interval,
    PairwiseComparison,
    PowerAnalysis,
    StatisticalResult,
    TestOptions,
)
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


class StatisticalResultBody(msgspec.Struct, kw_only=True):
    id: str
    experiment_id: str | None
    test_type: str
    groups: list[str]
    metric: str | None
    group_field: str | None
    pair_field: str | None
    source: str  # inline, runs or telemetry
    method: str
    statistic: float
    statistic_name: str
    degrees_of_freedom: list[float] | None
    p_value: float
    alpha: float
    alternative: str
    effect_size: float
    effect_size_type: str
    confidence_interval: list[float] | None  # of the effect size
    confidence_level: float
    confidence_interval_method: str | None
    sample_sizes: list[int]
    means: list[float]
    std_devs: list[float]
    medians: list[float]
    difference: Interval | None
    effect_sizes: dict[str, float]
    pairwise: list[PairwiseComparison] | None
    power: PowerAnalysis | None
    bootstrap: Bootstrap | None
    pairs: int | None
    unpaired_dropped: int
    options: TestOptions
    interpretation: Interpretation | None
    created_at: datetime


def result_body(result: StatisticalResult) -> StatisticalResultBody:
    outcome = result.outcome
    return StatisticalResultBody(
        id=result.id,
        experiment_id=result.experiment_id,
        test_type=result.test_type.value,
        groups=result.groups,
        metric=result.metric,
        group_field=result.group_field,
        pair_field=result.pair_field,
        source=result.source.value,
        method=outcome.method,
        statistic=outcome.statistic,
        statistic_name=outcome.statistic_name,
        degrees_of_freedom=outcome.degrees_of_freedom,
        p_value=outcome.p_value,
        alpha=result.alpha,
        alternative=result.alternative.value,
        effect_size=outcome.effect_size,
        effect_size_type=outcome.effect_size_type.value,
        confidence_interval=outcome.confidence_interval,
        confidence_level=outcome.confidence_level,
        confidence_interval_method=outcome.confidence_interval_method,
        sample_sizes=outcome.summary.sample_sizes,
        means=outcome.summary.means,
        std_devs=outcome.summary.std_devs,
        medians=outcome.summary.medians,
        difference=outcome.difference,
        effect_sizes=outcome.effect_sizes,
        pairwise=outcome.pairwise,
        power=outcome.power,
        bootstrap=outcome.bootstrap,
        pairs=result.pairs,
        unpaired_dropped=result.unpaired_dropped,
        options=result.options,
        interpretation=outcome.interpretation,
        created_at=result.created_at,
    )


class StatisticalResultController(Controller):
    path = "/api/v1/statistical-results"
    tags = ["statistical results"]

    @get("/", dependencies={"listing": list_parameters(RESULT_LIST)}, summary="List statistical results")
    async def list_results(
        self, statistics: StatisticsService, identity: Identity, listing: ListRequest
    ) -> Page[StatisticalResultBody]:
        return listing.page(await statistics.list(identity, listing.query), result_body)

    @post("/", status_code=201, summary="Run a statistical test and store its result")
    async def run_test(
        self, statistics: StatisticsService, identity: Identity, data: TestCreate
    ) -> Item[StatisticalResultBody]:
        request = msgspec.convert(msgspec.structs.asdict(data.test), TestRequest)
        return Item(result_body(await statistics.run(identity, request)))

    @get("/{stat_id:str}", summary="Get a statistical result")
    async def get_result(
        self, statistics: StatisticsService, identity: Identity, stat_id: str
    ) -> Item[StatisticalResultBody]:
        return Item(result_body(await statistics.get(identity, stat_id)))


class ExperimentResultsController(Controller):
    path = "/api/v1/experiments/{experiment_id:str}/statistical-results"
    tags = ["statistical results"]

    @get("/", dependencies={"listing": list_parameters(RESULT_LIST)}, summary="List an experiment's results")
    async def list_experiment_results(
        self, statistics: StatisticsService, identity: Identity, experiment_id: str, listing: ListRequest
    ) -> Page[StatisticalResultBody]:
        found = await statistics.list(identity, listing.query, experiment_id)
        return listing.page(found, result_body)
