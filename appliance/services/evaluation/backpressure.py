"""Backpressure: refuse new work, with a time to come back, instead of an unbounded wait.

When every worker is busy and the queue already holds `threshold` or more, a new
submission gets 503 with Retry-After (the surface's error shape) and nothing is stored.
Retry-After is how long the queue ahead takes to drain at the pace runs end now: the
waiting runs times the mean run time (a moving average of the ends the queue reports),
shared by the workers.
"""

from __future__ import annotations

import math

from appliance.core.errors import Overloaded
from appliance.core.evaluations import Evaluation

# Weight of the newest run in the moving mean; the first guess before any run ended.
MEAN_WEIGHT = 0.1
FIRST_MEAN_SECONDS = 1.0
RETRY_AFTER_MAX_SECONDS = 120


def retry_after_seconds(queued: int, workers: int, mean_run_seconds: float) -> int:
    """Whole seconds until the queue ahead has drained, 1 to RETRY_AFTER_MAX_SECONDS."""
    drain = queued * max(mean_run_seconds, 0.0) / max(workers, 1)
    return max(1, min(RETRY_AFTER_MAX_SECONDS, math.ceil(drain)))


class Backpressure:
    def __init__(self, threshold: int, workers: int) -> None:
        self.threshold = threshold  # 0: never refuse (the queue's max length still holds)
        self.workers = workers
        self.mean_run_seconds = FIRST_MEAN_SECONDS

    def finished(self, evaluation: Evaluation) -> None:
        """The queue's finish listener: the run's time from start to end joins the mean."""
        if evaluation.started_at is None or evaluation.completed_at is None:
            return  # killed while queued: no run to count
        seconds = (evaluation.completed_at - evaluation.started_at).total_seconds()
        if seconds >= 0:
            self.mean_run_seconds += MEAN_WEIGHT * (seconds - self.mean_run_seconds)

    def check(self, queued: int, running: int) -> None:
        """Raise Overloaded when every worker is busy and `queued` is at the threshold."""
        if self.threshold <= 0 or running < self.workers or queued < self.threshold:
            return
        wait = retry_after_seconds(queued, self.workers, self.mean_run_seconds)
        raise Overloaded(
            f"every worker is busy and {queued} runs are waiting (threshold {self.threshold}); retry in {wait} s",
            wait,
        )
