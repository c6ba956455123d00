"""Where a test's values come from, and how paired values are lined up.

A `MetricSource` answers the values of `metric` in an experiment, grouped by the value
of `group_field` and, for paired tests, keyed by the value of `pair_field`:

- runs (`group_field` = `hyperparameters.<name>`, `tags` or `tags.<key>`): one value per
  completed run, its latest value of the run metric `metric`; pairs by `seed`,
  `hyperparameters.<name>` or `tags.<key>` (tag_groups.py says how tags group runs);
- telemetry (`group_field` = `metadata.<name>`): one value per event of the experiment,
  its measurement `metric`; pairs by `metadata.<name>` (a dataset item id, say);
- inline data in the request: `data` maps each group to a list of values (paired
  position by position) or to an object of item id -> value (paired by id).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from appliance.core.errors import ValidationError
from appliance.core.identity import Identity
from appliance.core.statistics import DataSource, GroupedValues, KeyedValue, MetricQuery
from appliance.services.statistics.tag_groups import TAG_KEY_PREFIX, TAGS_FIELD, is_tag_field, keyed_by_tags
from appliance.store.experiment_tables import RunValues

RUN_GROUP_PREFIXES = ("hyperparameters.", TAG_KEY_PREFIX)
TELEMETRY_PREFIXES = ("metadata.",)
RUN_PAIR_FIELDS = ("seed",)

InlineGroup = Sequence[float | bool] | Mapping[str, float | bool]


class MetricSource(Protocol):
    """Values the appliance holds: runs' metrics (RunMetricSource, store/experiment_tables.py),
    telemetry events' measurements (telemetry_source.py, store/telemetry/experiment_reads.py)."""

    async def values(self, identity: Identity, query: MetricQuery) -> list[KeyedValue]:
        """Every value of the query's metric in the experiment, with its group and its
        pair key. The caller may see the experiment (the service checked)."""
        ...

    async def fields_naming(self, identity: Identity, experiment_id: str, groups: Sequence[str]) -> list[str]:
        """The group fields of this source under which the experiment has a value for
        every one of `groups`."""
        ...


def source_of(group_field: str) -> DataSource | None:
    if group_field == TAGS_FIELD or group_field.startswith(RUN_GROUP_PREFIXES):
        return DataSource.RUNS
    if group_field.startswith(TELEMETRY_PREFIXES):
        return DataSource.TELEMETRY
    return None


class RunMetricSource:
    """Runs' latest metric values (store/experiment_tables.py)."""

    def __init__(self, runs: RunValues) -> None:
        self._runs = runs

    async def values(self, identity: Identity, query: MetricQuery) -> list[KeyedValue]:
        if is_tag_field(query.group_field) or is_tag_field(query.pair_field):
            return keyed_by_tags(await self._runs.tagged_values(query), query)
        return await self._runs.values(query)

    async def fields_naming(self, identity: Identity, experiment_id: str, groups: Sequence[str]) -> list[str]:
        return await self._runs.fields_naming(experiment_id, groups)


def _as_float(value: float | bool) -> float:
    return 1.0 if value is True else 0.0 if value is False else float(value)


def _problem(field: str, reason: str) -> ValidationError:
    return ValidationError(f"{field}: {reason}", details={"field": field, "reason": reason})


def group_values(
    keyed: list[KeyedValue], groups: Sequence[str] | None, paired: bool, field: str = "group_field"
) -> GroupedValues:
    """The values of each group (those asked for, or every one found), lined up by pair
    key when `paired`: an item missing from a group is left out of all of them."""
    found: dict[str, list[KeyedValue]] = {}
    for item in keyed:
        found.setdefault(item.group, []).append(item)
    names = list(groups) if groups is not None else sorted(found)
    missing = [g for g in names if g not in found]
    if missing:
        seen = ", ".join(sorted(found)[:20]) or "none"
        raise _problem("groups", f"no values for {', '.join(map(repr, missing))} (values of {field} found: {seen})")
    if not paired:
        return GroupedValues(groups=names, values=[[k.value for k in found[g]] for g in names])
    by_pair: list[dict[str, float]] = []
    for name in names:
        values: dict[str, float] = {}
        for item in found[name]:
            if item.pair is None:
                raise _problem("pair_field", f"a value of group {name!r} has no pair key")
            if item.pair in values:
                raise _problem(
                    "pair_field",
                    f"item {item.pair!r} appears more than once in group {name!r}: a paired test takes one value "
                    "per item and group",
                )
            values[item.pair] = item.value
        by_pair.append(values)
    shared = [key for key in by_pair[0] if all(key in other for other in by_pair[1:])]
    everything = set().union(*(set(v) for v in by_pair))
    return GroupedValues(
        groups=names,
        values=[[values[key] for key in shared] for values in by_pair],
        pair_ids=[list(shared) for _ in names],
        unpaired_dropped=len(everything) - len(shared),
    )


def inline_values(data: Mapping[str, InlineGroup], groups: Sequence[str] | None, paired: bool) -> GroupedValues:
    """The groups of a request's `data`: lists pair by position, objects by item id."""
    names = list(groups) if groups is not None else list(data)
    missing = [g for g in names if g not in data]
    if missing:
        raise _problem("groups", f"{', '.join(map(repr, missing))} not in data (data has {', '.join(map(repr, data))})")
    chosen = [data[name] for name in names]
    by_id = [(name, group) for name, group in zip(names, chosen, strict=True) if isinstance(group, Mapping)]
    in_order = [group for group in chosen if not isinstance(group, Mapping)]
    if by_id and in_order:
        raise _problem(
            "data", "give every group as a list (paired by position) or every group as an object of id -> value"
        )
    if by_id:
        keyed = [
            KeyedValue(group=name, value=_as_float(value), pair=key)
            for name, group in by_id
            for key, value in group.items()
        ]
        return group_values(keyed, names, paired, field="data")
    lists = [[_as_float(v) for v in group] for group in in_order]
    if paired and len({len(values) for values in lists}) > 1:
        sizes = ", ".join(f"{name}: {len(values)}" for name, values in zip(names, lists, strict=True))
        raise _problem(
            "data",
            f"a paired test pairs the lists position by position, so they must be equally long ({sizes}); "
            "or give each group as an object of item id -> value",
        )
    return GroupedValues(groups=names, values=lists)
