"""Experiment configs: the part every type shares, the appliance's limits on them, and how
a config the caller sent becomes a typed one (or a validation error naming the field).

`config.type` picks the runner (runners/); each runner declares its config as a Struct
subclass of `BaseConfig` and checks what msgspec cannot. A config is stored as the JSON
object its typed form encodes to, defaults filled in, so what GET shows is what runs.
"""

from __future__ import annotations

import re
from typing import Any, TypeVar

import msgspec

from appliance.core.errors import ValidationError
from appliance.core.experiments import JsonObject, Objective

METRIC_NAME = re.compile(r"^[A-Za-z0-9_.:/\- ]{1,128}$")


class ExperimentLimits(msgspec.Struct, frozen=True, kw_only=True):
    """The settings experiments and runs are held to (docs/configuration.md)."""

    run_timeout_default: float = 3600.0
    run_timeout_max: float = 86400.0
    max_runs: int = 10_000
    max_parallel: int = 64
    max_code_bytes: int = 256 * 1024
    run_max_metric_points: int = 100_000
    run_max_log_lines: int = 10_000
    run_max_log_bytes: int = 4 * 1024 * 1024
    run_max_output_bytes: int = 256 * 1024 * 1024
    checkpoint_max_bytes: int = 1024 * 1024 * 1024
    run_checkpoints_max_bytes: int = 4 * 1024 * 1024 * 1024
    run_max_checkpoints: int = 100


class BaseConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """What every experiment type's config has."""

    type: str
    # Runs of this experiment going at once (they also share the queue's job workers).
    max_parallel: int = 1
    # The metric results_summary ranks runs by.
    objective: Objective | None = None


C = TypeVar("C", bound=BaseConfig)


def invalid(field: str, message: str) -> ValidationError:
    """A validation error the surface renders under `field` (dotted: config.grid.lr)."""
    return ValidationError(message, details={"field": field, "reason": message})


_AT = re.compile(r" - at `\$(?P<path>[^`]*)`$")


def decode_config(raw: JsonObject, config_type: type[C]) -> C:
    """`raw` as `config_type`, or a ValidationError naming the field (config.<path>)."""
    try:
        return msgspec.convert(raw, config_type)
    except msgspec.ValidationError as exc:
        text = str(exc)
        match = _AT.search(text)
        path = match.group("path") if match else ""
        field = "config" + re.sub(r"\[(\d+)\]", r".\1", path)
        message = text[: match.start()] if match else text
        if message.startswith("Object contains unknown field"):
            unknown = message.split("`")[1] if "`" in message else ""
            field = f"{field}.{unknown}" if unknown else field
            message = f"unknown field {unknown!r}"
        raise invalid(field, f"{field}: {message}") from None


def check_common(config: BaseConfig, limits: ExperimentLimits) -> None:
    if not 1 <= config.max_parallel <= limits.max_parallel:
        raise invalid("config.max_parallel", f"config.max_parallel must be between 1 and {limits.max_parallel}")
    if config.objective is not None:
        check_metric_name(config.objective.metric, "config.objective.metric")


def check_metric_name(name: str, field: str) -> None:
    if not METRIC_NAME.match(name):
        raise invalid(field, f"{field}: {name[:80]!r} is no metric name: 1 to 128 letters, digits, spaces or _ . : / -")


def encode_config(config: BaseConfig) -> JsonObject:
    """The stored form: the typed config as JSON, fields without a value left out."""
    encoded: dict[str, Any] = msgspec.to_builtins(config)
    return {key: value for key, value in encoded.items() if value is not None}
