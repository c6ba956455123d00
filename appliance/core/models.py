"""The model registry's entries: the one list of models the appliance knows (the LLM
evaluations and ensembles use it too), and the rules an entry must keep.

No secret is ever part of an entry. `config.api_key_env` names the environment variable
of the appliance's process that holds a provider key; a config key that looks like it
holds a secret itself is refused (see `secret_problems`).
"""

from __future__ import annotations

import re
import secrets
from datetime import datetime
from enum import StrEnum
from typing import Any, TypeGuard
from urllib.parse import urlsplit

import msgspec

from appliance.core.errors import ValidationError

MODEL_ID_PREFIX = "model_"
# Ids of entries from the config file: chosen by the operator, so held to a pattern.
SEEDED_ID = re.compile(r"^model_[a-z0-9][a-z0-9_.-]{0,63}$")
MAX_NAME_CHARS = 200
MAX_CONFIG_BYTES = 16 * 1024

# `claude` is experiments-api.md's name for Anthropic's Messages API; `openai-compatible`
# is any server speaking OpenAI's API at a `base_url` (vLLM, llama.cpp, LM Studio, ...).
PROVIDERS = ("openai", "openai-compatible", "anthropic", "claude", "ollama", "custom")
MODEL_TYPES = ("llm", "embedding", "custom")


class ModelStatus(StrEnum):
    ACTIVE = "active"
    INACTIVE = "inactive"


MODEL_STATUSES = tuple(s.value for s in ModelStatus)


class ModelSource(StrEnum):
    API = "api"  # created through POST /api/v1/models: its owner may change it
    CONFIG = "config"  # from the `models` setting: read-only, changed in the config file


def new_model_id() -> str:
    return f"{MODEL_ID_PREFIX}{secrets.token_hex(6)}"


class Model(msgspec.Struct, kw_only=True):
    id: str
    name: str
    provider: str
    type: str
    config: dict[str, Any]
    status: str
    owner: str  # "" for entries of the config file, which every key sees
    source: ModelSource
    created_at: datetime
    updated_at: datetime

    @property
    def read_only(self) -> bool:
        return self.source is ModelSource.CONFIG


class ModelFields(msgspec.Struct, kw_only=True):
    """A new entry as a caller describes it."""

    name: str
    provider: str
    type: str = "llm"
    config: dict[str, Any] = msgspec.field(default_factory=dict)
    status: str = ModelStatus.ACTIVE.value


class ModelChanges(msgspec.Struct, kw_only=True):
    """A change to an entry; None leaves a field as it is. `config` is a JSON merge
    patch (RFC 7386): the keys given replace those stored, a null removes one."""

    name: str | None = None
    provider: str | None = None
    type: str | None = None
    config: dict[str, Any] | None = None
    status: str | None = None


