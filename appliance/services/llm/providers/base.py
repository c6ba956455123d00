"""What every wire protocol shares: the call it is handed, the reply it gives, the two
ways it can fail, and HTTP helpers that sort failures into those two.

`Transient` is an infrastructure failure worth retrying: no connection, a connection
lost, a timeout, 429, or a 5xx. `Refused` is everything else (a 4xx, a 200 whose body
is not an answer): retrying would get the same. A wrong answer is neither: it is an
answer, and graders judge it.
"""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

import httpx
import msgspec

from appliance.core.llm.calls import ChatMessage, Parameters
from appliance.services.llm.endpoints import Endpoint

MESSAGE_CHARS = 500


class Transient(Exception):
    def __init__(
        self, message: str, *, status: int | None = None, retry_after: float | None = None, timed_out: bool = False
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.retry_after = retry_after
        self.timed_out = timed_out


class Refused(Exception):
    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


class Call(msgspec.Struct, frozen=True, kw_only=True):
    endpoint: Endpoint
    model_name: str
    messages: list[ChatMessage]
    parameters: Parameters
    key: str | None


class Reply(msgspec.Struct, kw_only=True):
    text: str
    tokens_in: int = 0
    tokens_out: int = 0
    model: str = ""
    finish_reason: str | None = None


class Provider(Protocol):
    async def complete(self, http: httpx.AsyncClient, call: Call) -> Reply: ...

    async def embed(
        self, http: httpx.AsyncClient, endpoint: Endpoint, model_name: str, key: str | None, texts: list[str]
    ) -> list[list[float]]: ...

    async def model_names(self, http: httpx.AsyncClient, endpoint: Endpoint, key: str | None) -> list[str]: ...


# --- reading what servers say --------------------------------------------------------------


def short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MESSAGE_CHARS else text[:MESSAGE_CHARS] + "..."


def error_text(body: bytes) -> str:
    """A server's own words in an error body: OpenAI's and Anthropic's {"error":
    {"message": ...}}, Ollama's {"error": "..."}, or the text itself."""
    try:
        data = json.loads(body)
    except ValueError:
        return short(body.decode("utf-8", "replace")) or "(no body)"
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict) and error.get("message"):
        kind = f"{error['type']}: " if isinstance(error.get("type"), str) else ""
        return short(kind + str(error["message"]))
    if isinstance(error, str):
        return short(error)
    if isinstance(data, dict) and isinstance(data.get("detail"), str):
        return short(data["detail"])
    return short(body.decode("utf-8", "replace"))


def retry_after(headers: httpx.Headers) -> float | None:
    """Seconds a server asks to wait: `retry-after-ms`, then `Retry-After` as seconds or
    as an HTTP date."""
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - time.time())


def failure(status: int, headers: httpx.Headers, body: bytes, what: str) -> Transient | Refused:
    said = f"{what} answered {status}: {error_text(body)}"
    if status in (408, 429) or status >= 500:
        return Transient(said, status=status, retry_after=retry_after(headers))
    return Refused(said, status=status)


def timeout_for(endpoint: Endpoint) -> httpx.Timeout:
    return httpx.Timeout(endpoint.timeout_seconds, connect=min(10.0, endpoint.timeout_seconds))


def _transport_failure(exc: httpx.HTTPError, url: str) -> Transient:
    if isinstance(exc, httpx.TimeoutException):
        return Transient(f"{url} did not answer in time ({type(exc).__name__})", timed_out=True)
    return Transient(f"{url}: {type(exc).__name__}: {short(str(exc)) or 'connection failed'}")


async def post_json(
    http: httpx.AsyncClient, endpoint: Endpoint, url: str, headers: dict[str, str], body: dict[str, Any]
) -> Any:
    """The decoded JSON answer of a 2xx; Transient or Refused otherwise."""
    try:
        response = await http.post(url, json=body, headers=headers, timeout=timeout_for(endpoint))
    except httpx.HTTPError as exc:
        raise _transport_failure(exc, url) from None
    return _decoded(response, url)


async def get_json(http: httpx.AsyncClient, endpoint: Endpoint, url: str, headers: dict[str, str]) -> Any:
    try:
        response = await http.get(url, headers=headers, timeout=timeout_for(endpoint))
    except httpx.HTTPError as exc:
        raise _transport_failure(exc, url) from None
    return _decoded(response, url)


def _decoded(response: httpx.Response, url: str) -> Any:
    if response.status_code >= 300:
        raise failure(response.status_code, response.headers, response.content, url)
    try:
        return json.loads(response.content)
    except ValueError:
        raise Refused(
            f"{url} answered {response.status_code} with a body that is not JSON: {short(response.text) or '(empty)'}"
        ) from None


async def stream_lines(
    http: httpx.AsyncClient, endpoint: Endpoint, url: str, headers: dict[str, str], body: dict[str, Any]
) -> AsyncIterator[str]:
    """The lines of a streamed 2xx answer (SSE or NDJSON), as they come."""
    try:
        async with http.stream("POST", url, json=body, headers=headers, timeout=timeout_for(endpoint)) as response:
            if response.status_code >= 300:
                raise failure(response.status_code, response.headers, await response.aread(), url)
            async for line in response.aiter_lines():
                yield line
    except httpx.HTTPError as exc:
        raise _transport_failure(exc, url) from None


def sse_data(line: str) -> str | None:
    """The payload of an SSE `data:` line; None for other lines (events, comments)."""
    if line.startswith("data:"):
        return line[len("data:") :].strip()
    return None


def json_object(text: str, url: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        raise Refused(f"{url} streamed a chunk that is not JSON: {short(text)}") from None
    if not isinstance(value, dict):
        raise Refused(f"{url} streamed a chunk that is not a JSON object: {short(text)}")
    return value


def whole(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def not_an_answer(url: str, data: Any, what: str) -> Refused:
    return Refused(f"{url} answered 200, but not with {what}: {short(json.dumps(data))}")


def bearer(key: str | None) -> dict[str, str]:
    """OpenAI's key header, which a proxy in front of Ollama may want as well."""
    return {"Authorization": f"Bearer {key}"} if key else {}


def chat_messages(messages: list[ChatMessage]) -> list[dict[str, str]]:
    return [{"role": m.role, "content": m.content} for m in messages]


def counted_embeddings(
    url: str, data: Any, texts: list[str], read: Callable[[Any], list[list[float]]]
) -> list[list[float]]:
    """The vectors `read` finds in an answer, one for each of `texts`, or Refused."""
    try:
        vectors = read(data)
    except (KeyError, TypeError, ValueError, AttributeError):
        raise not_an_answer(url, data, "embeddings") from None
    if len(vectors) != len(texts):
        raise not_an_answer(url, data, f"{len(texts)} embeddings")
    return vectors


async def listed_model_names(
    http: httpx.AsyncClient, endpoint: Endpoint, url: str, headers: dict[str, str], rows: str, name: str
) -> list[str]:
    """The `name` of each row under `rows` in the model list at `url`."""
    data = await get_json(http, endpoint, url, headers)
    try:
        return [str(row[name]) for row in data[rows]]
    except (KeyError, TypeError):
        raise not_an_answer(url, data, "a model list") from None
