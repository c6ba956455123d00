"""ModelCalls: one call to a model, with everything around it.

In order: the entry becomes an `Endpoint`; parameters are layered (request < prompt <
the entry's config) and a configured seed is offset by the trial number, so trials are
reproducible and distinct; the cache answers if it has this exact call (provider, base
URL, model, parameters, messages, trial); otherwise the server's limiter gives a slot,
the provider makes the call, and infrastructure failures (`Transient`) are retried with
exponential backoff and full jitter, or after the server's Retry-After. A `Refused`
call is not retried. What the call cost and how long it took is reported to telemetry.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import httpx
import msgspec

from appliance.core.llm.calls import (
    ChatMessage,
    Completion,
    ModelCallRecord,
    Parameters,
    ProviderFailed,
    ProviderTimedOut,
)
from appliance.core.models import Model
from appliance.services.llm.endpoints import CallDefaults, Endpoint, endpoint_of
from appliance.services.llm.keys import provider_key, scrub
from appliance.services.llm.limits import ServerLimiter
from appliance.services.llm.providers import provider_for
from appliance.services.llm.providers.base import Call, Refused, Reply, Transient
from appliance.services.llm.telemetry import ModelCallRecorder
from appliance.store.llm_cache import LlmCacheStore

log = logging.getLogger(__name__)

T = TypeVar("T")
CACHE_FORMAT = 1


class RetryPolicy(msgspec.Struct, frozen=True, kw_only=True):
    base_seconds: float = 0.5
    max_seconds: float = 30.0

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """Full jitter: anywhere from 0 to base * 2^(attempt-1), at most max."""
        return rng.uniform(0, min(self.max_seconds, self.base_seconds * 2 ** (attempt - 1)))


class CallFailure(Exception):
    """Transient failures past the retries, or a Refused call, with what was tried."""

    def __init__(self, cause: Transient | Refused, attempts: int) -> None:
        super().__init__(cause.message)
        self.cause = cause
        self.attempts = attempts


def cache_key(
    endpoint: Endpoint, model_name: str, parameters: Parameters, messages: list[ChatMessage], trial: int
) -> str:
    what = {
        "format": CACHE_FORMAT,
        "provider": endpoint.wire.value,
        "base_url": endpoint.base_url,
        "model": model_name,
        "parameters": parameters,
        "messages": messages,
        "trial": trial,
    }
    return hashlib.sha256(msgspec.json.encode(what, order="sorted")).hexdigest()


class ModelCalls:
    def __init__(
        self,
        cache: LlmCacheStore,
        recorder: ModelCallRecorder,
        defaults: CallDefaults,
        retry: RetryPolicy,
        rng: random.Random | None = None,
    ) -> None:
        self._cache = cache
        self._recorder = recorder
        self._defaults = defaults
        self._retry = retry
        self._rng = rng or random.Random()
        self._limiters: dict[tuple[str, str], ServerLimiter] = {}
        self._names: dict[tuple[str, str], str] = {}
        self._naming: dict[tuple[str, str], asyncio.Lock] = {}
        self._http: httpx.AsyncClient | None = None

    def set_recorder(self, recorder: ModelCallRecorder) -> None:
        self._recorder = recorder

    @property
    def http(self) -> httpx.AsyncClient:
        if self._http is None:
            # trust_env off: a proxy set for the shell must not take calls to loopback.
            self._http = httpx.AsyncClient(
                trust_env=False, limits=httpx.Limits(max_connections=256, max_keepalive_connections=64)
            )
        return self._http

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    def endpoint(self, model: Model) -> Endpoint:
        """ValidationError when the entry cannot be called."""
        return endpoint_of(model, self._defaults)

    def limiter(self, endpoint: Endpoint) -> ServerLimiter:
        limiter = self._limiters.setdefault(endpoint.server, ServerLimiter())
        limiter.configure(endpoint.max_concurrency, endpoint.requests_per_minute)
        return limiter

    # --- calls ------------------------------------------------------------------------------

    async def complete(
        self,
        model: Model,
        messages: list[ChatMessage],
        parameters: Parameters | None = None,
        *,
        trial: int = 0,
        use_cache: bool = True,
    ) -> Completion:
        """The model's answer; ProviderFailed or ProviderTimedOut when there is none."""
        endpoint = self.endpoint(model)
        key = provider_key(endpoint)
        name = await self.model_name(endpoint, key)
        sent = (parameters or Parameters()).over(endpoint.defaults)
        if sent.seed is not None:
            sent = msgspec.structs.replace(sent, seed=sent.seed + trial)
        digest = cache_key(endpoint, name, sent, messages, trial) if use_cache else ""
        if use_cache:
            cached = await self._cache.get(digest)
            if cached is not None:
                return msgspec.structs.replace(cached, cached=True)
        provider = provider_for(endpoint.wire)
        call = Call(endpoint=endpoint, model_name=name, messages=messages, parameters=sent, key=key)
        started = time.monotonic()
        try:
            reply, latency_ms, attempts = await self._with_retries(
                endpoint, lambda: provider.complete(self.http, call), key
            )
        except CallFailure as failure:
            self._report(endpoint, failure, started, sent)
            raise _as_error(endpoint, failure, key) from None
        completion = Completion(
            text=reply.text,
            tokens_in=reply.tokens_in,
            tokens_out=reply.tokens_out,
            latency_ms=round(latency_ms, 3),
            model=reply.model or name,
            finish_reason=reply.finish_reason,
            cost=endpoint.cost(reply.tokens_in, reply.tokens_out),
            attempts=attempts,
            temperature=sent.temperature,
            seed=sent.seed,
        )
        self._recorder.record(
            ModelCallRecord(
                model_id=endpoint.model_id,
                provider=endpoint.provider,
                status="ok",
                latency_ms=completion.latency_ms,
                tokens_in=completion.tokens_in,
                tokens_out=completion.tokens_out,
                cost=completion.cost,
                temperature=sent.temperature,
                seed=sent.seed,
            )
        )
        if use_cache:
            await self._cache.put(digest, endpoint.wire.value, endpoint.base_url, name, completion)
        return completion

    async def embed(self, model: Model, texts: list[str]) -> list[list[float]]:
        endpoint = self.endpoint(model)
        key = provider_key(endpoint)
        name = await self.model_name(endpoint, key)
        provider = provider_for(endpoint.wire)
        try:
            vectors, _, _ = await self._with_retries(
                endpoint, lambda: provider.embed(self.http, endpoint, name, key, texts), key
            )
        except CallFailure as failure:
            raise _as_error(endpoint, failure, key) from None
        return vectors

    async def model_name(self, endpoint: Endpoint, key: str | None) -> str:
        """The entry's config.model, or else the first model its server lists."""
        if endpoint.model_name:
            return endpoint.model_name
        which = (endpoint.model_id, endpoint.base_url)
        async with self._naming.setdefault(which, asyncio.Lock()):  # one question for a suite's many calls
            known = self._names.get(which)
            if known:
                return known
            provider = provider_for(endpoint.wire)
            try:
                names, _, _ = await self._with_retries(
                    endpoint, lambda: provider.model_names(self.http, endpoint, key), key
                )
            except CallFailure as failure:
                raise _as_error(endpoint, failure, key, "listing its models") from None
            if not names:
                raise ProviderFailed(
                    f"model {endpoint.model_id}: the server at {endpoint.base_url} lists no model; set config.model"
                )
            self._names[which] = names[0]
            return names[0]

    async def _with_retries(
        self, endpoint: Endpoint, attempt: Callable[[], Awaitable[T]], key: str | None
    ) -> tuple[T, float, int]:
        """(what `attempt` gave, its latency in ms, attempts made)."""
        limiter = self.limiter(endpoint)
        tries = 0
        while True:
            tries += 1
            try:
                async with limiter.slot():
                    began = time.monotonic()
                    try:
                        async with asyncio.timeout(endpoint.timeout_seconds):
                            result = await attempt()
                    except TimeoutError:
                        raise Transient(f"no answer within {endpoint.timeout_seconds:g} s", timed_out=True) from None
                    return result, (time.monotonic() - began) * 1000, tries
            except Refused as refused:
                raise CallFailure(refused, tries) from None
            except Transient as transient:
                delay = self._delay(tries, transient, endpoint)
                if delay is None:
                    raise CallFailure(transient, tries) from None
                if transient.status == 429:
                    limiter.pause(delay)
                said = scrub(transient.message, key)
                log.info("model %s: %s; attempt %d in %.2f s", endpoint.model_id, said, tries + 1, delay)
                await asyncio.sleep(delay)

    def _delay(self, tries: int, transient: Transient, endpoint: Endpoint) -> float | None:
        """Seconds before the next attempt, or None: no more attempts."""
        if tries > endpoint.max_retries:
            return None
        if transient.retry_after is not None:
            if transient.retry_after > self._retry.max_seconds:
                transient.message += (
                    f" (it asks to retry after {transient.retry_after:g} s, more than llm_retry_max_seconds)"
                )
                return None
            return transient.retry_after + self._rng.uniform(0, min(1.0, self._retry.base_seconds))
        return self._retry.backoff(tries, self._rng)

    def _report(self, endpoint: Endpoint, failure: CallFailure, started: float, sent: Parameters) -> None:
        timed_out = isinstance(failure.cause, Transient) and failure.cause.timed_out
        self._recorder.record(
            ModelCallRecord(
                model_id=endpoint.model_id,
                provider=endpoint.provider,
                status="timeout" if timed_out else "error",
                latency_ms=(time.monotonic() - started) * 1000,
                temperature=sent.temperature,
                seed=sent.seed,
            )
        )


def _as_error(
    endpoint: Endpoint, failure: CallFailure, key: str | None, doing: str = "answering"
) -> ProviderFailed | ProviderTimedOut:
    cause = failure.cause
    tries = f"{failure.attempts} attempt{'s' if failure.attempts != 1 else ''}"
    said = scrub(cause.message, key)
    where = f"model {endpoint.model_id} ({endpoint.base_url})"
    if isinstance(cause, Transient) and cause.timed_out:
        return ProviderTimedOut(f"{where} timed out {doing}: {said} ({tries})")
    if isinstance(cause, Transient):
        return ProviderFailed(f"{where} failed {doing} after {tries}: {said}")
    return ProviderFailed(f"{where} refused: {said}")


__all__ = ["CallFailure", "ModelCalls", "Reply", "RetryPolicy", "cache_key"]
