"""POST /telemetry/events: a batch decoded, each event checked on its own, the good ones
stored together.

A bad event (a missing or misspelt field, a string where a number goes, a number JSON
cannot hold, a name or measurement name out of shape, metadata too deep, too big, a
timestamp too far in the past or the future, another owner's experiment) is
rejected with its index and the reason; it never spoils the others. What makes the
whole body unreadable (not JSON, NaN or Infinity, which JSON does not have, no `events`
list, more events than a batch may hold) is a 422 and nothing is stored.

The common case costs one typed decode of the whole body; only a batch with a bad event
in it is decoded again event by event, to tell which.

Once stored, the batch is published (`publish`, the event bus's) as one
`TelemetryIngested` with the sender as owner, for the Phoenix telemetry channels;
publishing never waits.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Collection
from datetime import UTC, datetime
from typing import Any, Protocol

import msgspec

from appliance.core.clock import iso_z
from appliance.core.errors import ValidationError, invalid_fields
from appliance.core.events import TelemetryIngested, TelemetryItem
from appliance.core.identity import EXECUTE, Identity
from appliance.core.telemetry import (
    EXPERIMENT_KEY,
    MAX_METADATA_KEY_CHARS,
    NAME_RULE,
    RESERVED_SEGMENT,
    EventIn,
    IngestBatch,
    IngestResult,
    Rejection,
    TelemetryLimits,
    event_id,
    to_ms,
)
from appliance.services.access.auth import require_permission
from appliance.store.telemetry.store import TelemetryStore

OWNERS_CACHE_SECONDS = 10.0


class ExperimentOwners(Protocol):
    """Whose experiments are. The experiments service answers once it is there; `None`
    means there is no experiment registry, and an experiment id is a free label."""

    async def owners(self, experiment_ids: Collection[str]) -> dict[str, str | None] | None:
        """Each id's owner, or None for an id no experiment has."""
        ...


class _Body(msgspec.Struct, forbid_unknown_fields=True):
    events: list[EventIn]


class _RawBody(msgspec.Struct, forbid_unknown_fields=True):
    events: list[msgspec.Raw]


_fast = msgspec.json.Decoder(_Body)
_raw = msgspec.json.Decoder(_RawBody)
_one = msgspec.json.Decoder(EventIn)
_encode = msgspec.json.encode


def _metadata_depth(value: Any, limit: int, depth: int = 1) -> int:
    """How deep `value` nests (an object of scalars: 1), stopping past `limit`."""
    if depth > limit:
        return depth
    deepest = depth
    children = value.values() if isinstance(value, dict) else value
    for child in children:
        if isinstance(child, dict | list):
            deepest = max(deepest, _metadata_depth(child, limit, depth + 1))
            if deepest > limit:
                break
    return deepest


def _flat(metadata: dict[str, Any]) -> bool:
    """No nested object or array, no overlong key: nothing more to check (the common case)."""
    for key, value in metadata.items():
        if isinstance(value, dict | list) or len(key) > MAX_METADATA_KEY_CHARS:
            return False
    return True


def _long_key(value: Any) -> str | None:
    if isinstance(value, dict):
        for key, child in value.items():
            if len(key) > MAX_METADATA_KEY_CHARS:
                return str(key)
            found = _long_key(child)
            if found is not None:
                return found
    elif isinstance(value, list):
        for child in value:
            found = _long_key(child)
            if found is not None:
                return found
    return None


