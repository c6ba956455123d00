"""Telemetry events as a MetricSource: one value per event of the experiment, its
measurement `metric` (`latency_ms`, or `measurements.latency_ms`), grouped by the
metadata key of `group_field` (`metadata.model`, nested `metadata.run.seed`) and, for
paired tests, keyed by that of `pair_field` (`metadata.item_id`).

A key counts its owner's events, an admin every owner's (as the telemetry endpoints
read). At most `max_rows` events (telemetry_exact_max_rows) are read for one test;
more is a 422, never a test on a silent sample.
"""

from __future__ import annotations

from collections.abc import Sequence

from appliance.core.errors import invalid_fields
from appliance.core.identity import Identity
from appliance.core.statistics import KeyedValue, MetricQuery
from appliance.core.telemetry import MEASUREMENT_NAME, METADATA_PATH
from appliance.services.statistics.sources import TELEMETRY_PREFIXES
from appliance.services.telemetry.service import visible_owner
from appliance.store.telemetry.experiment_reads import json_path
from appliance.store.telemetry.store import TelemetryStore, TooManyEvents

MEASUREMENTS = "measurements."
# Which metadata key names the groups (a test without group_field) is read from the
# experiment's newest events, this many at most.
KEYS_SCAN_EVENTS = 100_000
(METADATA,) = TELEMETRY_PREFIXES


def _metadata_path(field: str, value: str) -> str:
    path = value[len(METADATA) :]
    if not METADATA_PATH.match(path):
        raise invalid_fields(
            {field: [f"{value!r}: metadata.<key>[.<key>...], keys of letters, digits, _, - and : (at most 8 deep)"]}
        )
    return json_path(path)


def _measurement(metric: str) -> str:
    name = metric.removeprefix(MEASUREMENTS)
    if not MEASUREMENT_NAME.match(name):
        raise invalid_fields(
            {"metric": [f"{metric!r}: a measurement name (letters, digits, _, - and :, at most 64 characters)"]}
        )
    return name


class TelemetryMetricSource:
    def __init__(self, store: TelemetryStore, max_rows: int) -> None:
        self._store = store
        self._max_rows = max_rows

    async def values(self, identity: Identity, query: MetricQuery) -> list[KeyedValue]:
        metric = _measurement(query.metric)
        group_path = _metadata_path("group_field", query.group_field)
        pair_path = None if query.pair_field is None else _metadata_path("pair_field", query.pair_field)
        try:
            return await self._store.experiment_values(
                query.experiment_id, visible_owner(identity), metric, group_path, pair_path, self._max_rows
            )
        except TooManyEvents as exc:
            raise invalid_fields(
                {
                    "experiment_id": [
                        f"the experiment has more than {exc.limit} events with measurement {metric!r} (setting "
                        "telemetry_exact_max_rows): a test reads them all, so raise the setting or give a sample "
                        "as data"
                    ]
                }
            ) from None

    async def fields_naming(self, identity: Identity, experiment_id: str, groups: Sequence[str]) -> list[str]:
        keys = await self._store.experiment_keys_naming(
            experiment_id, visible_owner(identity), groups, min(self._max_rows, KEYS_SCAN_EVENTS)
        )
        return [f"{METADATA}{key}" for key in keys]
