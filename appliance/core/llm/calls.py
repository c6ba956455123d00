"""Calls to models: the messages sent, the parameters, and what came back, as the
providers (services/llm/providers) and the cache pass them around."""

from __future__ import annotations

import msgspec

from appliance.core.errors import AppError
from appliance.core.telemetry import MODEL_CALL

ROLES = ("system", "user", "assistant")
# The telemetry event of one model call, ["appliance", "model", "call"].
MODEL_CALL_EVENT = MODEL_CALL


class ChatMessage(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    role: str
    content: str


class Parameters(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """Sampling parameters; None leaves a parameter to the layer below (request <
    prompt < model config < the provider's own default)."""

    temperature: float | None = None
    max_tokens: int | None = None
    top_p: float | None = None
    seed: int | None = None
    stop: list[str] | None = None

    def over(self, below: Parameters) -> Parameters:
        """These parameters, with `below`'s where these say nothing."""
        return Parameters(
            temperature=below.temperature if self.temperature is None else self.temperature,
            max_tokens=below.max_tokens if self.max_tokens is None else self.max_tokens,
            top_p=below.top_p if self.top_p is None else self.top_p,
            seed=below.seed if self.seed is None else self.seed,
            stop=below.stop if self.stop is None else self.stop,
        )


def parameter_problems(parameters: Parameters, path: str = "parameters") -> dict[str, list[str]]:
    problems: dict[str, list[str]] = {}
    if parameters.temperature is not None and not 0 <= parameters.temperature <= 2:
        problems[f"{path}.temperature"] = ["must be a number from 0 to 2"]
    if parameters.top_p is not None and not 0 <= parameters.top_p <= 1:
        problems[f"{path}.top_p"] = ["must be a number from 0 to 1"]
    if parameters.max_tokens is not None and parameters.max_tokens < 1:
        problems[f"{path}.max_tokens"] = ["must be at least 1"]
    if parameters.stop is not None and len(parameters.stop) > 4:
        problems[f"{path}.stop"] = ["at most 4 stop sequences"]
    return problems


class Completion(msgspec.Struct, kw_only=True):
    """One answer of a model. `latency_ms` is how long the provider took to give it
    (for a cached answer: when it was first given); cost is None without a price."""

    text: str
    tokens_in: int = 0
    tokens_out: int = 0
    latency_ms: float = 0.0
    model: str = ""  # the provider's name of the model that answered
    finish_reason: str | None = None
    cost: float | None = None
    cached: bool = False
    attempts: int = 1
    temperature: float | None = None
    seed: int | None = None

    @property
    def tokens(self) -> int:
        return self.tokens_in + self.tokens_out


class ModelCallRecord(msgspec.Struct, kw_only=True, frozen=True):
    """What telemetry records of one call to a provider (a cache hit is no call)."""

    model_id: str
    provider: str
    status: str  # ok, error or timeout
    latency_ms: float
    tokens_in: int = 0
    tokens_out: int = 0
    cost: float | None = None
    # What the call was sent with (None: the provider's own default).
    temperature: float | None = None
    seed: int | None = None

    @property
    def measurements(self) -> dict[str, float]:
        return {
            "latency_ms": self.latency_ms,
            "tokens_in": float(self.tokens_in),
            "tokens_out": float(self.tokens_out),
            "cost": self.cost or 0.0,
        }

    @property
    def metadata(self) -> dict[str, str]:
        sent = {"temperature": self.temperature, "seed": self.seed}
        return {
            "model_id": self.model_id,
            "provider": self.provider,
            "status": self.status,
            **{
                name: f"{value:g}" if isinstance(value, float) else str(value)
                for name, value in sent.items()
                if value is not None
            },
        }


def as_completion_prompt(messages: list[ChatMessage]) -> str:
    """Messages as one text for a completions API: a lone user message as it is; a
    conversation as `Role: text` paragraphs ending with `Assistant:` for the model to go on."""
    if len(messages) == 1 and messages[0].role == "user":
        return messages[0].content
    parts = [f"{m.role.capitalize()}: {m.content}" for m in messages]
    return "\n\n".join(parts) + "\n\nAssistant:"


class ProviderFailed(AppError):
    """The model's server failed (after retries where a retry made sense), refused the
    request, or answered something that is not an answer."""

    status_code = 502
    title = "Provider error"


class ProviderTimedOut(AppError):
    """The model's server did not answer in time (after retries)."""

    status_code = 504
    title = "Provider timeout"
