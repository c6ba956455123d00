"""The evaluation queue of the platform API: submit, follow, kill, list (docs/api.md)."""

from __future__ import annotations

import time
from typing import Any

from appliance.client.transport import Record, Transport

# The statuses an evaluation ends in.
FINAL_STATUSES = ("completed", "failed", "timeout")


class EvaluationsApi(Transport):
    def submit_evaluation(self, language: str, code: str, **options: Any) -> Record:
        """POST /api/eval; options are the documented fields (timeout, engine, stdin,
        files, metadata…). Returns {eval_id, status, message, queue_position}."""
        return self.call("POST", "/api/eval", json={"language": language, "code": code, **options})

    def submit_batch(self, evaluations: list[dict[str, Any]]) -> Record:
        return self.call("POST", "/api/eval-batch", json={"evaluations": evaluations})

    def evaluation_status(self, eval_id: str, *, wait: float | None = None) -> Record:
        """GET /api/eval-status/{id}; with `wait` (seconds, at most the server's
        status_wait_max_seconds, 60 by default) the answer comes when the evaluation ends,
        or when the wait is over (then still queued or running)."""
        params = {} if wait is None else {"wait": wait}
        return self.call("GET", f"/api/eval-status/{eval_id}", params=params)

    def wait_for_evaluation(self, eval_id: str, timeout: float = 300.0, *, step: float = 30.0) -> Record:
        """The evaluation's final status body: one held request per `step` seconds, no
        polling loop. Raises TimeoutError if it has not ended within `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            body = self.evaluation_status(eval_id, wait=max(0.0, min(step, left)))
            if body["status"] in FINAL_STATUSES:
                return body
            if left <= 0:
                raise TimeoutError(f"{eval_id} is still {body['status']} after {timeout:g} s")

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
