"""`appliance benchmark DATASET` and `appliance leaderboard DATASET`: benchmarks on a
running appliance, through its API. A benchmark runs as an experiment: the command starts
it without waiting, shows a progress bar from its run's progress, prints the result, and
on Ctrl-C cancels the experiment on the server."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from appliance.cli.llm import EXIT_FAILED, _client, _connection, _guarded
from appliance.cli.progress import ThrottledBar, cancelled, end_bar

POLL_SECONDS = 0.5


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser) -> None:
    bench = sub.add_parser("benchmark", parents=[common], help="benchmark a model on a dataset, with a progress bar")
    _connection(bench)
    bench.add_argument("dataset")
    bench.add_argument("--model", help="a model registry entry (default: the default model)")
    bench.add_argument("--provider", help="the model's provider, checked")
    bench.add_argument("--sample-size", type=int, help="how many items (default: all)")
    bench.add_argument("--seed", type=int, help="which items a sample draws (default 0)")
    bench.add_argument("--concurrency", type=int, help="model calls at once (default 8)")
    bench.add_argument("--no-cache", action="store_true")
    bench.add_argument("--json", action="store_true", help="print the API's JSON answer")
    bench.set_defaults(func=_guarded(cmd_benchmark))
    board = sub.add_parser("leaderboard", parents=[common], help="ranked benchmark results on a dataset")
    _connection(board)
    board.add_argument("dataset")
    board.add_argument("--top", type=int, default=20)
    board.add_argument("--json", action="store_true")
    board.set_defaults(func=_guarded(cmd_leaderboard))


def cmd_benchmark(args: argparse.Namespace) -> int:
    with _client(args) as client:
        started = client.run_benchmark(
            args.dataset,
            model=args.model,
            provider=args.provider,
            sample_size=args.sample_size,
            wait=False,
            seed=args.seed,
            concurrency=args.concurrency,
            cache=False if args.no_cache else None,
        )
        try:
            result = _follow(client, started)
        except KeyboardInterrupt:
            experiment_id = started["experiment_id"]
            return cancelled(f"experiment {experiment_id}", lambda: client.cancel_experiment(experiment_id))
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        failed = f", {result['errors']} failed calls" if result["errors"] else ""
        print(
            f"{result['model']} ({result['provider']}) on {result['dataset']}: {result['correct']}/{result['total']} "
            f"right, accuracy {result['accuracy']:.3f}; {result['total_time_ms']} ms, {result['total_tokens']} tokens"
            f"{failed}"
        )
        print(f"result {result['id']}, experiment {result['experiment_id']}")
    if result["status"] != "completed":
        print(f"appliance: benchmark {result['status']}: {result.get('error')}", file=sys.stderr)
        return EXIT_FAILED
    return 0


def _follow(client: Any, started: Any) -> Any:
    total, bar = started["total"], ThrottledBar()
    while True:
        result = client.benchmark_result(started["id"])
        run = client.get_run(started["run_id"])
        done = total if result["status"] != "running" else round(float(run.get("progress") or 0) * total)
        bar.show("answers", done, total, final=done == total)
        if result["status"] != "running":
            end_bar()
            return result
        time.sleep(POLL_SECONDS)


def cmd_leaderboard(args: argparse.Namespace) -> int:
    with _client(args) as client:
        board = client.leaderboard(args.dataset, top=args.top)
    if args.json:
        print(json.dumps(board, indent=2))
        return 0
    print(f"{board['dataset']}: {board['interval_method']}; {board['comparison_method']}")
    print(f"{'RANK':>4}  {'MODEL':<40} {'PROVIDER':<18} {'ACCURACY':>8}  {'95% CI':<15} {'N':>6}  VS NEXT")
    for e in board["entries"]:
        low, high = e["confidence_interval"]
        vs = e.get("vs_next")
        versus = "" if vs is None else f"p={vs['p_value']:.3g}{'' if vs['significant'] else ' (not significant)'}"
        print(
            f"{e['rank']:>4}  {e['model'][:40]:<40} {e['provider'][:18]:<18} {e['accuracy']:>8.3f}  "
            f"[{low:.3f}, {high:.3f}] {e['total']:>6}  {versus}"
        )
    return 0
