"""The HTTP plumbing under `ApplianceClient`: auth header, JSON, errors as exceptions."""

from __future__ import annotations

from typing import Any, Self

import httpx


class ApiError(Exception):
    """A 4xx or 5xx from the appliance, with the server's own words."""

    def __init__(
        self,
        status_code: int,
        code: str,
        message: str,
        details: dict[str, Any] | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(f"{status_code} {code}: {message}")
        self.status_code = status_code
        self.code = code
        self.message = message
        self.details = details or {}
        self.request_id = request_id


class Record(dict[str, Any]):
    """A JSON object whose fields read as attributes too: `result.output`."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def to_records(value: Any) -> Any:
    if isinstance(value, dict):
        return Record({k: to_records(v) for k, v in value.items()})
    if isinstance(value, list):
        return [to_records(v) for v in value]
    return value


def error_from_response(response: httpx.Response) -> ApiError:
    try:
        body = response.json()
    except ValueError:
        return ApiError(response.status_code, "HTTP_ERROR", response.text[:500])
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):  # sandbox surface
        return ApiError(
            response.status_code,
            error.get("code", "ERROR"),
            error.get("message", ""),
            error.get("details"),
            error.get("request_id"),
        )
    if isinstance(body, dict) and "detail" in body:  # platform surface
        return ApiError(response.status_code, str(error or "ERROR"), str(body["detail"]))
    return ApiError(response.status_code, "HTTP_ERROR", response.text[:500])


class Transport:
    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8080",
        api_key: str | None = None,
        *,
        token: str | None = None,
        timeout: float = 120.0,
    ) -> None:
        headers = {}
        if api_key:
            headers["X-API-Key"] = api_key.strip()
        elif token:
            headers["Authorization"] = f"Bearer {token}"
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """The raw response of a 2xx; anything else raises ApiError."""
        response = self.http.request(method, path, **kwargs)
        if response.status_code >= 400:
            raise error_from_response(response)
        return response

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        """The JSON body of a 2xx as Records; anything else raises ApiError."""
        response = self.request(method, path, **kwargs)
        if not response.content:
            return None
        return to_records(response.json())

    @property
    def ws_base(self) -> str:
        return "ws" + self.base_url[len("http") :]