class ModelSeed(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """An entry of the `models` setting (a `[[models]]` table of config.toml)."""

    name: str
    provider: str
    type: str = "llm"
    config: dict[str, Any] = msgspec.field(default_factory=dict)
    status: str = ModelStatus.ACTIVE.value
    id: str | None = None  # default: model_ and the name in lower case, '-' for the rest

    @property
    def model_id(self) -> str:
        if self.id:
            return self.id
        slug = re.sub(r"[^a-z0-9_.]+", "-", self.name.strip().lower()).strip("-")
        return MODEL_ID_PREFIX + (slug[:64] or "unnamed")

    def fields(self) -> ModelFields:
        return ModelFields(
            name=self.name, provider=self.provider, type=self.type, config=self.config, status=self.status
        )


class StatisticsPeriod(StrEnum):
    HOUR = "1h"
    DAY = "24h"
    WEEK = "7d"
    MONTH = "30d"

    @property
    def seconds(self) -> int:
        return {"1h": 3600, "24h": 86_400, "7d": 7 * 86_400, "30d": 30 * 86_400}[self.value]

    @classmethod
    def parse(cls, text: str) -> StatisticsPeriod:
        try:
            return cls(text.strip())
        except ValueError:
            choices = ", ".join(p.value for p in cls)
            raise ValidationError(
                f"period must be one of {choices}, not {text!r}",
                details={"field": "period", "reason": f"must be one of {choices}"},
            ) from None


class ModelStatistics(msgspec.Struct, kw_only=True):
    """Calls to a model within a period. Ratios and latencies are None when there was
    no call in the period (a rate over nothing is not 0)."""

    period: str
    total_requests: int = 0
    success_rate: float | None = None
    avg_latency_ms: float | None = None
    p99_latency_ms: float | None = None
    total_tokens: int = 0
    error_breakdown: dict[str, int] = msgspec.field(default_factory=dict)


# --- validation -----------------------------------------------------------------------------

# Field paths (e.g. "config.temperature") and what is wrong with each.
Problems = dict[str, list[str]]

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_SECRET_WORDS = frozenset(
    {"token", "secret", "password", "passwd", "passphrase", "apikey", "credential", "credentials", "authorization"}
)
_SECRET_PAIRS = frozenset({("api", "key"), ("access", "key"), ("private", "key"), ("secret", "key"), ("auth", "key")})
# Values that are provider or appliance keys whatever their config key is called.
_SECRET_VALUES = (
    re.compile(r"^sk-[A-Za-z0-9_-]{16,}"),
    re.compile(r"^ak_[0-9a-f]{12}_"),
    re.compile(r"^bearer\s+\S", re.IGNORECASE),
)


def _words(key: str) -> list[str]:
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", key)
    return [w for w in re.split(r"[^A-Za-z0-9]+", spaced.lower()) if w]


def looks_like_secret_key(key: str) -> bool:
    """`api_key`, `token`, `clientSecret`, `password`...; not `api_key_env` nor
    `api_key_file` (which name where a key is) nor `max_tokens`."""
    words = _words(key)
    if not words or words[-1] in ("env", "file"):
        return False
    return any(w in _SECRET_WORDS for w in words) or any(
        pair in _SECRET_PAIRS for pair in zip(words, words[1:], strict=False)
    )


def secret_problems(config: Any, path: str = "config") -> Problems:
    """Config entries, at any depth, that look like they hold a secret."""
    problems: Problems = {}
    advice = (
        "looks like a secret, and secrets are never stored: put it in an environment variable of "
        "the appliance's process and name that variable with config.api_key_env"
    )
    if isinstance(config, dict):
        for key, value in config.items():
            where = f"{path}.{key}"
            if looks_like_secret_key(str(key)) and isinstance(value, str) and value.strip():
                problems[where] = [advice]
            else:
                problems.update(secret_problems(value, where))
    elif isinstance(config, list):
        for index, value in enumerate(config):
            problems.update(secret_problems(value, f"{path}[{index}]"))
    elif isinstance(config, str) and any(p.match(config.strip()) for p in _SECRET_VALUES):
        problems[path] = [advice]
    return problems


def _is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _url_problem(value: object) -> str | None:
    if not isinstance(value, str):
        return "must be a URL text"
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an http:// or https:// URL with a host"
    if parts.password is not None or parts.username is not None:
        return "must not carry a user or password; name the key's variable with config.api_key_env"
    return None


def _known_key_problem(key: str, value: object) -> str | None:
    """The rule of a config key the appliance itself reads; None if fine or unknown."""
    if key in ("base_url", "endpoint"):
        return _url_problem(value)
    if key == "api_key_env":
        if not isinstance(value, str) or not _ENV_NAME.match(value):
            return "must name an environment variable (letters, digits and _, not starting with a digit)"
    elif key == "model":
        if not isinstance(value, str) or not value.strip():
            return "must be the provider's name of the model, a non-empty text"
    elif key == "max_tokens":
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            return "must be a whole number of at least 1"
    elif key == "temperature":
        if not _is_number(value) or not 0 <= float(value) <= 2:
            return "must be a number from 0 to 2"
    elif key == "top_p":
        if not _is_number(value) or not 0 <= float(value) <= 1:
            return "must be a number from 0 to 1"
    elif key == "timeout_seconds":
        if not _is_number(value) or not float(value) > 0:
            return "must be a number of seconds above 0"
    elif key in ("price_per_input_token", "price_per_output_token") and (not _is_number(value) or float(value) < 0):
        return "must be a price of 0 or more"
    return _provider_key_problem(key, value)


# Config keys the LLM providers read (services/llm/endpoints.py), beside those above.
API_STYLES = ("chat", "completions")


def _whole(value: object, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _provider_key_problem(key: str, value: object) -> str | None:
    if key == "api":
        if value not in API_STYLES:
            return f"must be one of {', '.join(API_STYLES)} (OpenAI-style servers: which endpoint to call)"
    elif key == "api_key_file":
        if not isinstance(value, str) or not value.startswith("/"):
            return "must be the absolute path of a file (mode 0600) holding the provider key"
    elif key == "max_concurrency":
        if not _whole(value, 1, 1000):
            return "must be a whole number from 1 to 1000"
    elif key == "requests_per_minute":
        if not _whole(value, 0, 1_000_000):
            return "must be a whole number of 0 (no limit) or more"
    elif key == "max_retries":
        if not _whole(value, 0, 10):
            return "must be a whole number from 0 to 10"
    elif key == "seed":
        if not _whole(value, -(2**62), 2**62):
            return "must be a whole number"
    elif key == "stream":
        if not isinstance(value, bool):
            return "must be true or false"
    elif key == "anthropic_version" and (not isinstance(value, str) or not value.strip()):
        return "must be a text such as 2023-06-01"
    return None


def config_problems(config: dict[str, Any]) -> Problems:
    problems = secret_problems(config)
    for key, value in config.items():
        if f"config.{key}" in problems:
            continue
        problem = _known_key_problem(key, value)
        if problem:
            problems[f"config.{key}"] = [problem]
    if len(msgspec.json.encode(config)) > MAX_CONFIG_BYTES:
        problems.setdefault("config", []).append(f"must be at most {MAX_CONFIG_BYTES} bytes as JSON")
    return problems


def model_problems(fields: ModelFields) -> Problems:
    """Everything wrong with an entry, by field; empty when it may be stored."""
    problems: Problems = {}
    name = fields.name.strip()
    if not name:
        problems["name"] = ["can't be blank"]
    elif len(name) > MAX_NAME_CHARS:
        problems["name"] = [f"must be at most {MAX_NAME_CHARS} characters"]
    if fields.provider not in PROVIDERS:
        problems["provider"] = [f"must be one of {', '.join(PROVIDERS)}"]
    if fields.type not in MODEL_TYPES:
        problems["type"] = [f"must be one of {', '.join(MODEL_TYPES)}"]
    if fields.status not in MODEL_STATUSES:
        problems["status"] = [f"must be one of {', '.join(MODEL_STATUSES)}"]
    problems.update(config_problems(fields.config))
    return problems


def merge_patch(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """RFC 7386: objects merge key by key, a null removes the key, anything else replaces."""
    merged = dict(target)
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_patch(merged[key], value)
        else:
            merged[key] = value
    return merged


def changed(model: Model, changes: ModelChanges) -> ModelFields:
    """The entry `model` becomes with `changes` applied."""
    return ModelFields(
        name=model.name if changes.name is None else changes.name,
        provider=model.provider if changes.provider is None else changes.provider,
        type=model.type if changes.type is None else changes.type,
        config=model.config if changes.config is None else merge_patch(model.config, changes.config),
        status=model.status if changes.status is None else changes.status,
    )
