"""The evaluation queue of the platform API: submit, follow, kill, list (docs/api.md)."""

from __future__ import annotations

from typing import Any

from appliance.client.transport import Record, Transport


class EvaluationsApi(Transport):
    def submit_evaluation(self, language: str, code: str, **options: Any) -> Record:
        """POST /api/eval; options are the documented fields (timeout, engine, stdin,
        files, metadata…). Returns {eval_id, status, message, queue_position}."""
        return self.call("POST", "/api/eval", json={"language": language, "code": code, **options})

    def submit_batch(self, evaluations: list[dict[str, Any]]) -> Record:
        return self.call("POST", "/api/eval-batch", json={"evaluations": evaluations})

    def evaluation_status(self, eval_id: str) -> Record:
        return self.call("GET", f"/api/eval-status/{eval_id}")

    def evaluation_logs(self, eval_id: str) -> Record:
        return self.call("GET", f"/api/eval/{eval_id}/logs")

    def kill_evaluation(self, eval_id: str) -> Record:
        return self.call("POST", f"/api/eval/{eval_id}/kill")

    def list_evaluations(self, *, status: str | None = None, limit: int = 100, offset: int = 0) -> Record:
        """GET /api/evaluations: {evaluations, count, limit, offset, has_more}, newest first."""
        params: dict[str, Any] = {"limit": limit, "offset": offset}
        if status:
            params["status"] = status
        return self.call("GET", "/api/evaluations", params=params)

    def queue_status(self) -> Record:
        return self.call("GET", "/api/queue-status")

    def platform_status(self) -> Record:
        return self.call("GET", "/api/status")
