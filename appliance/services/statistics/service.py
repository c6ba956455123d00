"""StatisticsService: run a test on values the appliance holds or the caller gives, store
the result, list and get results.

Running a test needs `execute` (it creates a result), reading needs `read`. A key sees
its owner's results; an admin sees all. A result on an experiment needs the experiment
to be one the caller may see (another owner's is a 404, as if it did not exist). The
arithmetic runs in a worker thread, at most two tests at once, so a large bootstrap
never holds up the event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Protocol

import msgspec

from appliance.core.clock import utc_now_ms
from appliance.core.errors import NotFound, invalid_fields
from appliance.core.identity import EXECUTE, READ, Identity
from appliance.core.listing import ListPage, ListQuery
from appliance.core.statistics import (
    TEST_TYPES,
    DataSource,
    GroupedValues,
    MetricQuery,
    StatisticalResult,
    TestOptions,
    TestSpec,
    TestType,
    new_stat_id,
)
from appliance.services.access.auth import require_permission
from appliance.services.statistics.engine import run_test, spec_problems
from appliance.services.statistics.sources import (
    RUN_GROUP_PREFIXES,
    RUN_PAIR_FIELDS,
    TELEMETRY_PREFIXES,
    InlineGroup,
    MetricSource,
    group_values,
    inline_values,
    source_of,
)
from appliance.services.statistics.tag_groups import TAG_FIELD_RULE, is_tag_field, tag_field_problem
from appliance.store.statistical_results import StatisticalResultStore

MAX_FIELD_CHARS = 200
TESTS_AT_ONCE = 2


class ExperimentDirectory(Protocol):
    async def owner_of(self, experiment_id: str) -> str | None:
        """The owner of the experiment, None when there is no such experiment."""
        ...


class TestRequest(msgspec.Struct, kw_only=True):
    """A test as a caller asks for it (experiments-api.md, Run Statistical Test)."""

    test_type: str
    groups: list[str] | None = None
    experiment_id: str | None = None
    metric: str | None = None
    group_field: str | None = None
    pair_field: str | None = None
    data: Mapping[str, InlineGroup] | None = None
    options: TestOptions = msgspec.field(default_factory=TestOptions)


def _field_problems(request: TestRequest, paired: bool) -> dict[str, list[str]]:
    problems: dict[str, list[str]] = {}
    for name in ("experiment_id", "metric", "group_field", "pair_field"):
        value = getattr(request, name)
        if value is not None and not (value.strip() and len(value) <= MAX_FIELD_CHARS):
            problems[name] = [f"must be non-empty text of at most {MAX_FIELD_CHARS} characters"]
    if request.data is not None:
        for name in ("group_field", "pair_field"):
            if getattr(request, name) is not None:
                problems[name] = ["not with data: data gives each group's values itself"]
        if len(request.data) < 2:
            problems["data"] = ["give the values of at least two groups"]
        return problems
    if request.group_field is None:
        if request.groups is None or request.experiment_id is None:
            problems["group_field"] = [
                "say which values form each group: group_field (hyperparameters.<name>, tags or tags.<key> for "
                "runs, metadata.<name> for telemetry events) with metric and experiment_id, or the values themselves "
                "in data (without group_field, groups name values of the one field that has them all)"
            ]
    elif source_of(request.group_field) is None:
        problems["group_field"] = [
            f"must be hyperparameters.<name> (runs), {TAG_FIELD_RULE} (runs), or metadata.<name> (telemetry events)"
        ]
    for name in ("group_field", "pair_field"):
        field = getattr(request, name)
        if name not in problems and is_tag_field(field):
            problem = tag_field_problem(field, name, request.groups)
            if problem is not None:
                problems[name] = [problem]
    for name in ("metric", "experiment_id"):
        if getattr(request, name) is None:
            problems[name] = [f"required without data: {name} names what is compared"]
    if paired and request.pair_field is None:
        problems["pair_field"] = [
            f"{request.test_type} compares the same items under two conditions: pair_field says what makes an item "
            "(seed, hyperparameters.<name> or tags.<key> for runs, metadata.<name> for telemetry, "
            "e.g. metadata.item_id)"
        ]
    if not paired and request.pair_field is not None:
        problems["pair_field"] = ["only paired tests take it"]
    source = source_of(request.group_field) if request.group_field else None
    if (
        paired
        and request.pair_field
        and source is not None
        and "pair_field" not in problems
        and not _pairs_within(source, request.pair_field)
    ):
        problems["pair_field"] = ["must be a field of the same source as group_field"]
    return problems


def _pairs_within(source: DataSource, pair_field: str) -> bool:
    if source is DataSource.TELEMETRY:
        return pair_field.startswith(TELEMETRY_PREFIXES)
    return pair_field in RUN_PAIR_FIELDS or pair_field.startswith(RUN_GROUP_PREFIXES)


class StatisticsService:
    def __init__(
        self,
        store: StatisticalResultStore,
        experiments: ExperimentDirectory,
        sources: Mapping[DataSource, MetricSource],
    ) -> None:
        self._store = store
        self._experiments = experiments
        self._sources = dict(sources)
        self._running = asyncio.Semaphore(TESTS_AT_ONCE)

    async def run(self, identity: Identity, request: TestRequest) -> StatisticalResult:
        require_permission(identity, EXECUTE)
        if request.test_type not in TEST_TYPES:
            raise invalid_fields({"test_type": [f"must be one of {', '.join(TEST_TYPES)}"]})
        test_type = TestType(request.test_type)
        spec = TestSpec(test_type=test_type, groups=list(request.groups or []), options=request.options)
        problems = _field_problems(request, spec.paired)
        if request.groups is not None or request.data is None:
            problems.update(
                {k: v for k, v in spec_problems(spec).items() if k != "groups" or request.groups is not None}
            )
        if problems:
            raise invalid_fields(problems)
        if request.experiment_id is not None:
            await self._visible_experiment(identity, request.experiment_id)
        if request.data is None and request.group_field is None:
            request = msgspec.structs.replace(request, group_field=await self._group_field_of(identity, request))
        values, source = await self._values(identity, request, spec.paired)
        spec = msgspec.structs.replace(spec, groups=values.groups)
        label = request.metric or "the values given"
        async with self._running:
            outcome = await asyncio.to_thread(run_test, spec, values, label)
        result = StatisticalResult(
            id=new_stat_id(),
            owner=identity.owner,
            experiment_id=request.experiment_id,
            test_type=test_type,
            groups=values.groups,
            metric=request.metric,
            group_field=request.group_field,
            pair_field=request.pair_field,
            source=source,
            alpha=spec.options.alpha,
            alternative=spec.options.alternative,
            options=spec.options,
            outcome=outcome,
            pairs=len(values.values[0]) if spec.paired else None,
            unpaired_dropped=values.unpaired_dropped,
            created_at=utc_now_ms(),
        )
        if not await self._store.insert(result):
            raise NotFound(f"no experiment {request.experiment_id}")
        return result

    async def _group_field_of(self, identity: Identity, request: TestRequest) -> str:
        """The field whose values the groups named are, when the request names groups
        but no group_field (as experiments-api.md's example does): the one field of the
        experiment's runs (a hyperparameter) or events (a metadata key) that takes every
        group as a value."""
        assert request.experiment_id is not None and request.groups is not None  # checked before
        candidates: list[str] = []
        for source in self._sources.values():
            candidates += await source.fields_naming(identity, request.experiment_id, request.groups)
        if len(candidates) == 1:
            return candidates[0]
        groups = ", ".join(map(repr, request.groups))
        found = (
            f"each of {', '.join(candidates)} has them all"
            if candidates
            else "no hyperparameter of its runs and no metadata key of its events has them all"
        )
        raise invalid_fields({"group_field": [f"say which field's values {groups} are: {found}"]})

    async def _values(self, identity: Identity, request: TestRequest, paired: bool) -> tuple[GroupedValues, DataSource]:
        if request.data is not None:
            return inline_values(request.data, request.groups, paired), DataSource.INLINE
        assert request.group_field and request.metric and request.experiment_id  # checked above
        source = source_of(request.group_field)
        assert source is not None
        query = MetricQuery(
            experiment_id=request.experiment_id,
            metric=request.metric,
            group_field=request.group_field,
            pair_field=request.pair_field,
            groups=tuple(request.groups) if request.groups is not None else None,
        )
        keyed = await self._sources[source].values(identity, query)
        return group_values(keyed, request.groups, paired), source

    async def get(self, identity: Identity, stat_id: str) -> StatisticalResult:
        require_permission(identity, READ)
        result = await self._store.get(stat_id)
        if result is None or not identity.may_see(result.owner):
            raise NotFound(f"no statistical result {stat_id}")
        return result

    async def list(
        self, identity: Identity, query: ListQuery, experiment_id: str | None = None
    ) -> ListPage[StatisticalResult]:
        require_permission(identity, READ)
        if experiment_id is not None:
            await self._visible_experiment(identity, experiment_id)
        return await self._store.list_page(query, None if identity.is_admin else identity.owner, experiment_id)

    async def of_experiment(self, identity: Identity, experiment_id: str) -> Sequence[StatisticalResult]:
        """Every result on the experiment the caller may see (for exports and reports)."""
        require_permission(identity, READ)
        await self._visible_experiment(identity, experiment_id)
        found = await self._store.of_experiment(experiment_id)
        return [r for r in found if identity.may_see(r.owner)]

    async def _visible_experiment(self, identity: Identity, experiment_id: str) -> None:
        owner = await self._experiments.owner_of(experiment_id)
        if owner is None or not identity.may_see(owner):
            raise NotFound(f"no experiment {experiment_id}")
