"""llm-eval-api.md: evaluations, suites and their runs, prompts, and the health check.

result = client.evaluate("example", {"user_request": "Hello"}, [{"type": "contains", "expected": "hello"}])
run = client.run_suite("example-tests", trials=3, wait=False)
done = client.wait_for_suite_run(run.id, progress=lambda run: print(run.progress))
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from appliance.client.transport import Transport

V1 = "/api/v1"
FINISHED = ("completed", "failed")


def _without_none(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


class LlmEvalApi(Transport):
    def llm_health(self) -> Any:
        """GET /health of llm-eval-api.md ({"status": "ok"}); `health()` is the sandbox
        API's /api/health."""
        return self.call("GET", "/health")

    # --- evaluations and suites ---------------------------------------------------------------

    def evaluate(
        self,
        prompt: str,
        input: Mapping[str, Any] | None = None,
        evaluators: Sequence[Mapping[str, Any]] | None = None,
        **extra: Any,
    ) -> Any:
        """`extra`: model, version, parameters, turns, threshold, cache."""
        body = {"prompt": prompt, "input": dict(input or {}), "evaluators": list(evaluators or []), **extra}
        return self.call("POST", f"{V1}/evaluate", json=_without_none(body))

    def run_suite(
        self, suite: str, *, prompt: str | None = None, trials: int = 1, k: int = 1, wait: bool = True, **extra: Any
    ) -> Any:
        """The result (wait=True), or the running run (`id`, `status` "running")
        to follow with `suite_run` or `wait_for_suite_run`. `extra`: model, version,
        prompt_version, parameters, cases, cache."""
        body = {"suite": suite, "prompt": prompt, "trials": trials, "k": k, "wait": wait, **extra}
        return self.call("POST", f"{V1}/suite", json=_without_none(body))

    def suite_run(self, run_id: str, *, case_id: str | None = None, limit: int = 100, offset: int = 0) -> Any:
        """{run, transcripts, total_transcripts}."""
        params = _without_none({"case_id": case_id, "limit": limit, "offset": offset})
        return self.call("GET", f"{V1}/suite-runs/{run_id}", params=params)

    def suite_runs(self, *, limit: int = 50, offset: int = 0) -> Any:
        return self.call("GET", f"{V1}/suite-runs", params={"limit": limit, "offset": offset})

    def cancel_suite_run(self, run_id: str) -> Any:
        return self.call("DELETE", f"{V1}/suite-runs/{run_id}")

    def wait_for_suite_run(
        self, run_id: str, *, progress: Callable[[Any], None] | None = None, interval: float = 0.5
    ) -> Any:
        """Poll until the run ends; `progress(run)` after each look. The finished run."""
        while True:
            run = self.suite_run(run_id, limit=0)["run"]
            if progress is not None:
                progress(run)
            if run["status"] in FINISHED:
                return run
            time.sleep(interval)

    def optimize(
        self,
        prompt: str,
        *,
        iterations: int = 3,
        strategy: str = "iterative",
        timeout: float | None = None,
        **extra: Any,
    ) -> Any:
        """POST /api/v1/optimize: improve `prompt`'s template with a judge model, each
        candidate scored on a suite. Answers when done (`original_score`,
        `optimized_score`, `iterations`, `suggestions`, `optimized_template`, and every
        candidate with its suite run). `extra`: suite, version, suite_version, model,
        judge_model, candidates, trials, parameters, cases, cache. `timeout`: seconds to
        wait for the answer (default: the client's); every suite run it makes is
        followed meanwhile with `suite_runs`."""
        body = {"prompt": prompt, "iterations": iterations, "strategy": strategy, **extra}
        options: dict[str, Any] = {} if timeout is None else {"timeout": timeout}
        return self.call("POST", f"{V1}/optimize", json=_without_none(body), **options)

    # --- datasets and benchmarks ------------------------------------------------------------

    def import_dataset(self, name: str, *, items: Sequence[Mapping[str, Any]] | None = None, **extra: Any) -> Any:
        """POST /api/v1/datasets; `extra`: content, format, mapping, source, append."""
        body = {"name": name, "items": None if items is None else list(items), **extra}
        return self.call("POST", f"{V1}/datasets", json=_without_none(body))

    def run_benchmark(
        self,
        dataset: str,
        *,
        model: str | None = None,
        provider: str | None = None,
        sample_size: int | None = None,
        wait: bool = True,
        **extra: Any,
    ) -> Any:
        """POST /api/v1/benchmark: the result (wait=True), or the running one (its `id`,
        `experiment_id`, `run_id`). `extra`: seed, parameters, concurrency, cache."""
        body = {
            "dataset": dataset,
            "model": model,
            "provider": provider,
            "sample_size": sample_size,
            "wait": wait,
            **extra,
        }
        return self.call("POST", f"{V1}/benchmark", json=_without_none(body))

    def benchmark_results(self, *, dataset: str | None = None, limit: int = 50, offset: int = 0) -> Any:
        """GET /api/v1/benchmark: {results, total}, newest first, running ones too."""
        params = _without_none({"dataset": dataset, "limit": limit, "offset": offset})
        return self.call("GET", f"{V1}/benchmark", params=params)

    def benchmark_result(self, result_id: int) -> Any:
        return self.call("GET", f"{V1}/benchmark/{result_id}")

    def benchmark_items(self, result_id: int, *, limit: int = 100, offset: int = 0) -> Any:
        """{result, items, total_items}: each item's transcript."""
        return self.call("GET", f"{V1}/benchmark/{result_id}/items", params={"limit": limit, "offset": offset})

    def leaderboard(self, dataset: str, *, top: int = 20) -> Any:
        return self.call("GET", f"{V1}/leaderboard", params={"dataset": dataset, "top": top})

    def list_datasets(self) -> Any:
        return self.call("GET", f"{V1}/datasets")["datasets"]

    def get_dataset(self, name: str, *, limit: int = 100, offset: int = 0) -> Any:
        return self.call("GET", f"{V1}/datasets/{name}", params={"limit": limit, "offset": offset})

    def delete_dataset(self, name: str) -> Any:
        return self.call("DELETE", f"{V1}/datasets/{name}")

    # --- the library -----------------------------------------------------------------------

    def list_prompts(self) -> Any:
        return self.call("GET", f"{V1}/prompts")["prompts"]

    def get_prompt(self, name: str, version: str | None = None) -> Any:
        return self.call("GET", f"{V1}/prompts/{name}", params=_without_none({"version": version}))

    def save_prompt(self, prompt: Mapping[str, Any]) -> Any:
        """Create the prompt, or a new version of it (the next one unless `version` is given)."""
        return self.call("POST", f"{V1}/prompts", json=dict(prompt))

    def list_suites(self) -> Any:
        return self.call("GET", f"{V1}/suites")["suites"]

    def get_suite(self, name: str, version: str | None = None) -> Any:
        return self.call("GET", f"{V1}/suites/{name}", params=_without_none({"version": version}))

    def save_suite(self, suite: Mapping[str, Any]) -> Any:
        return self.call("POST", f"{V1}/suites", json=dict(suite))

    def import_promptfoo(self, name: str, config: str) -> Any:
        """`config`: the text of a promptfooconfig.yaml (or .json)."""
        return self.call("POST", f"{V1}/suites/import", json={"name": name, "config": config})
