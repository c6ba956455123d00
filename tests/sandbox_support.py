"""Fixtures and helpers for the persistent-sandbox tests: clients, cleanup, and reaching
into the sandbox's container the way a program running in it would (uid 65534).

A pytest plugin (tests/conftest.py names it in `pytest_plugins`): its fixtures are there
for every test by name, without an import. A module that defines a fixture of the same
name (several define their own `admin`) uses its own."""

from __future__ import annotations

import contextlib
import secrets
import sqlite3
from pathlib import Path

import pytest

from appliance.client import ApiError, ApplianceClient
from tests.support import start_server

PERSISTENT_LABEL = "appliance.persistent"
SANDBOX_LABEL = "appliance.sandbox"
EGRESS_LABEL = "appliance.egress"  # the egress proxies and internal networks of sandboxes


# Rate limits out of the way (the upload bucket's own test starts its own server), and no
# warm pool: these tests make persistent sandboxes, not evaluations.
SERVER_ENV = {
    "APPLIANCE_RATE_LIMIT_AUTHENTICATED": "100000",
    "APPLIANCE_RATE_LIMIT_UPLOAD": "100000",
    "APPLIANCE_RATE_LIMIT_ANONYMOUS": "100000",
    "APPLIANCE_WARM_POOL_MIN_IDLE": "0",
}


@pytest.fixture(scope="module")
def sandbox_server(runtime_images, tmp_path_factory, docker_client):
    """One appliance per test module; its sandboxes are removed at the end (they would
    otherwise outlive it, by design)."""
    proc = start_server(tmp_path_factory.mktemp("sandbox-server"), env=SERVER_ENV)
    yield proc
    proc.stop()
    remove_sandbox_containers(docker_client, proc.data_dir)


@pytest.fixture
def admin(sandbox_server):
    """An admin client of the module's sandbox server."""
    with ApplianceClient(sandbox_server.url, api_key=sandbox_server.admin_key) as client:
        yield client


@pytest.fixture
def sandboxes(admin):
    tracker = Sandboxes(admin)
    yield tracker
    tracker.cleanup()


class Sandboxes:
    """Creates sandboxes through a client and force-deletes them at teardown."""

    def __init__(self, client: ApplianceClient) -> None:
        self.client = client
        self.created: list[str] = []

    def create(self, runtime: str = "python", wait: bool = True, **kwargs):
        created = self.client.create_sandbox(runtime, **kwargs)
        self.created.append(created.sandbox_id)
        if wait:
            self.client.wait_for_sandbox(created.sandbox_id, timeout=90)
        return created

    def cleanup(self) -> None:
        for sandbox_id in self.created:
            with contextlib.suppress(ApiError):  # the test deleted it itself
                self.client.delete_sandbox(sandbox_id, force=True)


def user_client(
    server, admin: ApplianceClient, permissions=("sandbox_read", "sandbox_write"), owner: str | None = None
) -> ApplianceClient:
    """A client of a new key with its own owner (so lists hold only its sandboxes)."""
    owner = owner or f"owner-{secrets.token_hex(4)}"
    created = admin.create_api_key(owner, list(permissions), owner=owner)
    return ApplianceClient(server.url, api_key=created.api_key)


def container_of(docker_client, sandbox_id: str) -> str:
    items = docker_client.api.containers(all=True, filters={"label": f"{SANDBOX_LABEL}={sandbox_id}"})
    assert len(items) == 1, items
    return items[0]["Id"]


def sandbox_exec(
    docker_client, sandbox_id: str, command: str | list[str], *, detach: bool = False, user: str = "65534:65534"
) -> str:
    """Run a command in the sandbox as its own user, as code in the sandbox would."""
    if isinstance(command, str):
        command = ["sh", "-c", command]
    exec_id = docker_client.api.exec_create(
        container_of(docker_client, sandbox_id), command, user=user, workdir="/sandbox"
    )["Id"]
    output = docker_client.api.exec_start(exec_id, detach=detach)
    return "" if detach else output.decode(errors="replace")


def instance_id(data_dir: Path) -> str | None:
    db = data_dir / "appliance.db"
    if not db.exists():
        return None
    with sqlite3.connect(db) as conn:
        row = conn.execute("SELECT value FROM meta WHERE key = 'instance_id'").fetchone()
    return row[0] if row else None


def remove_sandbox_containers(docker_client, data_dir: Path) -> None:
    """Sandboxes outlive the appliance by design: tests remove what their servers left."""
    instance = instance_id(data_dir)
    if instance is None:
        return
    for label in (PERSISTENT_LABEL, EGRESS_LABEL):
        for item in docker_client.api.containers(all=True, filters={"label": f"{label}={instance}"}):
            docker_client.api.remove_container(item["Id"], force=True)
    for network in docker_client.api.networks(filters={"label": f"{EGRESS_LABEL}={instance}"}):
        docker_client.api.remove_network(network["Id"])