class TelemetryIngest:
    def __init__(
        self,
        store: TelemetryStore,
        limits: TelemetryLimits,
        experiments: ExperimentOwners,
        clock: Callable[[], float] = time.time,
        publish: Callable[[TelemetryIngested, str], None] | None = None,
    ) -> None:
        self._publish = publish
        self._store = store
        self._limits = limits
        self._experiments = experiments
        self._clock = clock
        self._owners: dict[str, tuple[float, str | None]] = {}

    async def ingest(self, identity: Identity, body: bytes, charge: Callable[[int], None]) -> IngestResult:
        """Store the good events of `body`. `charge(n)` is called with the batch's event
        count before anything is stored (the rate limit counts events); it raises to
        refuse the whole batch."""
        require_permission(identity, EXECUTE)
        events, rejections = self._decode(body)
        charge(len(events) + len(rejections))
        now_ms = int(self._clock() * 1000)
        # (event index, row, measurements, experiment id)
        accepted: list[tuple[int, tuple[int, str, str, str | None, str, str], dict[str, float], str | None]] = []
        for index, event in events:
            reason, field, ts = self._problem(event, now_ms)
            if reason is None:
                row, reason, field = self._row(event, identity.owner, ts)
                if row is not None:
                    accepted.append((index, row, event.measurements, row[3]))
                    continue
            rejections.append(Rejection(index=index, reason=reason or "invalid", field=field))
        experiments = {item[3] for item in accepted if item[3] is not None}
        if experiments:
            refused = await self._unwritable(identity, experiments)
            if refused:
                for index, _, _, experiment in accepted:
                    if experiment in refused:
                        rejections.append(
                            Rejection(
                                index=index,
                                reason=f"experiment {experiment} is another owner's: this key may not write to it",
                                field=f"metadata.{EXPERIMENT_KEY}",
                            )
                        )
                accepted = [item for item in accepted if item[3] not in refused]
        batch = IngestBatch(rows=[item[1] for item in accepted], values=[item[2] for item in accepted])
        stored = await self._store.insert(batch) if batch.rows else 0
        if stored and self._publish is not None and batch.first_rowid is not None:
            by_index = dict(events)
            self._publish(
                TelemetryIngested(
                    events=tuple(
                        _item(batch.first_rowid + i, row[0], by_index[index])
                        for i, (index, row, _, _) in enumerate(accepted)
                    )
                ),
                identity.owner,
            )
        rejections.sort(key=lambda r: r.index)
        return IngestResult(accepted=stored, rejected=len(rejections), rejections=rejections)

    # --- decoding -------------------------------------------------------------------------

    def _decode(self, body: bytes) -> tuple[list[tuple[int, EventIn]], list[Rejection]]:
        limit = self._limits.max_batch_events
        try:
            events = _fast.decode(body).events
        except msgspec.ValidationError:
            pass  # a bad event (or a bad body): find out which, below
        except (msgspec.DecodeError, RecursionError) as exc:  # RecursionError: JSON nested past msgspec's stack
            raise self._unreadable(exc) from None
        else:
            self._check_count(len(events), limit)
            return list(enumerate(events)), []
        try:
            raws = _raw.decode(body).events
        except (msgspec.ValidationError, msgspec.DecodeError, RecursionError) as exc:
            raise self._unreadable(exc) from None
        self._check_count(len(raws), limit)
        good: list[tuple[int, EventIn]] = []
        bad: list[Rejection] = []
        for index, raw in enumerate(raws):
            try:
                good.append((index, _one.decode(raw)))
            except msgspec.ValidationError as exc:
                bad.append(Rejection(index=index, reason=_reason(exc), field=_field_of(exc)))
        return good, bad

    @staticmethod
    def _check_count(count: int, limit: int) -> None:
        if count > limit:
            raise invalid_fields(
                {"events": [f"at most {limit} events per batch (setting telemetry_max_batch_events), not {count}"]}
            )

    @staticmethod
    def _unreadable(exc: Exception) -> ValidationError:
        text = str(exc)
        if "malformed" in text or "truncated" in text:
            text += " (NaN and Infinity are not JSON: leave the measurement out)"
        if "`$.events" in text or "field `events`" in text:
            return invalid_fields({"events": [text]})
        return invalid_fields({"body": [f'must be {{"events": [...]}} in JSON: {text}']})

    # --- one event ------------------------------------------------------------------------

    def _problem(self, event: EventIn, now_ms: int) -> tuple[str | None, str | None, int]:
        """What is wrong with an event the decoder took (the shapes of names and
        numbers it checked itself), or None; and the event's time (ms)."""
        limits = self._limits
        ts = now_ms if event.timestamp is None else to_ms(event.timestamp)
        if event.event_name[0] == RESERVED_SEGMENT:
            return f"event names under {RESERVED_SEGMENT}. are the appliance's own", "event_name", ts
        if len(event.measurements) > limits.max_measurements:
            return f"at most {limits.max_measurements} measurements per event", "measurements", ts
        metadata = event.metadata
        if metadata and not _flat(metadata):
            if _metadata_depth(metadata, limits.max_metadata_depth) > limits.max_metadata_depth:
                return (
                    f"metadata nests deeper than {limits.max_metadata_depth} levels "
                    "(setting telemetry_max_metadata_depth)",
                    "metadata",
                    ts,
                )
            long_key = _long_key(metadata)
            if long_key is not None:
                return (
                    f"metadata key {long_key[:40]!r}... is longer than {MAX_METADATA_KEY_CHARS} characters",
                    "metadata",
                    ts,
                )
        experiment = metadata.get(EXPERIMENT_KEY)
        if experiment is not None and not isinstance(experiment, str):
            return "metadata.experiment_id must be a string", f"metadata.{EXPERIMENT_KEY}", ts
        if ts < now_ms - limits.max_past_seconds * 1000:
            reason = (
                f"timestamp is more than {limits.max_past_seconds} s in the past (setting telemetry_max_past_seconds)"
            )
            return reason, "timestamp", ts
        if ts > now_ms + limits.max_future_seconds * 1000:
            reason = (
                f"timestamp is more than {limits.max_future_seconds} s in the future "
                "(setting telemetry_max_future_seconds)"
            )
            return reason, "timestamp", ts
        return None, None, ts

    def _row(
        self, event: EventIn, owner: str, ts: int
    ) -> tuple[tuple[int, str, str, str | None, str, str] | None, str | None, str | None]:
        measurements = _encode(event.measurements)
        metadata = _encode(event.metadata)
        size = len(measurements) + len(metadata)
        if size > self._limits.max_event_bytes:
            reason = (
                f"measurements and metadata take {size} bytes as JSON, more than "
                f"{self._limits.max_event_bytes} (setting telemetry_max_event_bytes)"
            )
            return None, reason, "metadata"
        experiment = event.metadata.get(EXPERIMENT_KEY)
        return (ts, ".".join(event.event_name), owner, experiment, measurements.decode(), metadata.decode()), None, None

    # --- experiments ----------------------------------------------------------------------

    async def _unwritable(self, identity: Identity, experiments: set[str]) -> set[str]:
        """The experiments of `experiments` another owner's, which this key may not write.
        An id no experiment has is a label (events of runs outside the appliance): events
        are their sender's either way, so a label never reaches another owner's view."""
        owners = await self._owners_of(experiments)
        if owners is None:
            return set()
        return {e for e in experiments if (owner := owners.get(e)) is not None and not identity.may_see(owner)}

    async def _owners_of(self, experiment_ids: set[str]) -> dict[str, str | None] | None:
        now = time.monotonic()
        known = {
            e: hit[1] for e in experiment_ids if (hit := self._owners.get(e)) and now - hit[0] < OWNERS_CACHE_SECONDS
        }
        missing = experiment_ids - known.keys()
        if missing:
            found = await self._experiments.owners(missing)
            if found is None:
                return None
            for experiment in missing:
                owner = found.get(experiment)
                self._owners[experiment] = (now, owner)
                known[experiment] = owner
            if len(self._owners) > 10_000:
                self._owners.clear()
        return known


