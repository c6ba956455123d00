"""Capture the replay fixtures of the TUI snapshot tests (tests/tui_fixtures/) from a real
server. Run it once, and again whenever the API's shapes or the screens' requests change:

    .venv/bin/python -m tests.tui_capture

It starts `appliance serve` on loopback (real Docker, real SQLite), makes the state the
screens show (evaluations with every outcome and one still running, sandboxes with files
and a snapshot, API keys, alerts active, acknowledged and resolved), GETs every request in
REQUESTS and stores each response as one file. Times are moved to a fixed day and ids to
constants, and the figures that differ on every run (CPU, memory, uptime, the values that
tripped the alerts) are pinned, so the snapshots never change between runs while the
shapes stay exactly what the real server sends."""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import re
import shutil
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from appliance.client import ApplianceClient
from appliance.config import Settings
from appliance.core.sizes import format_size
from appliance.tui.performance_series import TIME_RANGES
from appliance.tui.screens import alerts, evaluations, sandboxes, statistics
from tests import tui_capture_experiments
from tests.support import eventually, start_server, wait_for_status
from tests.tui_replay import FIXTURE_DIR, fixture_name, llm_fixture, request_key

# Thresholds of 0 held for 0 s: CPU, memory and disk alerts open at once.
TRIPPED_RULES = ("cpu_usage", "memory_usage", "disk_usage")
SERVER_ENV = {
    "APPLIANCE_RATE_LIMIT_AUTHENTICATED": "100000",  # waiting for an evaluation polls
    "APPLIANCE_ALERT_EVALUATION_SECONDS": "0.3",
    "APPLIANCE_METRICS_SAMPLE_SECONDS": "0.5",
    **{
        f"APPLIANCE_ALERT_{rule.split('_')[0].upper()}_{what}": "0"
        for rule in TRIPPED_RULES
        for what in ("PERCENT", "FOR_SECONDS")
    },
}

EVALUATIONS = (
    "eval_killed",
    "eval_hello",
    "eval_failed",
    "eval_timeout",
    "eval_node",
    "eval_bash",
    "eval_primes",
    "eval_running",
)

# Every GET the screens make ({name}: an id made by `make_state`), with the parameters the
# screens send: their own constants, so a change there is a change here.
REQUESTS = [
    # dashboard
    "/api/status",
    "/api/alerts",
    "/api/metrics/performance?duration=1h",
    # evaluations and the evaluation detail
    *(
        f"/api/evaluations?limit={evaluations.LIST_LIMIT}&offset=0" + (f"&status={s}" if s else "")
        for s in evaluations.STATUS_CHOICES
    ),
    "/api/queue-status",
    *(f"/api/eval-status/{{{e}}}" for e in EVALUATIONS),
    *(f"/api/eval/{{{e}}}/logs" for e in EVALUATIONS),
    # alerts
    *(
        f"/api/alerts?limit={alerts.LIST_LIMIT}" + (f"&status={s}" if s else "")
        for s in dict.fromkeys(s for group in alerts.STATUS_FILTERS.values() for s in group)
    ),
    # metrics: each range in stretches (appliance/tui/performance_series.py)
    *(f"/api/metrics/performance?duration={r.duration}&points={r.stretches}" for r in TIME_RANGES),
    # sandboxes
    f"/api/sandboxes?limit={sandboxes.LIST_LIMIT}",
    "/api/templates",
    *(f"/api/sandboxes/{{{s}}}{tail}" for s in ("sandbox", "sandbox_node") for tail in ("", "/snapshots")),
    # API keys
    "/auth/api-keys",
    # statistics
    f"/api/v1/statistical-results?sort=-created_at&per_page={statistics.PAGE}",
]

BASE_TIME = datetime(2025, 1, 15, 9, 30, tzinfo=UTC)  # the second the capture began becomes this
UPTIME_SECONDS = 273_612.4
PINNED_ALERT_VALUES = {"cpu_usage": 94.2, "memory_usage": 91.7, "disk_usage": 92.4}
SANDBOX_MEMORY_USED = 11_534_336
ISO_Z = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?Z")
EVAL_ID = re.compile(r"eval_(\d{8}_\d{6})_[0-9a-f]{6}")
OTHER_ID = re.compile(r"\b(sb|snap|key|alert|req|batch|stat)_[0-9a-f_]{6,}\b")


