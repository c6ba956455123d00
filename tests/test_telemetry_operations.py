"""Telemetry around the API: the appliance's own events for each evaluation, retention
enforced by the scheduler, backups with and without the events, restore, and the
`appliance telemetry export` command."""

from __future__ import annotations

import csv
import tarfile
from datetime import UTC, datetime, timedelta

import pytest

from tests.experiments_support import start_v1_server
from tests.support import eventually, run_eval
from tests.test_auth import cli

EVENTS = "/api/v1/telemetry/events"


def event(name: str, n: int, moment: datetime, experiment: str = "exp_ops") -> dict:
    return {
        "event_name": ["ops", name],
        "measurements": {"n": n},
        "metadata": {"experiment_id": experiment},
        "timestamp": moment.isoformat(),
    }


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    env = {
        "APPLIANCE_TELEMETRY_RETENTION_DAYS": "2",
        "APPLIANCE_TELEMETRY_RETENTION_CHECK_SECONDS": "1",
        "APPLIANCE_RATE_LIMIT_TELEMETRY_EVENTS": "100000",
        "APPLIANCE_TELEMETRY_EXPORT_SYNC_MAX_ROWS": "50",
    }
    process = start_v1_server(tmp_path_factory.mktemp("telemetry-ops"), env=env)
    yield process
    process.stop()


def test_each_evaluation_is_an_event(server, runtime_images):
    with server.admin() as admin:
        finished = run_eval(admin, "print('telemetry')")
        assert finished["status"] == "completed"

        def recorded():
            found = admin.get(EVENTS, params={"filter[event_name]": "appliance.evaluation.completed"}).json()["data"]
            mine = [e for e in found if e["metadata"]["eval_id"] == finished["eval_id"]]
            assert mine, found
            return mine[0]

        found = eventually(recorded, timeout=15)
        assert found["metadata"]["status"] == "completed" and found["metadata"]["language"] == "python"
        assert found["measurements"]["execution_time_ms"] >= 0
        series = admin.get(
            "/api/v1/telemetry/aggregate",
            params={"agg": "count", "interval": "1d", "filter[event_name]": "appliance.evaluation.*"},
        ).json()["data"]
        assert sum(p["value"] for p in series) >= 1


def test_retention_removes_old_events(server):
    now = datetime.now(UTC)
    old = [event("old", n, now - timedelta(days=3, minutes=n)) for n in range(5)]
    recent = [event("recent", n, now - timedelta(hours=1, minutes=n)) for n in range(5)]
    with server.admin() as admin:
        response = admin.post(EVENTS, json={"events": old + recent})
        assert response.json()["data"]["accepted"] == 10, response.text

        def only_recent():
            names = {
                ".".join(e["event_name"])
                for e in admin.get(EVENTS, params={"filter[event_name]": "ops.*"}).json()["data"]
            }
            assert names == {"ops.recent"}, names
            return True

        eventually(only_recent, timeout=20)
        counts = admin.get(
            "/api/v1/telemetry/aggregate", params={"agg": "count", "interval": "1d", "filter[event_name]": "ops.*"}
        ).json()["data"]
        assert sum(p["value"] for p in counts) == 5  # the rollups lost the old events too


def test_backup_carries_the_events_unless_told_not_to(server, tmp_path):
    with server.admin() as admin:
        admin.post(EVENTS, json={"events": [event("backup", 1, datetime.now(UTC))]})
    full, lean = tmp_path / "full.tar.gz", tmp_path / "lean.tar.gz"
    done = cli(server.data_dir, "backup", str(full))
    assert done.returncode == 0, done.stderr
    done = cli(server.data_dir, "backup", "--no-telemetry", str(lean))
    assert done.returncode == 0, done.stderr
    with tarfile.open(full) as tar:
        assert "telemetry.db" in tar.getnames()
    with tarfile.open(lean) as tar:
        assert "telemetry.db" not in tar.getnames() and "appliance.db" in tar.getnames()

    restored = tmp_path / "restored"
    restored.mkdir()
    done = cli(restored, "restore", str(full))
    assert done.returncode == 0, done.stderr
    again = start_v1_server(restored)
    try:
        with again.admin() as admin:
            found = admin.get(EVENTS, params={"filter[event_name]": "ops.backup"}).json()["meta"]["total"]
            assert found == 1
    finally:
        again.stop()


def test_the_export_command_writes_a_file(server, tmp_path):
    now = datetime.now(UTC)
    with server.admin() as admin:
        batch = [event("cli", n, now - timedelta(seconds=n), experiment="exp_cli") for n in range(120)]
        assert admin.post(EVENTS, json={"events": batch}).json()["data"]["accepted"] == 120
    target = tmp_path / "events.csv"
    key_file = tmp_path / "key"
    key_file.write_text(server.admin_key)
    done = cli(
        server.data_dir,
        "telemetry",
        "export",
        str(target),
        "--url",
        server.url,
        "--api-key-file",
        str(key_file),
        "--experiment",
        "exp_cli",
        "--fields",
        "timestamp,measurements.n",
    )
    assert done.returncode == 0, done.stderr
    assert "wrote 120 events" in done.stderr and "100%" in done.stderr  # 120 > 50: through an export job
    rows = list(csv.reader(target.open()))
    assert rows[0] == ["timestamp", "measurements.n"]
    assert sorted(int(r[1]) for r in rows[1:]) == list(range(120))
