"""telemetry.db below the API, on a real SQLite file: model statistics from the
appliance's model-call events, and the quantile sketch's error against exact
percentiles (docs/telemetry.md states it)."""

from __future__ import annotations

import bisect
import math
import random
from datetime import UTC, datetime, timedelta

import pytest

from appliance.core.models import StatisticsPeriod
from appliance.core.telemetry import MODEL_CALL
from appliance.core.telemetry_sketch import Histogram, exact_quantile
from appliance.services.telemetry.appliance_events import ApplianceEvents
from appliance.services.telemetry.service import TelemetryModelStatistics
from appliance.store.telemetry.database import TelemetryDatabase
from appliance.store.telemetry.store import TelemetryStore


async def test_model_statistics_from_model_call_events(tmp_path):
    db = TelemetryDatabase(tmp_path / "telemetry.db")
    await db.open()
    try:
        store = TelemetryStore(db)
        events = ApplianceEvents(store)
        now = datetime.now(UTC)
        rng = random.Random(5)
        latencies, tokens, errors = [], 0, {}
        for n in range(400):
            latency = rng.uniform(50, 900)
            kind = ("timeout", "rate_limit", "server_error")[n % 3] if n % 10 == 0 else None
            metadata = {"model_id": "model_a", "provider": "openai", "status": "error" if kind else "ok"}
            if kind:
                metadata["error_kind"] = kind
                errors[kind] = errors.get(kind, 0) + 1
            events.record(
                MODEL_CALL,
                {"latency_ms": latency, "tokens_in": n % 7, "tokens_out": 10},
                metadata,
                owner="alice",
                timestamp=now - timedelta(minutes=n % 50),
            )
            latencies.append(latency)
            tokens += n % 7 + 10
        # Another model's calls, and one of model_a's outside the period.
        events.record(MODEL_CALL, {"latency_ms": 1.0}, {"model_id": "model_b", "status": "ok"}, owner="alice")
        events.record(
            MODEL_CALL,
            {"latency_ms": 5.0},
            {"model_id": "model_a", "status": "ok"},
            owner="a",
            timestamp=now - timedelta(hours=3),
        )
        await events.flush()

        stats = await TelemetryModelStatistics(store).model_statistics(
            "model_a", StatisticsPeriod("1h"), now + timedelta(seconds=1)
        )
        assert stats.total_requests == 400
        assert stats.success_rate == pytest.approx(360 / 400)
        assert stats.avg_latency_ms == pytest.approx(sum(latencies) / 400)
        assert stats.p99_latency_ms == pytest.approx(exact_quantile(sorted(latencies), 0.99))
        assert stats.total_tokens == tokens
        assert stats.error_breakdown == errors
        none = await TelemetryModelStatistics(store).model_statistics("model_c", StatisticsPeriod("1h"), now)
        assert none.total_requests == 0
    finally:
        await db.close()


def draws(kind: str, n: int, rng: random.Random) -> list[float]:
    if kind == "lognormal latencies":
        return [rng.lognormvariate(5, 0.8) for _ in range(n)]
    if kind == "token counts":
        return [float(rng.randint(1, 4000)) for _ in range(n)]
    if kind == "costs":
        return [rng.random() / 100 for _ in range(n)]
    if kind == "narrow band":  # every value within 1% of the others: the sketch's worst case for rank
        return [100 + rng.random() for _ in range(n)]
    return [float(rng.choice((10, 20, 20, 50))) for _ in range(n)]  # ties


@pytest.mark.parametrize("kind", ["lognormal latencies", "token counts", "costs", "narrow band", "ties"])
def test_sketch_error(kind):
    rng = random.Random(kind)
    values = draws(kind, 50_000, rng)
    ordered = sorted(values)
    sketch = Histogram()
    for part in range(0, len(values), 5000):  # merged from pieces, as the hourly cells are
        piece = Histogram()
        piece.add_all(values[part : part + 5000])
        sketch.merge_encoded(piece.encode())
    for q in (0.5, 0.95, 0.99):
        exact = exact_quantile(ordered, q)
        got = sketch.quantile(q, ordered[0], ordered[-1])
        assert got is not None and exact is not None
        # Value error: within 0.5% of the exact percentile, always.
        assert abs(got - exact) <= 0.005 * abs(exact) + 1e-12, (kind, q, got, exact)
        # Rank error: where the answer falls among the values, against the rank asked for.
        low, high = bisect.bisect_left(ordered, got), bisect.bisect_right(ordered, got)
        target = math.ceil(q * len(ordered))
        rank_error = 0 if low < target <= max(high, low + 1) else min(abs(low - target), abs(high - target))
        # Bounded only where values spread out: among ties or values within 1% of each
        # other the answer (a bucket's representative) may rank past all of them.
        if kind not in ("narrow band", "ties"):
            assert rank_error <= 0.01 * len(ordered), (kind, q, rank_error)


def test_an_experiments_series_past_the_cap_is_a_sample_over_its_whole_span(tmp_path):
    """A report's telemetry (store/telemetry/experiment_reads.py): every event averaged
    per bucket up to the cap; past it, about the cap's number of events, spread over the
    whole experiment even when two experiments' events alternate in arrival order."""
    import json

    from appliance.store.telemetry.database import connect_writer
    from appliance.store.telemetry.experiment_reads import measurement_series

    conn = connect_writer(tmp_path / "telemetry.db")
    conn.execute("INSERT INTO event_names (id, name) VALUES (1, 'bench.step')")
    start = 1_700_000_000_000
    rows = [
        (start + i * 1000, 1, "alice", ("exp_a", "exp_b")[i % 2], json.dumps({"v": float(i % 10)}), "{}")
        for i in range(8000)
    ]
    conn.executemany(
        "INSERT INTO events (ts, name_id, owner, experiment_id, measurements, metadata) VALUES (?, ?, ?, ?, ?, ?)",
        rows,
    )
    whole = measurement_series(conn, "exp_a", None, 20, 5, 10_000)
    assert {p.series for p in whole} == {"bench.step.v"} and len(whole) == 20
    assert sum(p.count or 0 for p in whole) == 4000
    assert sum(p.value * (p.count or 0) for p in whole) == pytest.approx(sum(float(i % 10) for i in range(0, 8000, 2)))
    sampled = measurement_series(conn, "exp_a", None, 20, 5, 1000)
    assert 800 <= sum(p.count or 0 for p in sampled) <= 1200
    assert len(sampled) == 20 and sampled[0].timestamp == whole[0].timestamp  # the whole span still
    assert measurement_series(conn, "exp_a", "bob", 20, 5, 1000) == []
    conn.close()