# --- making the state ----------------------------------------------------------------------


def make_state(client: ApplianceClient) -> dict[str, str]:
    ids: dict[str, str] = {"key_admin": "key_" + client.api_key.split("_")[1]}  # ak_<hex>_<secret>

    def submit(name: str, code: str, language: str = "python", timeout: float = 30, wait: str = "done") -> None:
        eval_id = client.submit_evaluation(language, code, timeout=timeout).eval_id
        until = ("running",) if wait == "running" else ("completed", "failed", "timeout")
        wait_for_status(client.http, eval_id, 120, until=until)
        ids[name] = eval_id

    submit("eval_killed", "import time\nprint('step 1', flush=True)\ntime.sleep(600)", timeout=300, wait="running")
    client.kill_evaluation(ids["eval_killed"])
    wait_for_status(client.http, ids["eval_killed"], 60)
    submit("eval_hello", "print('Hello, World!')")
    submit(
        "eval_failed",
        "import sys\nprint('loading data')\nprint('no such file: data.csv', file=sys.stderr)\nsys.exit(3)",
    )
    submit("eval_timeout", "while True:\n    pass", timeout=1)
    submit("eval_node", "console.log([1, 2, 3].map(x => x * 2).join(' '))", language="javascript")
    submit("eval_bash", 'for i in 1 2 3; do echo "line $i"; done', language="bash")
    submit(
        "eval_primes",
        "def primes(n):\n    found = []\n    for k in range(2, n):\n"
        "        if all(k % p for p in found):\n            found.append(k)\n    return found\n\n"
        "for p in primes(30):\n    print(p, 'is prime')",
    )
    submit(
        "eval_running",
        "import time\nfor epoch in range(3):\n"
        "    print(f'epoch {epoch}: loss {1 / (epoch + 1):.3f}', flush=True)\ntime.sleep(600)",
        timeout=300,
        wait="running",
    )
    eventually(  # its lines reach the log
        lambda: "epoch 2" in client.http.get(f"/api/eval/{ids['eval_running']}/logs").json()["output"],
        message="the running evaluation's lines in its log",
    )

    sandbox = client.create_sandbox("python", name="scratch")
    ids["sandbox"] = sandbox.sandbox_id
    client.wait_for_sandbox(sandbox.sandbox_id)
    client.upload_file(
        sandbox.sandbox_id, b"import csv\nprint(sum(1 for _ in csv.reader(open('data.csv'))))\n", name="main.py"
    )
    client.upload_file(sandbox.sandbox_id, b"name,score\nada,91\ngrace,88\n", name="data.csv")
    snapshot = client.create_snapshot(sandbox.sandbox_id, "before-cleanup", description="the raw data")
    client.wait_for_snapshot(sandbox.sandbox_id, snapshot.snapshot_id)
    ids["snapshot"] = snapshot.snapshot_id
    node = client.create_sandbox("javascript", name="node-play")
    ids["sandbox_node"] = node.sandbox_id
    client.wait_for_sandbox(node.sandbox_id)

    ids["key_ci"] = client.create_api_key("ci-runner", ["execute", "read"]).key_id
    ids["key_ops"] = client.create_api_key(
        "ops-dashboard", ["read", "sandbox_read"], expires_at=datetime.now(UTC) + timedelta(days=90)
    ).key_id
    ids["key_old"] = client.create_api_key("old-laptop", ["execute"]).key_id
    client.revoke_api_key(ids["key_old"])

    make_statistics(client)

    alerts = {a.rule: a.alert_id for a in _wait_for_alerts(client)}
    client.acknowledge_alert(alerts["disk_usage"], "Cleaning up old snapshots")
    client.acknowledge_alert(alerts["memory_usage"], "Looking into it")
    client.resolve_alert(alerts["memory_usage"], "Restarted the batch job")
    ids.update({f"alert_{rule}": alert_id for rule, alert_id in alerts.items()})
    _wait_for_alerts(client)  # the memory rule still holds: a new alert opens
    return ids


