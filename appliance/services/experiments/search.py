"""Hyperparameter points: a `grid` (every combination), a `list` (the points as given), or
a seeded `random` sample (n points drawn from ranges and choices). The same config and
seed always plan the same points in the same order, and each run gets a seed of its own
derived from the experiment's seed and its place in the plan.
"""

from __future__ import annotations

import itertools
import math
import random
from typing import Any

import msgspec

from appliance.core.experiments import JsonObject
from appliance.services.experiments.config import invalid
from appliance.services.experiments.run_tags import expand

MAX_SEED = 2**31 - 1
MAX_PARAMETERS = 64


class RandomParameter(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Either `choices` (one is drawn) or a range `min`..`max` (uniform, or uniform in
    the logarithm with `log`; whole numbers with `integer`)."""

    choices: list[Any] | None = None
    min: float | None = None
    max: float | None = None
    log: bool = False
    integer: bool = False


class RandomSearch(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    samples: int
    parameters: dict[str, RandomParameter]


class PlannedPoint(msgspec.Struct, frozen=True, kw_only=True):
    hyperparameters: JsonObject
    seed: int
    tags: list[str] = []


def new_seed() -> int:
    return random.SystemRandom().randint(0, MAX_SEED)


def run_seed(experiment_seed: int, position: int) -> int:
    """A run's own seed: stable for (experiment seed, place in the plan)."""
    return random.Random(f"{experiment_seed}:{position}").randint(0, MAX_SEED)


def _check_names(names: list[str], field: str) -> None:
    if len(names) > MAX_PARAMETERS:
        raise invalid(field, f"{field}: at most {MAX_PARAMETERS} hyperparameters")
    for name in names:
        if not name or len(name) > 128:
            raise invalid(field, f"{field}: hyperparameter names are 1 to 128 characters")


def check_search(
    grid: dict[str, list[Any]] | None,
    points: list[JsonObject] | None,
    sample: RandomSearch | None,
    max_runs: int,
) -> int:
    """How many runs the search plans; a ValidationError naming the field when it is
    not usable. At most one of the three may be given (none: one run, no hyperparameters)."""
    given = [name for name, value in (("grid", grid), ("list", points), ("random", sample)) if value is not None]
    if len(given) > 1:
        raise invalid(f"config.{given[1]}", f"config: give one of grid, list or random, not {' and '.join(given)}")
    if grid is not None:
        if not grid:
            raise invalid("config.grid", "config.grid is empty: name at least one hyperparameter and its values")
        _check_names(list(grid), "config.grid")
        count = 1
        for name, values in grid.items():
            if not values:
                raise invalid(f"config.grid.{name}", f"config.grid.{name} has no values")
            count *= len(values)
            if count > max_runs:
                break
    elif points is not None:
        if not points:
            raise invalid("config.list", "config.list is empty: give at least one point")
        for i, point in enumerate(points):
            _check_names(list(point), f"config.list.{i}")
        count = len(points)
    elif sample is not None:
        if sample.samples < 1:
            raise invalid("config.random.samples", "config.random.samples must be at least 1")
        if not sample.parameters:
            raise invalid("config.random.parameters", "config.random.parameters is empty")
        _check_names(list(sample.parameters), "config.random.parameters")
        for name, parameter in sample.parameters.items():
            _check_parameter(parameter, f"config.random.parameters.{name}")
        count = sample.samples
    else:
        count = 1
    if count > max_runs:
        raise invalid(
            f"config.{given[0]}", f"config.{given[0]} plans more than {max_runs} runs (setting experiment_max_runs)"
        )
    return count


def _check_parameter(parameter: RandomParameter, field: str) -> None:
    if parameter.choices is not None:
        if not parameter.choices:
            raise invalid(f"{field}.choices", f"{field}.choices is empty")
        if parameter.min is not None or parameter.max is not None:
            raise invalid(field, f"{field}: give choices or min and max, not both")
        return
    low, high = parameter.min, parameter.max
    if low is None or high is None:
        raise invalid(field, f"{field}: give choices, or min and max")
    if not (math.isfinite(low) and math.isfinite(high)) or low > high:
        raise invalid(field, f"{field}: min must be at most max, both finite")
    if parameter.log and low <= 0:
        raise invalid(f"{field}.min", f"{field}.min must be above 0 for a log range")
    if parameter.integer and math.floor(high) < math.ceil(low):
        raise invalid(field, f"{field}: no whole number lies between min and max")


def _draw(rng: random.Random, parameter: RandomParameter) -> Any:
    if parameter.choices is not None:
        return parameter.choices[rng.randrange(len(parameter.choices))]
    assert parameter.min is not None and parameter.max is not None
    low, high = parameter.min, parameter.max
    value = math.exp(rng.uniform(math.log(low), math.log(high))) if parameter.log else rng.uniform(low, high)
    if parameter.integer:
        return min(math.floor(high), max(math.ceil(low), round(value)))
    return value


def plan_points(
    grid: dict[str, list[Any]] | None,
    points: list[JsonObject] | None,
    sample: RandomSearch | None,
    seed: int,
    run_tags: list[str] | None = None,
) -> list[PlannedPoint]:
    """The points in run order (checked by `check_search` first), each with the tags
    `run_tags` gives it (run_tags.py, checked by `check_patterns` first)."""
    if grid is not None:
        names = list(grid)
        combos: list[JsonObject] = [
            dict(zip(names, values, strict=True)) for values in itertools.product(*(grid[n] for n in names))
        ]
    elif points is not None:
        combos = [dict(point) for point in points]
    elif sample is not None:
        rng = random.Random(seed)
        combos = [
            {name: _draw(rng, parameter) for name, parameter in sample.parameters.items()}
            for _ in range(sample.samples)
        ]
    else:
        combos = [{}]
    return [
        PlannedPoint(hyperparameters=combo, seed=run_seed(seed, i), tags=expand(run_tags or [], combo))
        for i, combo in enumerate(combos)
    ]
