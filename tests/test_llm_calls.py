"""What each model call reports to telemetry (the hook the experiments API's telemetry
service takes): ModelCalls on a real SQLite cache, against the scripted model server on
loopback, with a recorder that keeps what it is given."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from appliance.core.llm.calls import MODEL_CALL_EVENT, ChatMessage, ModelCallRecord, Parameters, ProviderFailed
from appliance.core.models import Model, ModelSource
from appliance.services.llm.calls import ModelCalls, RetryPolicy
from appliance.services.llm.endpoints import CallDefaults
from appliance.store.database import Database
from appliance.store.llm_cache import LlmCacheStore
from tests.llm_servers import Reply, words


class KeptCalls:
    def __init__(self) -> None:
        self.calls: list[ModelCallRecord] = []

    def record(self, call: ModelCallRecord) -> None:
        self.calls.append(call)


@pytest.fixture
async def calls(tmp_path):
    db = Database(tmp_path / "appliance.db")
    await db.open()
    kept = KeptCalls()
    model_calls = ModelCalls(
        LlmCacheStore(db), kept, CallDefaults(max_retries=0), RetryPolicy(base_seconds=0.01, max_seconds=0.1)
    )
    yield model_calls, kept
    await model_calls.close()
    await db.close()


def priced(url: str) -> Model:
    now = datetime.now(UTC)
    return Model(
        id="model_priced",
        name="Priced",
        provider="openai-compatible",
        type="llm",
        config={
            "base_url": f"{url}/v1",
            "model": "priced",
            "seed": 100,
            "temperature": 0.7,
            "price_per_input_token": 0.001,
            "price_per_output_token": 0.002,
        },
        status="active",
        owner="",
        source=ModelSource.CONFIG,
        created_at=now,
        updated_at=now,
    )


async def test_each_call_reports_latency_tokens_cost_seed_and_temperature(calls, model_server):
    model_calls, kept = calls
    model_server.reset(lambda seen: "four words of answer")
    asked = [ChatMessage(role="user", content="count these three")]
    completion = await model_calls.complete(priced(model_server.url), asked, trial=3)
    (call,) = kept.calls
    assert (call.model_id, call.provider, call.status) == ("model_priced", "openai-compatible", "ok")
    assert (call.tokens_in, call.tokens_out) == (words("count these three"), 4)
    assert call.cost == pytest.approx(3 * 0.001 + 4 * 0.002) and call.latency_ms == completion.latency_ms > 0
    assert (call.temperature, call.seed) == (0.7, 103)  # the configured seed, offset by the trial
    assert call.metadata == {
        "model_id": "model_priced",
        "provider": "openai-compatible",
        "status": "ok",
        "temperature": "0.7",
        "seed": "103",
    }
    assert set(call.measurements) == {"latency_ms", "tokens_in", "tokens_out", "cost"}
    assert MODEL_CALL_EVENT == ("appliance", "model", "call")

    again = await model_calls.complete(priced(model_server.url), asked, trial=3)
    assert again.cached and len(kept.calls) == 1  # a cache hit is no call

    answered = await model_calls.complete(
        priced(model_server.url), asked, Parameters(temperature=0.0), trial=4, use_cache=False
    )
    assert answered.temperature == 0.0 and (kept.calls[-1].temperature, kept.calls[-1].seed) == (0.0, 104)


async def test_a_failed_call_reports_its_status(calls, model_server):
    model_calls, kept = calls
    model_server.reset(lambda seen: Reply(status=500, body=b"{}"))
    with pytest.raises(ProviderFailed):
        await model_calls.complete(priced(model_server.url), [ChatMessage(role="user", content="hi")], trial=1)
    (call,) = kept.calls
    assert (call.status, call.seed, call.tokens_in, call.cost) == ("error", 101, 0, None)
    assert call.metadata["status"] == "error"