def make_statistics(client: ApplianceClient) -> None:
    """Stored test results for the Statistics screen: two models on the same items
    (McNemar), two prompts' scores (Welch) and three settings (ANOVA, with pairwise)."""
    first = [1] * 62 + [0] * 18 + [1] * 9 + [0] * 11
    second = [1] * 62 + [1] * 18 + [0] * 9 + [0] * 11
    client.run_statistical_test(
        "mcnemar", data={"gpt-4o": first, "llama-3-70b": second}, metric="correct", groups=["gpt-4o", "llama-3-70b"]
    )
    client.run_statistical_test(
        "welch_t_test",
        data={"prompt_v2": [0.91, 0.88, 0.93, 0.90, 0.92, 0.89], "prompt_v1": [0.86, 0.84, 0.88, 0.85, 0.87, 0.83]},
        metric="f1",
    )
    client.run_statistical_test(
        "one_way_anova",
        data={"t0.0": [71, 74, 73, 70, 72], "t0.7": [70, 72, 69, 71, 73], "t1.2": [64, 66, 63, 65, 67]},
        metric="score",
    )


def _wait_for_alerts(client: ApplianceClient) -> list:
    def tripped() -> list | None:
        open_alerts = client.list_alerts()
        return open_alerts if set(TRIPPED_RULES) <= {a.rule for a in open_alerts} else None

    return eventually(tripped, interval=0.2, message=lambda: f"alerts {TRIPPED_RULES} open: {client.list_alerts()}")


def clean_up(client: ApplianceClient, ids: dict[str, str]) -> None:
    # Best effort: the server stops next anyway.
    with contextlib.suppress(Exception):
        client.kill_evaluation(ids["eval_running"])
    for name in ("sandbox", "sandbox_node"):
        with contextlib.suppress(Exception):
            client.delete_sandbox(ids[name], force=True)


# --- normalising ---------------------------------------------------------------------------


class Normaliser:
    """Moves every time by one offset (the second the capture began becomes BASE_TIME),
    so times keep their real order and gaps, and replaces ids by constants."""

    def __init__(self, began: datetime, ids: dict[str, str]) -> None:
        self.offset = BASE_TIME - began.replace(microsecond=0)
        self.ids: dict[str, str] = {}
        for name, real in ids.items():  # the ids the test knows by name come first
            self._id(real, name)

    def text(self, text: str) -> str:
        text = ISO_Z.sub(self._time, text)
        text = EVAL_ID.sub(lambda m: self._id(m.group(0)), text)
        return OTHER_ID.sub(lambda m: self._id(m.group(0)), text)

    def _time(self, match: re.Match) -> str:
        moved = _parse(match) + self.offset
        digits = len(match.group(2) or "")
        fraction = f".{moved.strftime('%f')[:digits]}" if digits else ""
        return moved.strftime("%Y-%m-%dT%H:%M:%S") + fraction + "Z"

    def _id(self, real: str, name: str | None = None) -> str:
        if real not in self.ids:
            match = EVAL_ID.fullmatch(real)
            if match:  # keep the id's creation second in step with its moved created_at
                stamp = datetime.strptime(match.group(1), "%Y%m%d_%H%M%S").replace(tzinfo=UTC)
                tail = hashlib.sha256((name or real[-6:]).encode()).hexdigest()[:6]
                self.ids[real] = f"eval_{(stamp + self.offset):%Y%m%d_%H%M%S}_{tail}"
            else:
                prefix, _, rest = real.partition("_")
                tail = hashlib.sha256((name or f"{prefix}{len(self.ids)}").encode()).hexdigest()[: len(rest)]
                self.ids[real] = f"{prefix}_{tail}"
        return self.ids[real]


