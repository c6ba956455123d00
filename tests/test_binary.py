"""Smoke test of the built binary, dist/appliance (packaging/build.sh, appliance.spec).

What a frozen build can lose without any unit test noticing: a lazily imported module
(Textual's widgets, uvicorn's protocols), a data file (migrations, the TUI's stylesheet,
Swagger UI's assets, the batch server's modules read as text), package metadata read at run time.
So the binary itself is run: `--version`; `serve` on loopback until /api/health is
healthy; an evaluation and a batch end to end on real Docker; /docs with its assets
served locally; the shipped demo datasets; statistical tests (scipy and numpy, imported
on first use); an experiment watched on the Phoenix socket, telemetry, and a benchmark
against a scripted model server on the leaderboard; `tui` in tmux showing the
dashboard; SIGTERM ending `serve` with status 0 and the unpacked files gone.

The binary is built first when it is missing or older than the sources (a few minutes
from nothing: the build venv is installed from packaging/requirements.lock).
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from websockets.sync.client import connect as websocket_connect

from appliance import __version__
from tests.llm_servers import ScriptedModelServer
from tests.llm_support import models_config
from tests.support import ROOT, eventually, free_port, wait_for_status
from tests.tmux_support import TmuxSession

# The build inside the first test's setup may take minutes on a fresh clone.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]

BINARY = ROOT / "dist" / "appliance"
BUILD_SCRIPT = ROOT / "packaging" / "build.sh"
# What the binary is made of: a change to any of them makes it stale.
SOURCES = [
    ROOT / "appliance",
    ROOT / "pyproject.toml",
    ROOT / "appliance.spec",
    *(ROOT / "packaging" / name for name in ("build.sh", "requirements.lock", "entry.py", "rthook_environment.py")),
]
SERVER_ENV = {
    "APPLIANCE_RATE_LIMIT_ANONYMOUS": "100000",
    "APPLIANCE_RATE_LIMIT_AUTHENTICATED": "100000",
    "PYTHONUNBUFFERED": "1",
}


def newest_source_mtime() -> float:
    newest = 0.0
    for source in SOURCES:
        paths = source.rglob("*") if source.is_dir() else [source]
        for path in paths:
            if "__pycache__" in path.parts or not path.is_file():
                continue
            newest = max(newest, path.stat().st_mtime)
    return newest


@pytest.fixture(scope="session")
def binary() -> Path:
    """dist/appliance, built now if missing or stale (one build at a time, by a lock)."""
    (ROOT / "build").mkdir(exist_ok=True)
    with open(ROOT / "build" / ".binary-build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not BINARY.exists() or BINARY.stat().st_mtime < newest_source_mtime():
            started = time.monotonic()
            result = subprocess.run([str(BUILD_SCRIPT)], cwd=ROOT, capture_output=True, text=True, timeout=1500)
            took = time.monotonic() - started
            if result.returncode != 0:
                pytest.fail(f"packaging/build.sh failed after {took:.0f} s:\n{result.stderr[-4000:]}", pytrace=False)
            print(f"\nbuilt {BINARY} in {took:.0f} s")
    return BINARY


class BinaryServer:
    def __init__(self, proc: subprocess.Popen, url: str, data_dir: Path, unpack_dir: Path, log: Path) -> None:
        self.proc, self.url, self.data_dir, self.unpack_dir, self.log = proc, url, data_dir, unpack_dir, log

    @property
    def admin_key(self) -> str:
        return (self.data_dir / "admin.key").read_text().strip()

    def admin(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"X-API-Key": self.admin_key}, timeout=30)

    def terminate(self, timeout: float = 30) -> int:
        """SIGTERM, then the exit status once the server has shut down."""
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def assert_stopped_cleanly(self, status: int) -> None:
        """Graceful shutdown after SIGTERM. uvicorn re-raises the signal once it has shut
        down (so does `python -m appliance serve`), and the bootloader passes the child's
        death on: the status is 0 or "terminated by SIGTERM", which systemd counts as a
        clean stop. Anything else (a crash, a timeout) fails."""
        log = self.log.read_text()
        assert status in (0, -signal.SIGTERM), f"exit status {status}:\n{log}"
        assert "Application shutdown complete" in log and "Traceback" not in log, log


def wait_healthy(server: BinaryServer) -> dict:
    body: dict = {}

    def healthy() -> dict | None:
        nonlocal body
        if server.proc.poll() is not None:
            pytest.fail(f"serve exited with {server.proc.returncode}:\n{server.log.read_text()}", pytrace=False)
        try:
            response = httpx.get(server.url + "/api/health", timeout=5)
            body = response.json()
        except (httpx.HTTPError, ValueError):
            return None
        return body if response.status_code == 200 and body["status"] == "healthy" else None

    return eventually(
        healthy, interval=0.05, message=lambda: f"/api/health healthy (last: {body}):\n{server.log.read_text()}"
    )


@contextmanager
def serving(binary: Path, tmp_path: Path) -> Iterator[BinaryServer]:
    """`dist/appliance serve` on a free loopback port, unpacking itself under tmp_path
    (TMPDIR, as the systemd unit sets it), healthy before the block starts."""
    data_dir, unpack_dir = tmp_path / "data", tmp_path / "unpack"
    unpack_dir.mkdir()
    port = free_port()
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [str(binary), "serve", "--data-dir", str(data_dir), "--host", "127.0.0.1", "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
            env={**os.environ, **SERVER_ENV, "TMPDIR": str(unpack_dir)},
            start_new_session=True,
        )
    server = BinaryServer(proc, f"http://127.0.0.1:{port}", data_dir, unpack_dir, log)
    try:
        wait_healthy(server)
        yield server
    finally:
        stop(proc)


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM, which the bootloader passes on to the server it runs; SIGKILL to the whole
    process group if that does not end it (a SIGKILL to the bootloader alone would leave
    the server running as an orphan)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def test_version(binary):
    result = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"appliance {__version__}"


def test_serve_is_healthy_and_stops_cleanly_on_sigterm(binary, tmp_path):
    with serving(binary, tmp_path) as server:
        health = httpx.get(server.url + "/api/health", timeout=30).json()
        assert health["version"] == __version__
        assert {c["name"]: c["status"] for c in health["components"]} == {
            "database": "healthy",
            "container_manager": "healthy",
            "scheduler": "healthy",
            "disk": "healthy",
        }
        # It unpacked itself where TMPDIR points, not in /tmp.
        assert [p.name[:4] for p in server.unpack_dir.iterdir()] == ["_MEI"]
        server.assert_stopped_cleanly(server.terminate())
    assert list(server.unpack_dir.iterdir()) == [], "the unpacked files outlived the process"


def test_an_evaluation_and_a_batch_run_end_to_end(binary, runtime_images, tmp_path):
    with serving(binary, tmp_path) as server, server.admin() as api:
        response = api.post("/api/eval", json={"language": "python", "code": "print(6 * 7)"})
        assert response.status_code == 200, response.text
        done = wait_for_status(api, response.json()["eval_id"])
        assert (done["status"], done["output"], done["exit_code"]) == ("completed", "42\n", 0), done

        # A batch takes the batch lane, whose in-sandbox server is bundled as source text.
        response = api.post(
            "/api/eval-batch",
            json={"evaluations": [{"language": "python", "code": f"print('item', {n})"} for n in range(3)]},
        )
        assert response.status_code == 200, response.text
        for n, item in enumerate(response.json()["evaluations"]):
            done = wait_for_status(api, item["eval_id"])
            assert (done["status"], done["output"]) == ("completed", f"item {n}\n"), done
        server.assert_stopped_cleanly(server.terminate())


def test_docs_serve_swagger_ui_from_the_binary(binary, tmp_path):
    with serving(binary, tmp_path) as server, httpx.Client(base_url=server.url, timeout=30) as web:
        page = web.get("/docs")
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        assets = ["/docs/assets/swagger-ui-bundle.js", "/docs/assets/swagger-ui.css"]
        for asset in assets:
            assert asset in page.text
            response = web.get(asset)
            assert response.status_code == 200, asset
            assert len(response.content) > 50_000, asset  # the real asset, not an error page
        assert "http://" not in page.text and "https://" not in page.text  # no CDN
        schema = web.get("/api/openapi.json")
        assert schema.status_code == 200 and "/api/eval" in schema.json()["paths"]
        assert "\nopenapi: 3." in "\n" + web.get("/api/openapi.yaml").text  # PyYAML is in the bundle


def test_statistical_tests_run_in_the_binary(binary, tmp_path):
    """scipy and numpy are imported on a test's first use, inside the bundle: what a
    lazily imported module or a damaged shared library (stripped OpenBLAS) would break."""
    data = {"model_a": [1, 1, 0, 1, 1, 0, 1, 1, 1, 0, 1, 1], "model_b": [0, 1, 0, 0, 1, 0, 0, 1, 0, 1, 0, 1]}
    with serving(binary, tmp_path) as server, server.admin() as api:
        for test in ("welch_t_test", "mann_whitney_u", "one_way_anova", "mcnemar", "fisher_exact", "paired_bootstrap"):
            response = api.post("/api/v1/statistical-results", json={"test": {"test_type": test, "data": data}})
            assert response.status_code == 201, f"{test}: {response.text}\n{server.log.read_text()}"
            assert 0 <= response.json()["data"]["p_value"] <= 1
        server.assert_stopped_cleanly(server.terminate())


def test_the_demo_datasets_ship_in_the_binary(binary, tmp_path):
    """The demo datasets are data files of the package (services/llm/shipped/datasets)."""
    with serving(binary, tmp_path) as server, server.admin() as api:
        response = api.get("/api/v1/datasets")
        assert response.status_code == 200, response.text
        counts = {d["name"]: d["item_count"] for d in response.json()["datasets"]}
        assert counts == {"demo_arithmetic": 20, "demo_code": 3, "demo_multiple_choice": 16}, counts
        server.assert_stopped_cleanly(server.terminate())


EXPERIMENT_PROGRAM = """
import json
hp = json.load(open("hyperparameters.json"))
print(json.dumps({"metrics": {"score": hp["x"] * 2}}))
"""


def test_the_experiments_and_llm_eval_surfaces_in_the_binary(binary, runtime_images, tmp_path):
    """The surfaces added after the first binary, each touched once from the binary: an
    experiment of type `code` run to completion and watched on the Phoenix socket,
    telemetry ingested and aggregated, and a benchmark (an experiment of type
    `benchmark`) against a scripted model server on loopback, on the leaderboard."""
    models = ScriptedModelServer().start()
    try:
        (tmp_path / "data").mkdir(mode=0o700)
        (tmp_path / "data" / "config.toml").write_text(models_config(models.url))
        with serving(binary, tmp_path) as server, server.admin() as api:
            config = {"type": "code", "language": "python", "code": EXPERIMENT_PROGRAM, "grid": {"x": [1, 2]}}
            created = api.post("/api/v1/experiments", json={"experiment": {"name": "in the binary", "config": config}})
            assert created.status_code == 201, created.text
            experiment_id = created.json()["data"]["id"]
            socket = server.url.replace("http://", "ws://") + f"/socket/websocket?vsn=2.0.0&token={server.admin_key}"
            with websocket_connect(socket, open_timeout=30) as ws:
                ws.send(json.dumps(["1", "1", f"experiment:{experiment_id}", "phx_join", {}]))
                assert json.loads(ws.recv(timeout=30))[3:] == ["phx_reply", {"status": "ok", "response": {}}]
                assert api.post(f"/api/v1/experiments/{experiment_id}/start").status_code == 200
                pushed = set()
                while "run_completed" not in pushed:
                    pushed.add(json.loads(ws.recv(timeout=120))[3])

            def finished() -> dict | None:
                data = api.get(f"/api/v1/experiments/{experiment_id}").json()["data"]
                return data if data["status"] == "completed" else None

            eventually(finished, timeout=120, message=lambda: server.log.read_text()[-3000:])
            runs = api.get(f"/api/v1/experiments/{experiment_id}/runs").json()["data"]
            assert sorted(r["metrics"]["score"] for r in runs) == [2, 4]

            event = {"event_name": ["binary", "check"], "measurements": {"ms": 5}, "metadata": {"k": "v"}}
            ingested = api.post("/api/v1/telemetry/events", json={"events": [event, event]})
            assert ingested.status_code == 202 and ingested.json()["data"]["accepted"] == 2, ingested.text

            def counted() -> list | None:
                params = {"metric": "ms", "agg": "sum", "interval": "1h", "filter[event_name]": "binary.check"}
                answer = api.get("/api/v1/telemetry/aggregate", params=params)
                assert answer.status_code == 200, answer.text
                return answer.json()["data"] or None  # ingest is written by a batch behind the 202

            assert [bucket["value"] for bucket in eventually(counted, timeout=60)] == [10]

            benchmark = api.post(
                "/api/v1/benchmark",
                json={"dataset": "demo_multiple_choice", "model": "model_chat", "sample_size": 4},
                timeout=300,
            )
            assert benchmark.status_code == 200, benchmark.text
            result = benchmark.json()
            assert result["experiment_id"].startswith("exp_") and 0 <= result["accuracy"] <= 1
            board = api.get("/api/v1/leaderboard", params={"dataset": "demo_multiple_choice"}).json()
            assert [entry["id"] for entry in board["entries"]] == [result["id"]], board
            server.assert_stopped_cleanly(server.terminate())
    finally:
        models.stop()


def test_tui_under_tmux_shows_the_dashboard(binary, tmp_path):
    with serving(binary, tmp_path) as server:
        key_file = tmp_path / "operator.key"
        key_file.write_text(server.admin_key + "\n")
        with TmuxSession(tmp_path) as tmux:
            tmux.start(
                [str(binary), "tui", "--url", server.url, "--api-key-file", str(key_file)],
                env={"TMPDIR": str(server.unpack_dir)},
            )
            screen = tmux.wait_for(lambda s: all(n in s for n in ("Dashboard", "Evaluations", "Quit")))
            assert "Dashboard" in screen.splitlines()[0]  # the header names the screen
            assert "Traceback" not in screen
            tmux.send_keys("q")
            assert tmux.exit_status() == 0
