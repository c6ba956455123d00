"""Anthropic's Messages API (`claude` is the name llm-eval-api.md gives it): system
turns go in `system`, the rest in `messages`; streamed answers are server-sent events
(message_start, content_block_delta, message_delta, message_stop, error)."""

from __future__ import annotations

from typing import Any

import httpx

from appliance.services.llm.endpoints import ANTHROPIC_DEFAULT_MAX_TOKENS, Endpoint
from appliance.services.llm.providers.base import (
    Call,
    Refused,
    Reply,
    Transient,
    json_object,
    listed_model_names,
    not_an_answer,
    post_json,
    sse_data,
    stream_lines,
    whole,
)

# Error types of the API that say the server, not the request, is the problem.
TRANSIENT_ERRORS = frozenset({"overloaded_error", "api_error", "rate_limit_error", "timeout_error"})


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _api(base_url: str) -> str:
    return base_url if base_url.endswith("/v1") else f"{base_url}/v1"


def headers(endpoint: Endpoint, key: str | None) -> dict[str, str]:
    found = {"anthropic-version": endpoint.anthropic_version}
    if key:
        found["x-api-key"] = key
    return found


def _body(call: Call) -> dict[str, Any]:
    p = call.parameters
    body: dict[str, Any] = {
        "model": call.model_name,
        "max_tokens": p.max_tokens or ANTHROPIC_DEFAULT_MAX_TOKENS,
        "messages": [{"role": m.role, "content": m.content} for m in call.messages if m.role != "system"],
    }
    system = "\n\n".join(m.content for m in call.messages if m.role == "system")
    if system:
        body["system"] = system
    if p.temperature is not None:
        body["temperature"] = min(p.temperature, 1.0)  # the API's range is 0 to 1
    if p.top_p is not None:
        body["top_p"] = p.top_p
    if p.stop:
        body["stop_sequences"] = p.stop
    return body


class AnthropicMessages:
    async def complete(self, http: httpx.AsyncClient, call: Call) -> Reply:
        url = f"{_api(call.endpoint.base_url)}/messages"
        body = _body(call)
        if call.endpoint.stream:
            body["stream"] = True
            return await self._streamed(http, call, url, body)
        data = await post_json(http, call.endpoint, url, headers(call.endpoint, call.key), body)
        try:
            blocks = data["content"]
            text = "".join(b["text"] for b in blocks if isinstance(b, dict) and b.get("type") == "text")
        except (KeyError, TypeError):
            raise not_an_answer(url, data, "a message") from None
        usage = _dict(data.get("usage"))
        return Reply(
            text=text,
            tokens_in=whole(usage.get("input_tokens")),
            tokens_out=whole(usage.get("output_tokens")),
            model=str(data.get("model") or ""),
            finish_reason=data.get("stop_reason"),
        )

    async def _streamed(self, http: httpx.AsyncClient, call: Call, url: str, body: dict[str, Any]) -> Reply:
        reply = Reply(text="")
        parts: list[str] = []
        stopped = False
        async for line in stream_lines(http, call.endpoint, url, headers(call.endpoint, call.key), body):
            payload = sse_data(line)
            if not payload:
                continue
            event = json_object(payload, url)
            kind = event.get("type")
            if kind == "message_start":
                message = _dict(event.get("message"))
                reply.model = str(message.get("model") or "")
                reply.tokens_in = whole(_dict(message.get("usage")).get("input_tokens"))
            elif kind == "content_block_delta":
                piece = _dict(event.get("delta")).get("text")
                if isinstance(piece, str):
                    parts.append(piece)
            elif kind == "message_delta":
                reply.tokens_out = whole(_dict(event.get("usage")).get("output_tokens")) or reply.tokens_out
                reply.finish_reason = _dict(event.get("delta")).get("stop_reason") or reply.finish_reason
            elif kind == "message_stop":
                stopped = True
                break
            elif kind == "error":
                error = _dict(event.get("error"))
                said = f"{url} streamed an error: {error.get('type')}: {error.get('message')}"
                if error.get("type") in TRANSIENT_ERRORS:
                    raise Transient(said)
                raise Refused(said)
        if not stopped:
            raise Transient(f"{url} ended its stream before message_stop")
        reply.text = "".join(parts)
        return reply

    async def embed(
        self, http: httpx.AsyncClient, endpoint: Endpoint, model_name: str, key: str | None, texts: list[str]
    ) -> list[list[float]]:
        raise Refused(f"model {endpoint.model_id}: Anthropic's API has no embeddings; name an embedding model")

    async def model_names(self, http: httpx.AsyncClient, endpoint: Endpoint, key: str | None) -> list[str]:
        url = f"{_api(endpoint.base_url)}/models"
        return await listed_model_names(http, endpoint, url, headers(endpoint, key), "data", "id")
