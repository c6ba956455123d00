"""API keys, JWT bearer tokens, permissions and ownership, through a real server."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import httpx

from tests.support import ROOT, run_eval, wait_for_status
from tests.test_api_errors import assert_error


def cli(data_dir, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "appliance", *args, "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )


def create_key(server, name: str, permissions: str = "execute,read", owner: str | None = None) -> str:
    args = ["keys", "create", "--name", name, "--permissions", permissions]
    if owner:
        args += ["--owner", owner]
    done = cli(server.data_dir, *args)
    assert done.returncode == 0, done.stderr
    key = done.stdout.strip()
    assert key.startswith("ak_") and "only time" in done.stderr
    return key


def test_first_start_writes_admin_key_0600(server):
    path = server.data_dir / "admin.key"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert "admin.key" in server.log()


def test_key_is_stored_only_as_argon2_hash(server):
    key = create_key(server, "hash-check")
    database = (server.data_dir / "appliance.db").read_bytes()
    wal = server.data_dir / "appliance.db-wal"
    everything = database + (wal.read_bytes() if wal.exists() else b"")
    assert key.encode() not in everything
    assert key.split("_", 2)[2].encode()  # the secret may itself hold "_" not in everything
    assert b"$argon2id$" in everything


def test_requests_without_credentials_are_401(server):
    with server.client() as anon:
        assert_error(anon.post("/api/eval", json={"code": "print(1)"}), 401, "x-api-key")
        assert_error(anon.get("/api/evaluations"), 401)
        assert anon.get("/api/status").status_code == 200  # public


def test_wrong_key_and_malformed_header_are_401(server):
    with server.client("ak_000000000000_notarealkeynotarealkey") as client:
        assert_error(client.get("/api/evaluations"), 401, "invalid")
    with server.client("hello") as client:
        assert_error(client.get("/api/evaluations"), 401, "invalid")
    with server.client(headers={"Authorization": "Basic Zm9vOmJhcg=="}) as client:
        assert_error(client.get("/api/evaluations"), 401, "bearer")


def test_x_api_key_wins_over_an_authorization_header_beside_it(server):
    """The first credential present decides (docs/api.md, docs/sandbox-api.md): a
    generated client or a proxy may add an Authorization header beside a valid key, and a
    bad key is not rescued by a valid token beside it. On both documents' routes."""
    with server.admin() as admin:
        token = admin.post("/api/auth/token").json()["access_token"]
    for authorization in ("Basic Zm9vOmJhcg==", "Bearer", "Bearer abc.def.ghi", "garbage", f"Bearer {token}"):
        with server.client(server.admin_key, headers={"Authorization": authorization}) as client:
            for path in ("/api/evaluations", "/api/sandboxes", "/auth/api-keys"):
                response = client.get(path)
                assert response.status_code == 200, (authorization, path, response.text)
    headers = {"X-API-Key": "ak_000000000000_notarealkeynotarealkey", "Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=server.url, headers=headers) as client:
        assert_error(client.get("/api/evaluations"), 401, "invalid api key")
        assert client.get("/api/sandboxes").status_code == 401


def test_read_only_key_cannot_submit_or_kill(server):
    key = create_key(server, "reader", "read")
    with server.client(key) as client:
        assert_error(client.post("/api/eval", json={"code": "print(1)"}), 403, "execute")
        assert client.get("/api/evaluations").status_code == 200


def test_execute_only_key_cannot_read(server):
    key = create_key(server, "submitter", "execute")
    with server.client(key) as client:
        assert client.post("/api/eval", json={"code": "print(1)"}).status_code == 200
        assert_error(client.get("/api/evaluations"), 403, "read")


def test_execute_alone_may_kill_its_own_evaluation(server):
    """Killing needs `execute` (as docs/api.md says), not `read` too."""
    key = create_key(server, "killer", "execute")
    with server.client(key) as client:
        eval_id = client.post("/api/eval", json={"code": "import time; time.sleep(600)", "timeout": 300}).json()[
            "eval_id"
        ]
        answer = client.post(f"/api/eval/{eval_id}/kill")
        assert answer.status_code == 200 and answer.json()["eval_id"] == eval_id, answer.text


def test_unknown_permission_is_refused_by_the_cli(server):
    done = cli(server.data_dir, "keys", "create", "--name", "x", "--permissions", "everything")
    assert done.returncode != 0 and "unknown permission" in done.stderr


def test_owners_see_only_their_own_evaluations(server):
    alice = create_key(server, "alice-laptop", owner="alice")
    alice2 = create_key(server, "alice-ci", owner="alice")
    bob = create_key(server, "bob", owner="bob")
    with server.client(alice) as a, server.client(alice2) as a2, server.client(bob) as b, server.admin() as admin:
        eval_id = a.post("/api/eval", json={"code": "print('mine')"}).json()["eval_id"]
        wait_for_status(a, eval_id)
        assert a2.get(f"/api/eval-status/{eval_id}").status_code == 200  # same owner
        assert_error(b.get(f"/api/eval-status/{eval_id}"), 404)
        assert_error(b.get(f"/api/eval/{eval_id}/logs"), 404)
        assert_error(b.post(f"/api/eval/{eval_id}/kill"), 404)
        assert eval_id not in [e["eval_id"] for e in b.get("/api/evaluations").json()["evaluations"]]
        assert eval_id in [e["eval_id"] for e in a2.get("/api/evaluations").json()["evaluations"]]
        assert admin.get(f"/api/eval-status/{eval_id}").status_code == 200


def test_revoked_key_is_401_at_once(server):
    key = create_key(server, "soon-gone")
    with server.client(key) as client:
        assert client.get("/api/evaluations").status_code == 200
        key_id = "key_" + key.split("_")[1]
        done = cli(server.data_dir, "keys", "revoke", key_id)
        assert done.returncode == 0, done.stderr
        assert_error(client.get("/api/evaluations"), 401, "revoked")
    listing = cli(server.data_dir, "keys", "list").stdout
    assert key_id in listing and "revoked" in listing and key not in listing


def test_jwt_bearer_token(server):
    key = create_key(server, "jwt-user", owner="carol")
    with server.client(key) as client:
        response = client.post("/api/auth/token")
        assert response.status_code == 200, response.text
        token = response.json()["access_token"]
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}) as bearer:
        result = run_eval(bearer, "print('jwt ok')")
        assert result["output"] == "jwt ok\n"
    with httpx.Client(base_url=server.url, headers={"Authorization": "Bearer abc.def.ghi"}) as bad:
        assert_error(bad.get("/api/evaluations"), 401, "token")
    with server.client() as anon:
        assert_error(anon.post("/api/auth/token"), 403)


def test_expired_jwt_is_401(server):
    import datetime

    import jwt

    secret = (server.data_dir / "jwt.secret").read_bytes().strip()
    past = datetime.datetime.now(datetime.UTC) - datetime.timedelta(hours=2)
    key_id = "key_" + server.admin_key.split("_")[1]
    token = jwt.encode(
        {"sub": key_id, "iss": "appliance", "iat": past, "exp": past + datetime.timedelta(hours=1)},
        secret,
        algorithm="HS256",
    )
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}) as client:
        assert_error(client.get("/api/evaluations"), 401, "expired")


def test_keys_never_reach_the_log(server):
    import asyncio

    import websockets

    async def touch() -> None:
        async with websockets.connect(f"{server.ws_url}/ws?api_key={server.admin_key}") as ws:
            await ws.send('{"action": "ping"}')
            await ws.recv()

    asyncio.run(touch())
    log = server.log()
    assert "/ws?api_key=***" in log
    assert server.admin_key not in log
