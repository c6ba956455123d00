"""The model registry (/api/v1/models) and browser sessions (/api/v1/session)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from appliance.client.listing import ListsApi

MODELS = "/api/v1/models"
SESSION = "/api/v1/session"


class ModelsApi(ListsApi):
    # --- models -------------------------------------------------------------------------

    def list_models(
        self,
        filters: Mapping[str, Any] | None = None,
        *,
        sort: str | None = None,
        page: int | None = None,
        per_page: int | None = None,
        cursor: str | None = None,
    ) -> Any:
        """One page: `data` (the models) and `meta`."""
        return self.list_page(MODELS, filters=filters, sort=sort, page=page, per_page=per_page, cursor=cursor)

    def iter_models(self, filters: Mapping[str, Any] | None = None, *, sort: str | None = None) -> Iterator[Any]:
        return self.iterate(MODELS, filters=filters, sort=sort)

    def get_model(self, model_id: str) -> Any:
        return self.call("GET", f"{MODELS}/{model_id}")["data"]

    def create_model(
        self,
        name: str,
        provider: str,
        *,
        type: str = "llm",
        config: Mapping[str, Any] | None = None,
        status: str | None = None,
    ) -> Any:
        """`config` holds no secret: name the environment variable with the provider key
        as `api_key_env`."""
        model: dict[str, Any] = {"name": name, "provider": provider, "type": type, "config": dict(config or {})}
        if status is not None:
            model["status"] = status
        return self.call("POST", MODELS, json={"model": model})["data"]

    def update_model(self, model_id: str, **changes: Any) -> Any:
        """`name=`, `provider=`, `type=`, `status=`, `config=` (merged into the stored
        config; a None value removes a key)."""
        return self.call("PATCH", f"{MODELS}/{model_id}", json={"model": changes})["data"]

    def delete_model(self, model_id: str) -> None:
        self.call("DELETE", f"{MODELS}/{model_id}")

    def model_statistics(self, model_id: str, period: str = "24h") -> Any:
        return self.call("GET", f"{MODELS}/{model_id}/statistics", params={"period": period})["data"]

    # --- sessions -----------------------------------------------------------------------

    def open_session(self, *, use: bool = False) -> Any:
        """Open a browser session with this client's key: the cookie goes into the
        client's cookie jar, the CSRF token is in the answer. `use=True` then acts
        through the session alone (the key header dropped, the CSRF token sent)."""
        opened = self.call("POST", SESSION)["data"]
        if use:
            for header in ("X-API-Key", "Authorization"):
                self.http.headers.pop(header, None)
            self.http.headers["X-CSRF-Token"] = opened["csrf_token"]
        return opened

    def whoami(self) -> Any:
        """The key the client acts as, and its session if it uses one."""
        return self.call("GET", SESSION)["data"]

    def close_session(self) -> None:
        self.call("DELETE", SESSION)

    def list_sessions(self, **params: Any) -> Any:
        return self.list_page("/api/v1/sessions", **params)

    def end_session(self, session_id: str) -> None:
        self.call("DELETE", f"/api/v1/sessions/{session_id}")
