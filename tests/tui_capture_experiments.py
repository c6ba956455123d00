"""Capture the Experiments screen's replay fixtures (tests/tui_fixtures/api_v1_*.json)
from a real server, beside what tests/tui_capture.py captures (which runs this at its
end, since it clears the directory):

    .venv/bin/python -m tests.tui_capture_experiments

It starts `appliance serve` on loopback (real Docker), runs a 2x2 `code` experiment to
its end (metrics over three steps, checkpoints, log lines) and leaves a pending and a
cancelled one beside it, then GETs what the screen asks for with the newest (the
finished one) selected and its first run selected. Ids become constants (recorded in
ids.json as experiment_*, run_first) and times move to the fixtures' day, keeping their
order, so the snapshots stay the same between runs.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
import time
from pathlib import Path

from appliance.client import ApplianceClient
from appliance.tui.screens import experiments as screen
from tests.experiments_support import start_v1_server
from tests.tui_replay import FIXTURE_DIR, IDS_FILE, fixture_name, request_key

TRAINING = r"""
import json, os
hp = json.load(open("hyperparameters.json"))
os.makedirs("checkpoints", exist_ok=True)
for step in range(3):
    loss = round(hp["lr"] * 10 / (step + 1) + 0.1 * hp["layers"], 4)
    open(f"checkpoints/step_{step}.pt", "w").write("w" * (1000 * (step + 1)))
    print(json.dumps({"metrics": {"loss": loss, "accuracy": round(1 - loss / 4, 4)}, "step": step,
                      "checkpoint": f"step_{step}.pt"}))
    print(f"step {step}: loss {loss}")
print("training done")
"""
ID = re.compile(r"\b(exp|run|ckpt)_[0-9a-f]{12}\b")
TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?Z")
FIXED_DAY = "2025-01-15T09:3"  # times become 09:30:00 onward, a second apart in order
VARYING = {"duration_seconds", "duration", "eta_seconds", "sha256", "execution_time"}


def screen_requests(ids: dict[str, str]) -> list[str]:
    e, r = ids["experiment_grid"], ids["run_first"]
    size = screen.LIST_SIZE
    return [
        f"/api/v1/experiments?per_page={size}&sort=-created_at",
        f"/api/v1/experiments/{e}",
        f"/api/v1/experiments/{e}/runs?per_page={size}&sort=position",
        f"/api/v1/runs/{r}",
        f"/api/v1/runs/{r}/metrics",
        f"/api/v1/runs/{r}/logs?tail={screen.LOG_TAIL}",
    ]


def make_state(client: ApplianceClient) -> dict[str, str]:
    code = {"type": "code", "language": "python"}
    pending = client.create_experiment("lr sweep (next)", {**code, "code": TRAINING, "grid": {"lr": [0.3]}})
    cancelled = client.create_experiment("abandoned", {**code, "code": "print(1)", "grid": {"x": [1]}})
    client.cancel_experiment(cancelled["id"])
    grid = {"lr": [0.01, 0.1], "layers": [2, 4]}
    made = client.create_experiment(
        "lr x layers",
        {**code, "code": TRAINING, "grid": grid, "objective": {"metric": "loss", "direction": "minimize"}},
        tags=["sweep"],
    )
    client.start_experiment(made["id"])
    deadline = time.monotonic() + 180
    while client.get_experiment(made["id"])["status"] != "completed":
        assert time.monotonic() < deadline, "the experiment did not complete"
        time.sleep(0.5)
    first = client.list_runs(experiment_id=made["id"], sort="position")["data"][0]
    return {
        "experiment_grid": made["id"],
        "experiment_pending": pending["id"],
        "experiment_cancelled": cancelled["id"],
        "run_first": first["id"],
    }


class Constants:
    def __init__(self) -> None:
        self.ids: dict[str, str] = {}
        self.times: dict[str, str] = {}

    def id(self, match: re.Match[str]) -> str:
        real = match.group(0)
        if real not in self.ids:
            prefix = match.group(1)
            n = sum(1 for v in self.ids.values() if v.startswith(prefix + "_"))
            self.ids[real] = f"{prefix}_{n + 1:012x}"
        return self.ids[real]

    def learn_times(self, texts: list[str]) -> None:
        for i, real in enumerate(sorted({t for text in texts for t in TIME.findall(text)})):
            self.times[real] = f"{FIXED_DAY}{i // 60}:{i % 60:02d}.000Z"

    def text(self, text: str) -> str:
        return TIME.sub(lambda m: self.times[m.group(0)], ID.sub(self.id, text))


def pinned(body: object) -> object:
    """Figures that differ between runs (durations, an ETA, hashes) made constant."""
    if isinstance(body, dict):
        return {k: (_pin(k, v) if k in VARYING else pinned(v)) for k, v in body.items()}
    if isinstance(body, list):
        return [pinned(v) for v in body]
    return body


def _pin(key: str, value: object) -> object:
    if value is None:
        return None
    return "0" * 64 if key == "sha256" else 1.5


def save(responses: list[tuple[str, int, str]], ids: dict[str, str]) -> None:
    constants = Constants()
    constants.learn_times([text for _, _, text in responses])
    for old in FIXTURE_DIR.glob("api_v1_*.json"):
        old.unlink()
    for target, status, text in responses:
        key = request_key("GET", constants.text(target))
        body = pinned(json.loads(constants.text(text)))
        fixture = {"request": key, "status": status, "body": body}
        (FIXTURE_DIR / fixture_name(key)).write_text(json.dumps(fixture, indent=1, ensure_ascii=False) + "\n")
    named = json.loads((FIXTURE_DIR / IDS_FILE).read_text())
    named.update({name: constants.ids[real] for name, real in ids.items()})
    (FIXTURE_DIR / IDS_FILE).write_text(json.dumps(named, indent=1, sort_keys=True) + "\n")


def main() -> None:
    data_dir = Path(tempfile.mkdtemp(prefix="appliance-tui-capture-experiments-"))
    server = start_v1_server(data_dir)
    try:
        with ApplianceClient(server.url, api_key=server.admin_key) as client:
            ids = make_state(client)
            responses = []
            for target in screen_requests(ids):
                response = client.http.get(target)
                responses.append((target, response.status_code, response.text))
        save(responses, ids)
        print(f"{len(responses)} experiments responses saved to {FIXTURE_DIR}")
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
