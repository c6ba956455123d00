"""Permissions are the services' to check, so every way in (HTTP, WebSocket, CLI, TUI)
meets the same rule: called directly, a service refuses a key without the permission
before it changes anything. The HTTP side of the same refusals is in test_sandboxes.py,
test_sandbox_files.py, test_alerts.py, test_sandbox_auth.py and test_templates.py."""

from __future__ import annotations

import io

import pytest

from appliance.app import Appliance
from appliance.config import load_settings
from appliance.core.errors import Forbidden, Unauthorized
from appliance.core.identity import EXECUTE, LOCAL_OPERATOR, READ, SANDBOX_READ, Identity, anonymous
from appliance.services.sandboxes.requests import SandboxCreate, SandboxUpdate
from appliance.services.sandboxes.snapshots import SnapshotCreate, SnapshotRestore

READER = Identity(key_id="key_reader", name="reader", owner="reader", permissions=frozenset({SANDBOX_READ}))
EXECUTOR = Identity(key_id="key_exec", name="exec", owner="exec", permissions=frozenset({EXECUTE, READ}))


@pytest.fixture
async def appliance(tmp_path):
    """The services on a real (migrated) database, without the engine or the queue: a
    check that came after the work would reach the database or the engine."""
    built = Appliance(load_settings({"data_dir": str(tmp_path / "data")}, environ={}))
    built.settings.data_path.mkdir(parents=True)
    await built.db.open()
    built.auth.start()
    yield built
    await built.db.close()
    built.engine.close()


def needs_sandbox_write(a: Appliance):
    return [
        lambda: a.sandboxes.create(READER, SandboxCreate(runtime="python")),
        lambda: a.sandboxes.update(READER, "sbx_x", SandboxUpdate(environment={"A": "1"})),
        lambda: a.sandboxes.delete(READER, "sbx_x", force=True),
        lambda: a.sandbox_files.upload(READER, "sbx_x", [("a.txt", io.BytesIO(b"x"))], None),
        lambda: a.sandbox_files.delete(READER, "sbx_x", "a.txt"),
        lambda: a.snapshots.create(READER, "sbx_x", SnapshotCreate()),
        lambda: a.snapshots.restore(READER, "snap_x", SnapshotRestore()),
        lambda: a.snapshots.delete(READER, "snap_x"),
    ]


def needs_sandbox_read(a: Appliance):
    return [
        lambda: a.sandboxes.list(EXECUTOR, status=None, runtime=None, limit=10, offset=0),
        lambda: a.sandboxes.details(EXECUTOR, "sbx_x"),
        lambda: a.sandbox_files.listing(EXECUTOR, "sbx_x", None, False),
        lambda: a.sandbox_files.download(EXECUTOR, "sbx_x", "a.txt"),
        lambda: a.snapshots.list(EXECUTOR, "sbx_x"),
    ]


def needs_admin(a: Appliance):
    return [
        lambda: a.auth.create_key(READER, "sneaky", ["admin"]),
        lambda: a.auth.list_keys(READER),
        lambda: a.auth.revoke_key(READER, "key_000000000000"),
        lambda: a.alerts.acknowledge(READER, "alert_x", None),
        lambda: a.alerts.resolve(READER, "alert_x", None),
    ]


async def test_a_key_without_sandbox_write_is_refused_by_the_services(appliance):
    appliance.sandbox_files.may_upload(LOCAL_OPERATOR)  # an admin may
    with pytest.raises(Forbidden):
        appliance.sandbox_files.may_upload(READER)
    for call in needs_sandbox_write(appliance):
        with pytest.raises(Forbidden) as refused:
            await call()
        assert refused.value.status_code == 403
        assert refused.value.details == {"required_permission": "sandbox_write"}
    assert await appliance.sandboxes.store.count() == 0


async def test_a_key_without_sandbox_read_is_refused_by_the_services(appliance):
    for call in needs_sandbox_read(appliance):
        with pytest.raises(Forbidden) as refused:
            await call()
        assert refused.value.details == {"required_permission": "sandbox_read"}


async def test_operators_actions_need_admin_and_the_local_operator_has_it(appliance):
    for call in needs_admin(appliance):
        with pytest.raises(Forbidden) as refused:
            await call()
        assert refused.value.details == {"required_permission": "admin"}
    assert await appliance.auth.list_keys(LOCAL_OPERATOR) == []  # nothing was created
    created = await appliance.auth.create_key(LOCAL_OPERATOR, "ops", ["admin"])
    assert [k.key_id for k in await appliance.auth.list_keys(LOCAL_OPERATOR)] == [created.record.key_id]


async def test_reading_the_appliance_itself_needs_a_key_but_no_permission(appliance):
    nobody = anonymous("203.0.113.9")
    with pytest.raises(Unauthorized):
        await appliance.templates.list_templates(nobody)
    with pytest.raises(Unauthorized):
        await appliance.alerts.list(nobody)
    with pytest.raises(Unauthorized):
        appliance.alerts.authorize_watch(nobody)
    with pytest.raises(Unauthorized):
        appliance.executions.authorize_stream(nobody)
    with pytest.raises(Forbidden):
        appliance.executions.authorize_stream(READER)
    with pytest.raises(Forbidden):
        appliance.evaluations.authorize_events(READER)
    appliance.alerts.authorize_watch(READER)  # any key may watch the appliance's figures
    assert await appliance.alerts.list(READER) == []
    assert {r.rule for r in appliance.alerts.list_rules(READER)}
