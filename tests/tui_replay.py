"""A replay of the appliance's REST API for the TUI snapshot tests.

Snapshots must not change between runs, so they cannot be taken against a live appliance
(CPU figures, uptime, ids and times change). This server speaks the real wire protocol
over HTTP on 127.0.0.1 and answers each request with the response a real server gave to
exactly that request, captured once by tests/tui_capture.py and stored, one file per
request, in tests/tui_fixtures/. A request with no stored response gets a 404 in the
sandbox error shape and is listed in `missing`, so a test can say which one to capture.
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit

FIXTURE_DIR = Path(__file__).with_name("tui_fixtures")
IDS_FILE = "ids.json"  # the constant ids of the captured state, by name (not a response)
# Query parameters the TUI fills with the current time (the metrics screen's telemetry
# window): matched whatever their value, so a response captured once answers every run.
MOMENT_PARAMS = {"filter[after]", "filter[before]"}
ANY_MOMENT = "<moment>"
# The files of the LLM evaluation screen's requests: tests/tui_llm_capture.py writes them,
# apart from tests/tui_capture.py (which needs no model server, as that one needs no sandbox).
LLM_FIXTURE_PREFIXES = (
    "api_v1_suites",
    "api_v1_suite_runs",
    "api_v1_benchmark",
    "api_v1_datasets",
    "api_v1_leaderboard",
    "api_v1_experiments_exp_",
)


def request_key(method: str, target: str) -> str:
    """`GET /api/alerts?status=active`: the path and its query in a fixed order, so a
    client that orders its parameters differently still finds the response."""
    parts = urlsplit(target)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    query = urlencode(sorted((name, ANY_MOMENT if name in MOMENT_PARAMS else value) for name, value in pairs))
    return f"{method.upper()} {parts.path}" + (f"?{query}" if query else "")


def fixture_name(key: str) -> str:
    """The file a request's response is stored in: `GET /api/alerts?status=active` ->
    `api_alerts_status_active.json`."""
    return re.sub(r"[^A-Za-z0-9]+", "_", key.split(" ", 1)[1]).strip("_") + ".json"


def llm_fixture(file_name: str) -> bool:
    return file_name.startswith(LLM_FIXTURE_PREFIXES)


def load_ids(fixture_dir: Path = FIXTURE_DIR) -> dict[str, str]:
    """The captured state's ids by name: eval_primes, sandbox, alert_cpu_usage, ..."""
    return json.loads((fixture_dir / IDS_FILE).read_text())


class ReplayServer:
    """`with ReplayServer() as replay:` serves the fixtures at `replay.url` until the end
    of the block; `served` and `missing` are the request keys answered and not."""

    def __init__(self, fixture_dir: Path = FIXTURE_DIR) -> None:
        self.responses: dict[str, tuple[int, bytes]] = {}
        for path in sorted(fixture_dir.glob("*.json")):
            if path.name == IDS_FILE:
                continue
            fixture = json.loads(path.read_text())
            body = json.dumps(fixture["body"], ensure_ascii=False).encode()
            self.responses[fixture["request"]] = (fixture["status"], body)
        self.served: list[str] = []
        self.missing: list[str] = []
        self._lock = threading.Lock()
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._http.daemon_threads = True
        self._http.replay = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._http.serve_forever, name="tui-replay", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._http.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> ReplayServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.shutdown()
        self._http.server_close()
        self._thread.join(5)

    def answer(self, method: str, target: str) -> tuple[int, bytes]:
        key = request_key(method, target)
        with self._lock:
            if key in self.responses:
                self.served.append(key)
                return self.responses[key]
            self.missing.append(key)
        error = {
            "code": "NOT_FOUND",
            "details": {},
            "request_id": "req_replay",
            "message": f"no recorded response for {key}: add it to tests/tui_capture.py REQUESTS "
            "and run .venv/bin/python -m tests.tui_capture",
        }
        return 404, json.dumps({"error": error}).encode()

    def count(self, key: str) -> int:
        """How often `key` (e.g. `GET /api/alerts`) was answered so far."""
        with self._lock:
            return self.served.count(request_key(*key.split(" ", 1)))


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as httpx expects of the real server

    def _reply(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        status, body = self.server.replay.answer(self.command, self.path)  # type: ignore[attr-defined]
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _reply

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        """Quiet: the test reports what matters (missing responses)."""
