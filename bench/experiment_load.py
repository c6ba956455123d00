"""Benchmark: hello-world latency of interactive executions while a large experiment runs,
beside the same figure with the appliance idle, in the same run on the same engine.

    .venv/bin/python bench/experiment_load.py [--runs 1000] [--samples 30] [--workers 4] [--max-parallel 8]

An `Appliance` is built in this process on a fresh data dir (real SQLite, real Docker);
latency is a synchronous execution (the service behind POST /api/execute) from submit to
its final state. The experiment is of type `code`, one tiny run per point of a `list`;
its runs are jobs of the same queue, behind interactive work and on at most
`experiment_workers` workers (default workers - 1). The issue's target: the p50 during
the experiment within 2 times the idle p50. The experiment is cancelled once the samples
are taken; everything is bounded and stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from appliance.app import Appliance  # noqa: E402
from appliance.config import load_settings  # noqa: E402
from appliance.core.experiments import RunStatus  # noqa: E402
from appliance.core.identity import LOCAL_OPERATOR  # noqa: E402
from appliance.services.evaluation.execution_options import ExecuteRequest  # noqa: E402
from appliance.services.experiments.experiments import ExperimentCreate  # noqa: E402
from bench.eval_latency import percentile  # noqa: E402

HELLO = "print('Hello, World!')"
RUN = 'import json\nprint(json.dumps({"metrics": {"x": json.load(open("hyperparameters.json"))["i"]}}))\n'


async def latencies(appliance: Appliance, samples: int) -> list[float]:
    found = []
    for _ in range(samples):
        started = time.perf_counter()
        result = await appliance.executions.execute(LOCAL_OPERATOR, ExecuteRequest(language="python", code=HELLO))
        found.append(time.perf_counter() - started)
        if result.output != "Hello, World!\n":
            raise SystemExit(f"hello world went wrong: {result.status} {result.output!r} {result.error!r}")
        await asyncio.sleep(0.05)
    return found


def show(label: str, values: list[float]) -> float:
    p50 = percentile(values, 50)
    print(f"  {label:<28} p50 {p50 * 1000:7.1f} ms   p90 {percentile(values, 90) * 1000:7.1f} ms   n={len(values)}")
    return p50


async def main(args: argparse.Namespace) -> None:
    data = Path(tempfile.mkdtemp(prefix="bench-experiment-")) / "data"
    settings = load_settings(
        {
            "data_dir": str(data),
            "workers": args.workers,
            "engines": ["docker"],
            "batch_lane_engines": [],
            "experiment_max_parallel": max(64, args.max_parallel),
        },
        environ={},
    )
    appliance = Appliance(settings)
    await appliance.start()
    try:
        await latencies(appliance, 3)  # the warm lane fills
        print(f"hello world, {args.workers} workers (runs may hold {appliance.queue.job_workers}):")
        idle = show("idle", await latencies(appliance, args.samples))
        experiment = await appliance.experiments.create(
            LOCAL_OPERATOR,
            ExperimentCreate(
                name="load",
                config={
                    "type": "code",
                    "code": RUN,
                    "max_parallel": args.max_parallel,
                    "list": [{"i": i} for i in range(args.runs)],
                },
            ),
        )
        began = time.perf_counter()
        await appliance.experiments.start(LOCAL_OPERATOR, experiment.id)
        await asyncio.sleep(2)  # runs under way
        busy = show(f"during a {args.runs}-run experiment", await latencies(appliance, args.samples))
        elapsed = time.perf_counter() - began
        details = await appliance.experiments.details(LOCAL_OPERATOR, experiment.id)
        done = details.results_summary.completed_runs
        print(f"  ratio {busy / idle:.2f} (target: at most 2)")
        print(f"  meanwhile {done} runs completed in {elapsed:.1f} s ({done / elapsed:.1f} runs/s)")
        failed = [r.id for r in details.runs if r.status is RunStatus.FAILED]
        if failed:
            print(f"  {len(failed)} runs failed, e.g. {failed[:3]}")
        await appliance.experiments.cancel(LOCAL_OPERATOR, experiment.id)
    finally:
        await appliance.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--max-parallel", type=int, default=8)
    asyncio.run(main(parser.parse_args()))
