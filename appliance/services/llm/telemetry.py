"""Where each model call is reported: the telemetry service of experiments-api.md takes
it as the event ["appliance", "model", "call"] (core.llm.calls.MODEL_CALL_EVENT) with
the measurements latency_ms, tokens_in, tokens_out and cost and the metadata model_id,
provider, status, and the temperature and seed the call was sent with. app.py wires
telemetry's `ModelCallEvents` in; `NoCallRecorder` is for a ModelCalls that reports
nowhere."""

from __future__ import annotations

from typing import Protocol

from appliance.core.llm.calls import ModelCallRecord


class ModelCallRecorder(Protocol):
    def record(self, call: ModelCallRecord) -> None:
        """Take one call; must not block (it runs on the event loop)."""
        ...


class NoCallRecorder:
    def record(self, call: ModelCallRecord) -> None:
        return None
