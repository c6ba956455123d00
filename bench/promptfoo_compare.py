"""Benchmark: the overhead per case of a suite against a model server that answers at
once, in the appliance (POST /api/v1/suite) beside the same suite in promptfoo, against
the same server, in the same run.

    .venv/bin/python bench/promptfoo_compare.py [--cases 1000] [--concurrency 4] [--repeats 3]

The model server is the tests' scripted server (tests/llm_servers.py) in a process of
its own on 127.0.0.1: it speaks OpenAI's chat completions and answers every request at
once with the same greeting. Both sides send the same prompt with each case's one
variable, the same assertion (`icontains` "hello", which every answer passes), at the
same concurrency (the appliance's suite concurrency and its per-server limit; promptfoo's
`-j`), with their caches off (the request's `cache: false`; promptfoo's `--no-cache`),
and both keep their results (the appliance its transcripts in SQLite, promptfoo its eval
in its own SQLite database and the output file).

Start-up is excluded by difference: each side runs a 1-case suite and an N-case suite,
`--repeats` times, interleaved; the time per case is (median of N - median of 1) / (N - 1),
which takes away promptfoo's process start and config loading and the request's fixed
cost in the appliance (whose server is started once, before any timing). promptfoo's
own `evaluationDurationMs` (its eval loop, start-up not included) is printed beside it.

promptfoo is the version pinned by bench/promptfoo/package-lock.json, installed with
`npm ci` into bench/promptfoo/node_modules the first time the bench runs (npm's
registry is the only host it reaches; the runs themselves reach only 127.0.0.1:
telemetry, update checks and sharing are turned off).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support import start_server  # noqa: E402

PROMPTFOO_DIR = ROOT / "bench" / "promptfoo"
PROMPTFOO = PROMPTFOO_DIR / "node_modules" / ".bin" / "promptfoo"
TEMPLATE = "Reply to request {n}."
EXPECTED = "hello"
MODEL_SERVER = (
    "import sys, time\n"
    f"sys.path.insert(0, {str(ROOT)!r})\n"
    "from tests.llm_servers import ScriptedModelServer\n"
    "server = ScriptedModelServer().start()\n"
    "print(server.port, flush=True)\n"
    "sys.stdin.read()\n"  # until the bench closes it
    "server.stop()\n"
)
QUIET_NODE = {
    "PROMPTFOO_DISABLE_TELEMETRY": "1",
    "PROMPTFOO_DISABLE_UPDATE": "1",
    "PROMPTFOO_DISABLE_SHARING": "1",
    "PROMPTFOO_DISABLE_REMOTE_GENERATION": "true",
    "PROMPTFOO_CACHE_ENABLED": "false",
    "NO_COLOR": "1",
}


def install_promptfoo() -> str:
    if not PROMPTFOO.exists():
        print("installing promptfoo with npm ci (bench/promptfoo/package-lock.json) ...", flush=True)
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=PROMPTFOO_DIR, check=True)
    done = subprocess.run([str(PROMPTFOO), "--version"], capture_output=True, text=True, check=True, env=node_env())
    return done.stdout.strip().splitlines()[-1]


def node_env(config_dir: Path | None = None) -> dict[str, str]:
    env = {**os.environ, **QUIET_NODE}
    if config_dir is not None:
        env["PROMPTFOO_CONFIG_DIR"] = str(config_dir)
    return env


# --- the model server -----------------------------------------------------------------------


class ModelServer:
    def __enter__(self) -> ModelServer:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", MODEL_SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        assert self.proc.stdout is not None
        self.port = int(self.proc.stdout.readline())
        self.url = f"http://127.0.0.1:{self.port}/v1"
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


# --- the appliance --------------------------------------------------------------------------


def appliance_config(model_url: str, concurrency: int) -> str:
    return (
        "[[models]]\n"
        'id = "model_bench"\n'
        'name = "Bench"\n'
        'provider = "openai-compatible"\n'
        "[models.config]\n"
        f'base_url = "{model_url}"\n'
        'model = "bench-model"\n'
        f"max_concurrency = {concurrency}\n"
    )


def appliance_env(concurrency: int) -> dict[str, str]:
    limits = ("LLM", "AUTHENTICATED", "BATCH", "READ", "WRITE", "ANONYMOUS")
    return {
        **{f"APPLIANCE_RATE_LIMIT_{name}": "1000000" for name in limits},
        "APPLIANCE_WARM_POOL_MIN_IDLE": "0",
        "APPLIANCE_LLM_SUITE_CONCURRENCY": str(concurrency),
        "APPLIANCE_LLM_MAX_CONCURRENCY": str(concurrency),
        "APPLIANCE_MAX_BODY_BYTES": str(64 * 1024 * 1024),
    }


def make_suite(client: httpx.Client, name: str, cases: int) -> None:
    body = {
        "name": name,
        "prompt": "bench",
        "model": "model_bench",
        "evaluators": [{"type": "icontains", "expected": EXPECTED}],
        "cases": [{"id": f"c{i}", "input": {"n": i}} for i in range(cases)],
    }
    response = client.post("/api/v1/suites", json=body)
    assert response.status_code in (200, 201), response.text


def appliance_run(client: httpx.Client, suite: str, cases: int) -> float:
    started = time.perf_counter()
    response = client.post("/api/v1/suite", json={"suite": suite, "cache": False})
    elapsed = time.perf_counter() - started
    assert response.status_code == 200, response.text
    result = response.json()
    assert (result["total_cases"], result["passed_cases"], result["errors"]) == (cases, cases, 0), result
    return elapsed


# --- promptfoo ------------------------------------------------------------------------------


def promptfoo_config(folder: Path, model_url: str, cases: int) -> Path:
    config = {
        "description": f"bench, {cases} cases",
        "prompts": [TEMPLATE.replace("{n}", "{{n}}")],
        "providers": [{"id": "openai:chat:bench-model", "config": {"apiBaseUrl": model_url, "apiKey": "bench"}}],
        "defaultTest": {"assert": [{"type": "icontains", "value": EXPECTED}]},
        "tests": [{"vars": {"n": i}} for i in range(cases)],
    }
    path = folder / f"promptfooconfig-{cases}.json"
    path.write_text(json.dumps(config))
    return path


def promptfoo_run(config: Path, cases: int, concurrency: int, config_dir: Path) -> tuple[float, float]:
    """(wall seconds of the whole process, promptfoo's own evaluationDurationMs in seconds)"""
    output = config.with_suffix(".out.json")
    command = [str(PROMPTFOO), "eval", "-c", str(config), "--no-cache", "-j", str(concurrency)]
    command += ["--no-table", "--no-progress-bar", "-o", str(output)]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=node_env(config_dir), cwd=config.parent)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"promptfoo exited with {done.returncode}:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    stats = json.loads(output.read_text())["results"]["stats"]
    assert (stats["successes"], stats["failures"], stats["errors"]) == (cases, 0, 0), stats
    own = stats.get("evaluationDurationMs", stats.get("durationMs"))
    return elapsed, (own or 0) / 1000