_NAMED_FIELD = re.compile(r"(?:required|unknown) field `([^`]+)`")
_PATH = re.compile(r"`\$\.([^`]*)`")
_PATTERN = re.compile(r"`str` matching regex '[^']*'")


def _item(rowid: int, ts_ms: int, event: EventIn) -> TelemetryItem:
    """The event as GET /api/v1/telemetry/events will show it."""
    return TelemetryItem(
        id=event_id(rowid),
        event_name=list(event.event_name),
        measurements=dict(event.measurements),
        metadata=dict(event.metadata),
        timestamp=iso_z(datetime.fromtimestamp(ts_ms / 1000, UTC)),
    )


def _reason(exc: msgspec.ValidationError) -> str:
    return _PATTERN.sub(f"a name of {NAME_RULE}", str(exc))


def _field_of(exc: msgspec.ValidationError) -> str | None:
    """The event's field a decoding problem is in: from msgspec's path (`$.x`) or the
    field it names (a missing or an unknown one)."""
    text = str(exc)
    parts = []
    path = _PATH.search(text)
    if path:
        parts.append(path.group(1).replace("[...]", "").split("[", 1)[0])
    named = _NAMED_FIELD.search(text)
    if named:
        parts.append(named.group(1))
    return ".".join(p for p in parts if p) or None
