"""Where a model's call statistics come from.

The telemetry store (the next part of experiments-api.md) answers them; until it is
there, `NoTelemetry` answers that nothing was called, which is the truth.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from appliance.core.models import ModelStatistics, StatisticsPeriod


class ModelTelemetry(Protocol):
    async def model_statistics(self, model_id: str, period: StatisticsPeriod, until: datetime) -> ModelStatistics:
        """Calls to `model_id` within `period` before `until`."""
        ...


class NoTelemetry:
    async def model_statistics(self, model_id: str, period: StatisticsPeriod, until: datetime) -> ModelStatistics:
        return ModelStatistics(period=period.value)