# --- the comparison -------------------------------------------------------------------------


def per_case(small: list[float], large: list[float], cases: int) -> float:
    return (statistics.median(large) - statistics.median(small)) / (cases - 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=4, help="promptfoo's default -j is 4")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    version = install_promptfoo()
    node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
    print(f"promptfoo {version}, node {node}")
    print(f"{args.cases} cases, concurrency {args.concurrency}, caches off, {args.repeats} repeats\n", flush=True)

    timings: dict[str, list[float]] = {k: [] for k in ("app_1", "app_n", "pf_1", "pf_n", "pf_own_1", "pf_own_n")}
    with tempfile.TemporaryDirectory(prefix="bench-promptfoo-") as scratch, ModelServer() as model:
        folder = Path(scratch)
        data_dir, config_dir = folder / "appliance", folder / "promptfoo-home"
        data_dir.mkdir()
        (data_dir / "config.toml").write_text(appliance_config(model.url, args.concurrency))
        server = start_server(data_dir, env=appliance_env(args.concurrency))
        try:
            with httpx.Client(base_url=server.url, headers={"X-API-Key": server.admin_key}, timeout=600) as client:
                made = client.post(
                    "/api/v1/prompts", json={"name": "bench", "template": TEMPLATE.replace("{n}", "{{.n}}")}
                )
                assert made.status_code in (200, 201), made.text
                make_suite(client, "bench-1", 1)
                make_suite(client, "bench-n", args.cases)
                small, large = promptfoo_config(folder, model.url, 1), promptfoo_config(folder, model.url, args.cases)
                appliance_run(client, "bench-1", 1)  # warm: imports, the model's name, the connection pool
                promptfoo_run(small, 1, args.concurrency, config_dir)  # warm: promptfoo's database, the disk cache
                for repeat in range(args.repeats):
                    timings["app_1"].append(appliance_run(client, "bench-1", 1))
                    timings["app_n"].append(appliance_run(client, "bench-n", args.cases))
                    wall, own = promptfoo_run(small, 1, args.concurrency, config_dir)
                    timings["pf_1"].append(wall)
                    timings["pf_own_1"].append(own)
                    wall, own = promptfoo_run(large, args.cases, args.concurrency, config_dir)
                    timings["pf_n"].append(wall)
                    timings["pf_own_n"].append(own)
                    print(
                        f"repeat {repeat + 1}: appliance {timings['app_1'][-1]:.3f} s / {timings['app_n'][-1]:.3f} s; "
                        f"promptfoo {timings['pf_1'][-1]:.3f} s / {timings['pf_n'][-1]:.3f} s "
                        f"(its own eval {timings['pf_own_1'][-1]:.3f} s / {timings['pf_own_n'][-1]:.3f} s) "
                        f"for 1 / {args.cases} cases",
                        flush=True,
                    )
        finally:
            server.stop()

    app = per_case(timings["app_1"], timings["app_n"], args.cases)
    foo = per_case(timings["pf_1"], timings["pf_n"], args.cases)
    foo_own = statistics.median(timings["pf_own_n"]) / args.cases
    print()
    print(f"{'':44} {'appliance':>12} {'promptfoo':>12} {'ratio':>8}")
    print(
        f"{'median wall time, ' + str(args.cases) + ' cases':44} {statistics.median(timings['app_n']):>10.2f} s "
        f"{statistics.median(timings['pf_n']):>10.2f} s"
    )
    print(
        f"{'median wall time, 1 case':44} {statistics.median(timings['app_1']):>10.3f} s "
        f"{statistics.median(timings['pf_1']):>10.3f} s"
    )
    print(
        f"{'per case, start-up excluded (difference)':44} {app * 1000:>9.2f} ms {foo * 1000:>9.2f} ms {app / foo:>8.2f}"
    )
    print(
        f"{'per case, promptfoo eval loop (its own clock)':44} {'':>12} {foo_own * 1000:>9.2f} ms {app / foo_own:>8.2f}"
    )
    met = app <= foo / 2
    print(f"\ntarget: the appliance at most half of promptfoo's time per case: {'met' if met else 'NOT met'}")
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())
