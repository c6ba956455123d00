"""A model server started by the tests: it speaks the real wire protocols over HTTP on
loopback and answers what the test scripts.

One raw ASGI app under uvicorn, in a thread of the test process, serves OpenAI's chat
completions, completions, embeddings and model list (under /v1), Anthropic's Messages
API (/v1/messages) and Ollama's native API (/api/chat, /api/generate, /api/embed,
/api/tags), streamed (SSE, or NDJSON for Ollama) when the request asks. What it answers
is `server.script(seen)`: a text, or a `Reply` that can also be an error status with a
body and headers, a hang, a body that is not JSON, a stream cut short, or a delay.
Every request is kept in `server.seen`; `server.max_in_flight` is the most that were
being answered at once, per model name (`max_in_flight_of`).

Token counts are the words of the input and of the answer, so a test knows what the
appliance must report.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import uvicorn

JUDGE_MARK = "You grade an AI model's response"


@dataclass
class Seen:
    """One request as the server received it."""

    wire: str  # openai-chat, openai-completions, openai-embeddings, anthropic, ollama-chat, ...
    path: str
    headers: dict[str, str]
    body: dict[str, Any]

    @property
    def messages(self) -> list[dict[str, str]]:
        return list(self.body.get("messages") or [])

    @property
    def text(self) -> str:
        """Everything the model was asked, as one text."""
        parts = [str(self.body.get("system") or ""), str(self.body.get("prompt") or "")]
        parts += [str(m.get("content", "")) for m in self.messages]
        return "\n".join(p for p in parts if p)

    @property
    def last_user(self) -> str:
        users = [m["content"] for m in self.messages if m.get("role") == "user"]
        return users[-1] if users else str(self.body.get("prompt") or "")

    @property
    def is_judge(self) -> bool:
        return JUDGE_MARK in self.text

    @property
    def seed(self) -> int | None:
        options = self.body.get("options") or {}
        value = self.body.get("seed", options.get("seed"))
        return value if isinstance(value, int) else None

    @property
    def streamed(self) -> bool:
        return bool(self.body.get("stream"))


@dataclass
class Reply:
    text: str = ""
    status: int = 200
    body: bytes | None = None  # sent as it is instead of the protocol's answer
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before answering
    hang: bool = False  # never answer (until the client gives up)
    cut_stream: bool = False  # stream part of the answer, then close without the end


def words(text: str) -> int:
    return len(text.split())


def default_script(seen: Seen) -> Reply | str:
    if seen.is_judge:
        return json.dumps({"reason": "The response meets the rubric.", "score": 0.9, "pass": True})
    return "Hello! How can I help you today?"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ScriptedModelServer:
    def __init__(self) -> None:
        self.script: Callable[[Seen], Reply | str] = default_script
        self.seen: list[Seen] = []
        self.api_key: str | None = None  # when set, requests must carry it
        self._in_flight: dict[str, int] = {}
        self._most: dict[str, int] = {}
        self._lock = threading.Lock()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            self.app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="off",
            access_log=False,
            interface="asgi3",
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="scripted-model-server", daemon=True)

    def start(self) -> ScriptedModelServer:
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the scripted model server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._server.force_exit = True
        self._thread.join(10)

    def reset(self, script: Callable[[Seen], Reply | str] = default_script) -> None:
        with self._lock:
            self.script = script
            self.seen = []
            self._most = {}
            self.api_key = None

    def max_in_flight_of(self, model: str) -> int:
        with self._lock:
            return self._most.get(model, 0)

    def requests(self, wire: str | None = None, *, judge: bool | None = None) -> list[Seen]:
        with self._lock:
            found = list(self.seen)
        return [s for s in found if (wire is None or s.wire == wire) and (judge is None or s.is_judge == judge)]

    # --- the ASGI app -----------------------------------------------------------------------

    async def app(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        path, method = scope["path"], scope["method"]
        if method == "GET":
            await self._listing(path, send)
            return
        wire = WIRES.get(path)
        if wire is None:
            await _send(send, 404, b'{"error": {"message": "no such path"}}')
            return
        try:
            decoded = json.loads(body) if body else {}
        except ValueError:
            await _send(send, 400, b'{"error": {"message": "body is not JSON"}}')
            return
        seen = Seen(wire=wire, path=path, headers=headers, body=decoded)
        model = str(decoded.get("model", ""))
        with self._lock:
            self.seen.append(seen)
            self._in_flight[model] = self._in_flight.get(model, 0) + 1
            self._most[model] = max(self._most.get(model, 0), self._in_flight[model])
        try:
            if self.api_key and self.api_key not in (headers.get("x-api-key"), headers.get("authorization", "")[7:]):
                await _send(
                    send,
                    401,
                    json.dumps({"error": {"type": "authentication_error", "message": "invalid key"}}).encode(),
                )
                return
            reply = self.script(seen)
            reply = reply if isinstance(reply, Reply) else Reply(text=reply)
            if reply.hang:
                await asyncio.sleep(3600)
            if reply.delay:
                await asyncio.sleep(reply.delay)
            if reply.status != 200 or reply.body is not None:
                await _send(send, reply.status, reply.body or b"", reply.headers)
                return
            if wire.endswith("embeddings") or wire == "ollama-embed":
                await _send(send, 200, json.dumps(_embeddings(wire, decoded)).encode())
                return
            if seen.streamed:
                await _stream(send, wire, decoded, seen, reply)
            else:
                await _send(send, 200, json.dumps(_answer(wire, decoded, seen, reply.text)).encode())
        finally:
            with self._lock:
                self._in_flight[model] -= 1

    async def _listing(self, path: str, send: Any) -> None:
        if path == "/v1/models":
            await _send(send, 200, b'{"object": "list", "data": [{"id": "scripted-model", "object": "model"}]}')
        elif path == "/api/tags":
            await _send(send, 200, b'{"models": [{"name": "scripted-llama:latest"}]}')
        else:
            await _send(send, 404, b'{"error": {"message": "no such path"}}')


WIRES = {
    "/v1/chat/completions": "openai-chat",
    "/v1/completions": "openai-completions",
    "/v1/embeddings": "openai-embeddings",
    "/v1/messages": "anthropic",
    "/api/chat": "ollama-chat",
    "/api/generate": "ollama-generate",
    "/api/embed": "ollama-embed",
}


async def _send(send: Any, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
    raw = [(b"content-type", b"application/json")] + [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


def _vector(text: str) -> list[float]:
    """A deterministic embedding: letter counts."""
    counts = [0.0] * 26
    for char in text.lower():
        if "a" <= char <= "z":
            counts[ord(char) - 97] += 1
    return counts


def _embeddings(wire: str, body: dict[str, Any]) -> dict[str, Any]:
    texts = body.get("input") or []
    texts = [texts] if isinstance(texts, str) else texts
    if wire == "ollama-embed":
        return {"model": body.get("model"), "embeddings": [_vector(t) for t in texts]}
    return {
        "object": "list",
        "data": [{"index": i, "embedding": _vector(t)} for i, t in enumerate(texts)],
        "usage": {"prompt_tokens": sum(words(t) for t in texts), "total_tokens": sum(words(t) for t in texts)},
    }


def _answer(wire: str, body: dict[str, Any], seen: Seen, text: str) -> dict[str, Any]:
    tokens_in, tokens_out = words(seen.text), words(text)
    model = body.get("model", "")
    openai_usage = {"prompt_tokens": tokens_in, "completion_tokens": tokens_out, "total_tokens": tokens_in + tokens_out}
    if wire == "openai-chat":
        return {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": openai_usage,
        }
    if wire == "openai-completions":
        return {
            "id": "cmpl-1",
            "object": "text_completion",
            "model": model,
            "choices": [{"index": 0, "text": text, "finish_reason": "stop"}],
            "usage": openai_usage,
        }
    if wire == "anthropic":
        return {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [{"type": "text", "text": text}],
            "stop_reason": "end_turn",
            "usage": {"input_tokens": tokens_in, "output_tokens": tokens_out},
        }
    key = "message" if wire == "ollama-chat" else "response"
    value: Any = {"role": "assistant", "content": text} if wire == "ollama-chat" else text
    return {
        "model": model,
        key: value,
        "done": True,
        "done_reason": "stop",
        "prompt_eval_count": tokens_in,
        "eval_count": tokens_out,
    }


def _pieces(text: str) -> list[str]:
    parts = text.split(" ")
    return [p + (" " if i < len(parts) - 1 else "") for i, p in enumerate(parts)]


async def _stream(send: Any, wire: str, body: dict[str, Any], seen: Seen, reply: Reply) -> None:
    ndjson = wire.startswith("ollama")
    kind = b"application/x-ndjson" if ndjson else b"text/event-stream"
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", kind)]})

    async def emit(data: dict[str, Any] | str, event: str | None = None) -> None:
        text = data if isinstance(data, str) else json.dumps(data)
        sse = (f"event: {event}\n" if event else "") + f"data: {text}\n\n"
        chunk = text + "\n" if ndjson else sse
        await send({"type": "http.response.body", "body": chunk.encode(), "more_body": True})
        await asyncio.sleep(0)

    pieces = _pieces(reply.text)
    if reply.cut_stream:
        pieces = pieces[: max(1, len(pieces) // 2)]
    tokens_in, tokens_out = words(seen.text), words(reply.text)
    model = body.get("model", "")
    if wire == "anthropic":
        await emit(
            {
                "type": "message_start",
                "message": {"model": model, "usage": {"input_tokens": tokens_in, "output_tokens": 1}},
            },
            "message_start",
        )
        for piece in pieces:
            await emit(
                {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}},
                "content_block_delta",
            )
        if not reply.cut_stream:
            await emit(
                {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": tokens_out}},
                "message_delta",
            )
            await emit({"type": "message_stop"}, "message_stop")
    elif ndjson:
        key = "message" if wire == "ollama-chat" else "response"
        for piece in pieces:
            value: Any = {"role": "assistant", "content": piece} if wire == "ollama-chat" else piece
            await emit({"model": model, key: value, "done": False})
        if not reply.cut_stream:
            last: Any = {"role": "assistant", "content": ""} if wire == "ollama-chat" else ""
            await emit(
                {
                    "model": model,
                    key: last,
                    "done": True,
                    "done_reason": "stop",
                    "prompt_eval_count": tokens_in,
                    "eval_count": tokens_out,
                }
            )
    else:
        chat = wire == "openai-chat"
        for piece in pieces:
            choice = {"index": 0, "delta": {"content": piece}} if chat else {"index": 0, "text": piece}
            await emit({"id": "x", "model": model, "choices": [choice]})
        if not reply.cut_stream:
            end = (
                {"index": 0, "delta": {}, "finish_reason": "stop"}
                if chat
                else {"index": 0, "text": "", "finish_reason": "stop"}
            )
            await emit({"id": "x", "model": model, "choices": [end]})
            if (body.get("stream_options") or {}).get("include_usage"):
                await emit(
                    {
                        "id": "x",
                        "model": model,
                        "choices": [],
                        "usage": {"prompt_tokens": tokens_in, "completion_tokens": tokens_out},
                    }
                )
            await emit("[DONE]")
    await send({"type": "http.response.body", "body": b"", "more_body": False})
