"""Ollama's native API: /api/chat (or /api/generate for the completions style), with
sampling parameters under `options` and token counts as prompt_eval_count and
eval_count; streamed answers are one JSON object per line, the last with done: true."""

from __future__ import annotations

from typing import Any

import httpx

from appliance.core.llm.calls import as_completion_prompt
from appliance.services.llm.endpoints import Endpoint
from appliance.services.llm.providers.base import (
    Call,
    Refused,
    Reply,
    Transient,
    bearer,
    chat_messages,
    counted_embeddings,
    json_object,
    listed_model_names,
    not_an_answer,
    post_json,
    stream_lines,
    whole,
)


def _options(call: Call) -> dict[str, Any]:
    p = call.parameters
    options: dict[str, Any] = {}
    if p.temperature is not None:
        options["temperature"] = p.temperature
    if p.top_p is not None:
        options["top_p"] = p.top_p
    if p.seed is not None:
        options["seed"] = p.seed
    if p.max_tokens is not None:
        options["num_predict"] = p.max_tokens
    if p.stop:
        options["stop"] = p.stop
    return options


class OllamaNative:
    # Ollama itself takes no key; one in front of it (a proxy) may want a bearer.

    def __init__(self, style: str) -> None:
        self._chat = style == "chat"

    def _piece(self, data: dict[str, Any]) -> str | None:
        if self._chat:
            message = data.get("message")
            content = message.get("content") if isinstance(message, dict) else None
        else:
            content = data.get("response")
        return content if isinstance(content, str) else None

    async def complete(self, http: httpx.AsyncClient, call: Call) -> Reply:
        base = call.endpoint.base_url
        url = f"{base}/api/chat" if self._chat else f"{base}/api/generate"
        body: dict[str, Any] = {"model": call.model_name, "stream": call.endpoint.stream, "options": _options(call)}
        if self._chat:
            body["messages"] = chat_messages(call.messages)
        else:
            body["prompt"] = as_completion_prompt(call.messages)
            body["raw"] = False
        if not call.endpoint.stream:
            data = await post_json(http, call.endpoint, url, bearer(call.key), body)
            text = self._piece(data) if isinstance(data, dict) else None
            if text is None:
                raise not_an_answer(url, data, "a chat answer" if self._chat else "a generation")
            return self._counted(Reply(text=text), data)
        parts: list[str] = []
        async for line in stream_lines(http, call.endpoint, url, bearer(call.key), body):
            if not line.strip():
                continue
            data = json_object(line, url)
            if "error" in data:
                raise Refused(f"{url} streamed an error: {data['error']}")
            piece = self._piece(data)
            if piece:
                parts.append(piece)
            if data.get("done") is True:
                return self._counted(Reply(text="".join(parts)), data)
        raise Transient(f"{url} ended its stream before done: true")

    @staticmethod
    def _counted(reply: Reply, data: dict[str, Any]) -> Reply:
        reply.tokens_in = whole(data.get("prompt_eval_count"))
        reply.tokens_out = whole(data.get("eval_count"))
        reply.model = str(data.get("model") or "")
        reason = data.get("done_reason")
        reply.finish_reason = reason if isinstance(reason, str) else None
        return reply

    async def embed(
        self, http: httpx.AsyncClient, endpoint: Endpoint, model_name: str, key: str | None, texts: list[str]
    ) -> list[list[float]]:
        url = f"{endpoint.base_url}/api/embed"
        data = await post_json(http, endpoint, url, bearer(key), {"model": model_name, "input": texts})
        return counted_embeddings(
            url, data, texts, lambda found: [[float(x) for x in row] for row in found["embeddings"]]
        )

    async def model_names(self, http: httpx.AsyncClient, endpoint: Endpoint, key: str | None) -> list[str]:
        return await listed_model_names(http, endpoint, f"{endpoint.base_url}/api/tags", bearer(key), "models", "name")
