"""Retention of telemetry: events older than `retention_days`, and the oldest events
while telemetry.db uses more than `max_bytes`, are removed by a scheduler job, a step
(a few whole hours, about 100,000 events) per transaction so ingest goes on between.
Expired export jobs go with them.
"""

from __future__ import annotations

import logging
import time

import msgspec

from appliance.services.telemetry.export import TelemetryExports
from appliance.store.telemetry.store import TelemetryStore

log = logging.getLogger(__name__)

# Below the size limit by this much once cut, so the job does not cut a little every run.
SIZE_HEADROOM = 0.9
MAX_STEPS_PER_RUN = 10_000


class RetentionPolicy(msgspec.Struct, frozen=True, kw_only=True):
    retention_days: float = 90.0  # 0: kept however old
    max_bytes: int = 0  # 0: no size limit


class TelemetryRetention:
    def __init__(self, store: TelemetryStore, exports: TelemetryExports, policy: RetentionPolicy) -> None:
        self._store = store
        self._exports = exports
        self._policy = policy

    async def run(self) -> int:
        """One pass: returns the events removed."""
        removed = 0
        if self._policy.retention_days > 0:
            cutoff = int((time.time() - self._policy.retention_days * 86_400) * 1000)
            removed += await self._delete_before(cutoff)
        if self._policy.max_bytes > 0:
            removed += await self._shrink()
        await self._exports.remove_expired()
        if removed:
            log.info("telemetry retention removed %d events", removed)
        return removed

    async def _delete_before(self, cutoff_ms: int) -> int:
        removed = 0
        for _ in range(MAX_STEPS_PER_RUN):
            step = await self._store.delete_before(cutoff_ms)
            removed += step
            if step == 0:
                break
        return removed

    async def _shrink(self) -> int:
        used = await self._store.used_bytes()
        if used <= self._policy.max_bytes:
            return 0
        events = await self._store.count_all()
        if events == 0:
            return 0
        per_event = used / events
        remove = int((used - self._policy.max_bytes * SIZE_HEADROOM) / per_event) + 1
        cutoff = await self._store.cutoff_for(remove)
        if cutoff is None:
            return 0
        # Whole hours only: round up so at least the asked-for events go.
        hour = 3_600_000
        return await self._delete_before(-(-cutoff // hour) * hour)
