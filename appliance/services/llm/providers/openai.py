"""OpenAI's API as vLLM, llama.cpp's server, LM Studio, Ollama's /v1 and OpenAI itself
serve it: chat completions, completions, embeddings and the model list, at a base URL
that ends where OpenAI's `/v1` does. With `stream`, answers come as server-sent events
and usage is asked for in the last one (`stream_options.include_usage`)."""

from __future__ import annotations

from typing import Any

import httpx

from appliance.core.llm.calls import Parameters, as_completion_prompt
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
    sse_data,
    stream_lines,
    whole,
)


def sampling(parameters: Parameters) -> dict[str, Any]:
    body: dict[str, Any] = {}
    for name in ("temperature", "max_tokens", "top_p", "seed", "stop"):
        value = getattr(parameters, name)
        if value is not None:
            body[name] = value
    return body


def _usage(data: dict[str, Any], reply: Reply) -> None:
    usage = data.get("usage")
    if isinstance(usage, dict):
        reply.tokens_in = whole(usage.get("prompt_tokens"))
        reply.tokens_out = whole(usage.get("completion_tokens"))


def _stream_error(chunk: dict[str, Any], url: str) -> None:
    error = chunk.get("error")
    if error is None:
        return
    message = error.get("message") if isinstance(error, dict) else error
    code = error.get("code") if isinstance(error, dict) else None
    said = f"{url} streamed an error: {message}"
    if isinstance(code, int) and (code == 429 or code >= 500):
        raise Transient(said, status=code)
    raise Refused(said)


class OpenAICompatible:
    def __init__(self, style: str) -> None:
        self._chat = style == "chat"

    async def complete(self, http: httpx.AsyncClient, call: Call) -> Reply:
        base = call.endpoint.base_url
        url = f"{base}/chat/completions" if self._chat else f"{base}/completions"
        body: dict[str, Any] = {"model": call.model_name, **sampling(call.parameters)}
        if self._chat:
            body["messages"] = chat_messages(call.messages)
        else:
            body["prompt"] = as_completion_prompt(call.messages)
        if call.endpoint.stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
            return await self._streamed(http, call, url, body)
        data = await post_json(http, call.endpoint, url, bearer(call.key), body)
        return self._reply(data, url)

    def _reply(self, data: Any, url: str) -> Reply:
        what = "a chat completion" if self._chat else "a completion"
        try:
            choice = data["choices"][0]
            text = choice["message"]["content"] if self._chat else choice["text"]
        except (KeyError, IndexError, TypeError):
            raise not_an_answer(url, data, what) from None
        if text is not None and not isinstance(text, str):
            raise not_an_answer(url, data, what)
        reply = Reply(text=text or "", model=str(data.get("model") or ""), finish_reason=choice.get("finish_reason"))
        _usage(data, reply)
        return reply

    async def _streamed(self, http: httpx.AsyncClient, call: Call, url: str, body: dict[str, Any]) -> Reply:
        reply = Reply(text="")
        parts: list[str] = []
        done = False
        async for line in stream_lines(http, call.endpoint, url, bearer(call.key), body):
            payload = sse_data(line)
            if payload is None or not payload:
                continue
            if payload == "[DONE]":
                done = True
                break
            chunk = json_object(payload, url)
            _stream_error(chunk, url)
            reply.model = reply.model or str(chunk.get("model") or "")
            _usage(chunk, reply)
            for choice in chunk.get("choices") or []:
                if not isinstance(choice, dict):
                    continue
                delta = choice.get("delta") if self._chat else choice
                piece = delta.get("content" if self._chat else "text") if isinstance(delta, dict) else None
                if isinstance(piece, str):
                    parts.append(piece)
                if choice.get("finish_reason"):
                    reply.finish_reason = choice["finish_reason"]
        if not done and reply.finish_reason is None:
            raise Transient(f"{url} ended its stream before the answer was complete")
        reply.text = "".join(parts)
        return reply

    async def embed(
        self, http: httpx.AsyncClient, endpoint: Endpoint, model_name: str, key: str | None, texts: list[str]
    ) -> list[list[float]]:
        url = f"{endpoint.base_url}/embeddings"
        data = await post_json(http, endpoint, url, bearer(key), {"model": model_name, "input": texts})

        def read(data: Any) -> list[list[float]]:
            rows = sorted(data["data"], key=lambda row: row.get("index", 0))
            return [[float(x) for x in row["embedding"]] for row in rows]

        return counted_embeddings(url, data, texts, read)

    async def model_names(self, http: httpx.AsyncClient, endpoint: Endpoint, key: str | None) -> list[str]:
        return await listed_model_names(http, endpoint, f"{endpoint.base_url}/models", bearer(key), "data", "id")