def _parse(match: re.Match) -> datetime:
    moment = datetime.strptime(match.group(1), "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    return moment + timedelta(microseconds=int((match.group(2) or "0").ljust(6, "0")[:6]))


def pin_figures(path: str, body: Any) -> Any:
    """Replace the figures that differ on every run by fixed, plausible ones."""
    defaults = Settings()
    if path == "/api/status":
        body["uptime_seconds"] = UPTIME_SECONDS
        for pool in body.get("sandbox_pool", []):
            pool.update(idle=pool["target"], creating=0)
    elif path == "/api/health":
        body["uptime"] = int(UPTIME_SECONDS)
    elif path == "/api/metrics/performance":
        window = _seconds(body["duration"])
        body.update(performance_profile(window, defaults.metrics_sample_seconds, body.get("series")))
        body["container_metrics"].update(total_containers=131, avg_startup_time=0.184)
    elif path.startswith("/api/alerts") and path != "/api/alerts/rules":
        for alert in body.get("alerts", [body]):
            _pin_alert(alert, defaults)
    elif path == "/api/alerts/rules":
        for rule in body["rules"]:
            if rule["rule"] in TRIPPED_RULES:
                rule.update(
                    threshold=_threshold(rule["rule"], defaults), for_seconds=_for_seconds(rule["rule"], defaults)
                )
    elif re.fullmatch(r"/api/sandboxes/[^/]+", path):
        body["resources"].update(
            memory_used=format_size(SANDBOX_MEMORY_USED), memory_used_bytes=SANDBOX_MEMORY_USED, cpu_used=0.4
        )
    return body


def performance_profile(window: float, sample_seconds: float, series: list[dict] | None) -> dict:
    """The figures of a window ending now on an appliance up for days: a fixed curve per
    figure, sampled every `sample_seconds`, summarised the way the server rounds them
    (CPU and memory to 0.1 points, run times to a millisecond), and `series` (the
    captured stretches, oldest first) filled in the same way. A fresh server has only
    seconds of samples, which would leave the metrics screen's plots empty."""
    ago = [k * sample_seconds for k in range(int(window // sample_seconds))][::-1]  # oldest first
    figures = {
        "cpu": [max(1.0, 23.4 + 12 * math.sin(t / 1700) + 5 * math.sin(t / 230)) for t in ago],
        "memory": [41.3 + 4 * math.sin(t / 5000) - 2 * math.sin(t / 800) for t in ago],
        "containers": [14 + round(2 * math.sin(t / 2600)) for t in ago],
        "queue": [max(0, round(4 * math.sin(t / 700))) for t in ago],
        "run_time": [0.35 + 0.15 * math.sin(t / 3000) for t in ago],
    }
    ended, carried = [], 0.0  # evaluations that ended per sample: 0.15 to 0.45 of one on average
    for t in ago:
        before, carried = carried, carried + 0.3 + 0.15 * math.sin(t / 2100)
        ended.append(math.floor(carried) - math.floor(before))
    failed = [n if round(t / sample_seconds) % 17 == 0 else 0 for t, n in zip(ago, ended, strict=True)]
    body = {"samples": len(ago), **_summary(range(len(ago)), figures, ended, failed)}
    if series:
        per_stretch = len(ago) / len(series)
        for i, stretch in enumerate(series):
            part = range(round(i * per_stretch), round((i + 1) * per_stretch))
            summary = _summary(part, figures, ended, failed)
            stretch.update(
                samples=len(part),
                cpu_average=summary["cpu_usage"]["average"],
                cpu_peak=summary["cpu_usage"]["peak"],
                memory_average=summary["memory_usage"]["average"],
                containers_average=round(sum(figures["containers"][k] for k in part) / len(part), 1),
                queue_depth_peak=max(figures["queue"][k] for k in part),
                executions=summary["execution_metrics"]["total_executions"],
                avg_execution_time=summary["execution_metrics"]["avg_execution_time"],
                success_rate=summary["execution_metrics"]["success_rate"],
            )
        body["series"] = series
    return body


def _summary(part: range, figures: dict[str, list[float]], ended: list[int], failed: list[int]) -> dict:
    cpu, memory = [figures["cpu"][k] for k in part], [figures["memory"][k] for k in part]
    total = sum(ended[k] for k in part)
    run_time = sum(ended[k] * figures["run_time"][k] for k in part)
    return {
        "cpu_usage": {
            "current": round(cpu[-1], 1),
            "average": round(sum(cpu) / len(cpu), 1),
            "peak": round(max(cpu), 1),
        },
        "memory_usage": {
            "current": round(memory[-1], 1),
            "average": round(sum(memory) / len(memory), 1),
            "peak": round(max(memory), 1),
        },
        "execution_metrics": {
            "total_executions": total,
            "avg_execution_time": round(run_time / total, 3) if total else None,
            "success_rate": round(100.0 * (total - sum(failed[k] for k in part)) / total, 1) if total else None,
        },
    }


def _seconds(duration: str) -> float:
    number, unit = int(duration[:-1]), duration[-1]
    return number * {"s": 1, "m": 60, "h": 3600, "d": 86400}[unit]


def _pin_alert(alert: dict, defaults: Settings) -> None:
    rule = alert["rule"]
    if rule not in PINNED_ALERT_VALUES:
        return
    value, threshold = PINNED_ALERT_VALUES[rule], _threshold(rule, defaults)
    figures = iter((f"{value:g}", f"{threshold:g}"))
    alert["message"] = re.sub(r"\d+(?:\.\d+)?(?=%)", lambda _: next(figures, "0"), alert["message"])
    alert.update(value=value, threshold=threshold)


def _threshold(rule: str, s: Settings) -> float:
    return {
        "cpu_usage": s.alert_cpu_percent,
        "memory_usage": s.alert_memory_percent,
        "disk_usage": s.alert_disk_percent,
    }[rule]


def _for_seconds(rule: str, s: Settings) -> float:
    return {
        "cpu_usage": s.alert_cpu_for_seconds,
        "memory_usage": s.alert_memory_for_seconds,
        "disk_usage": s.alert_disk_for_seconds,
    }[rule]


# --- capturing -----------------------------------------------------------------------------


def capture(client: ApplianceClient, ids: dict[str, str]) -> list[tuple[str, int, str]]:
    """(request, status, body text) of every request, with the real ids filled in."""
    responses = []
    for template in REQUESTS:
        target = template.format(**ids)
        response = client.http.get(target)
        responses.append((target, response.status_code, response.text))
    return responses


def save(responses: list[tuple[str, int, str]], ids: dict[str, str], began: datetime) -> None:
    normaliser = Normaliser(began, ids)
    for old in FIXTURE_DIR.glob("*.json"):
        if not llm_fixture(old.name):  # tests/tui_llm_capture.py captures them on its own
            old.unlink()
    names: set[str] = set()
    for target, status, text in responses:
        key = request_key("GET", normaliser.text(target))
        assert fixture_name(key) not in names, f"two requests share the file {fixture_name(key)}"
        names.add(fixture_name(key))
        body = json.loads(normaliser.text(text))
        path = key.split(" ", 1)[1].split("?", 1)[0]
        if status < 400:
            body = pin_figures(path, body)
        fixture = {"request": key, "status": status, "body": body}
        (FIXTURE_DIR / fixture_name(key)).write_text(json.dumps(fixture, indent=1, ensure_ascii=False) + "\n")
    save_telemetry_window()
    named = {name: normaliser.ids[real] for name, real in ids.items()}
    (FIXTURE_DIR / "ids.json").write_text(json.dumps(named, indent=1, sort_keys=True) + "\n")


def save_telemetry_window() -> None:
    """The metrics screen's telemetry series asks for the hour up to now: its window's
    moments match any value in the replay (tui_replay.MOMENT_PARAMS), and its answers are
    written here rather than captured, since the points of a captured answer would fall
    outside a later run's window. No events in the hour; two names to choose from."""
    window = "filter%5Bafter%5D=a&filter%5Bbefore%5D=b"
    meta = {"agg": "count", "metric": None, "group_by": None, "exact": True}
    answers = {
        f"/api/v1/telemetry/aggregate?agg=count&points=31&{window}": {"data": [], "meta": {**meta, "interval": "2m"}},
        f"/api/v1/telemetry/aggregate?agg=count&group_by=event_name&{window}": {
            "data": [
                {"timestamp": "2026-12-03T11:00:00.000Z", "value": 287, "count": 287, "group": name}
                for name in ("appliance.evaluation.completed", "appliance.execution.completed")
            ],
            "meta": {**meta, "interval": None, "group_by": "event_name"},
        },
    }
    for target, body in answers.items():
        key = request_key("GET", target)
        fixture = {"request": key, "status": 200, "body": body}
        (FIXTURE_DIR / fixture_name(key)).write_text(json.dumps(fixture, indent=1) + "\n")


def main() -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="appliance-tui-capture-"))
    began = datetime.now(UTC)
    server = start_server(data_dir, env=SERVER_ENV)
    ids: dict[str, str] = {}
    try:
        with ApplianceClient(server.url, api_key=server.admin_key) as client:
            try:
                ids = make_state(client)
                responses = capture(client, ids)
            finally:
                clean_up(client, ids)
        FIXTURE_DIR.mkdir(exist_ok=True)
        save(responses, ids, began)
        print(f"{len(responses)} responses saved to {FIXTURE_DIR}")
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
    # The Experiments screen's, from a server of the experiments API of their own (save
    # above cleared the directory, theirs included).
    tui_capture_experiments.main()


if __name__ == "__main__":
    main()
