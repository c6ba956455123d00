"""Who may call the experiments API, and how often: the session cookie with its CSRF
token, sessions of owners and admins, and the rate limits of the document's table."""

from __future__ import annotations

import sqlite3
import time

import httpx
import pytest

from appliance.client import ApplianceClient
from tests.experiments_support import assert_v1_error, start_v1_server
from tests.support import start_server
from tests.test_auth import cli, create_key
from tests.test_rate_limits import within_one_window

COOKIE = "_crucible_ui_key"
NEW_MODEL = {"model": {"name": "From A Browser", "provider": "custom"}}


@pytest.fixture(scope="module")
def v1(tmp_path_factory):
    server = start_v1_server(tmp_path_factory.mktemp("v1-access"))
    yield server
    server.stop()


def open_session(server, key: str, headers: dict | None = None) -> tuple[httpx.Response, str, str]:
    """POST /api/v1/session with `key`: the response, the cookie's value, the CSRF token."""
    with server.client(key, headers=headers) as client:
        response = client.post("/api/v1/session")
    assert response.status_code == 201, response.text
    return response, response.cookies[COOKIE], response.json()["data"]["csrf_token"]


def browser(server, cookie: str, csrf: str | None = None) -> httpx.Client:
    headers = {"X-CSRF-Token": csrf} if csrf else {}
    return httpx.Client(base_url=server.url, cookies={COOKIE: cookie}, headers=headers, timeout=30)


def set_cookie_attributes(response: httpx.Response) -> dict[str, str]:
    header = response.headers["set-cookie"]
    parts = [p.strip() for p in header.split(";")]
    attributes = {p.split("=", 1)[0].lower(): (p.split("=", 1)[1] if "=" in p else "") for p in parts[1:]}
    return {"value": parts[0].split("=", 1)[1], **attributes}


# --- sessions ---------------------------------------------------------------------------------


def test_a_session_sets_a_strict_httponly_cookie_and_returns_a_csrf_token(v1):
    key = create_key(v1, "browser-user", owner="erin")
    response, cookie, csrf = open_session(v1, key)
    data = response.json()["data"]
    assert set(data) == {"id", "key_id", "owner", "created_at", "expires_at", "csrf_token"}
    assert data["id"].startswith("ses_") and data["owner"] == "erin" and len(csrf) >= 32
    attributes = set_cookie_attributes(response)
    assert attributes["value"] == cookie and len(cookie) >= 40
    assert "httponly" in attributes and attributes["samesite"].lower() == "strict" and attributes["path"] == "/"
    assert "secure" not in attributes  # plain http here
    assert int(attributes["max-age"]) == 8 * 3600  # session_ttl_seconds
    # behind a TLS proxy (uvicorn trusts X-Forwarded-Proto from loopback), the cookie is Secure
    secure, _, _ = open_session(v1, key, headers={"X-Forwarded-Proto": "https"})
    assert "secure" in set_cookie_attributes(secure)
    # only a hash of the token is stored
    assert cookie.encode() not in (v1.data_dir / "appliance.db").read_bytes()


def test_the_cookie_reads_freely_and_writes_only_with_the_csrf_token(v1):
    key = create_key(v1, "csrf-user", owner="frank")
    _, cookie, csrf = open_session(v1, key)
    with browser(v1, cookie) as page:
        assert page.get("/api/v1/models").status_code == 200  # a safe method needs no token
        who = page.get("/api/v1/session").json()["data"]
        assert who["owner"] == "frank" and who["session"]["csrf_token"] == csrf
        for method, path in (("POST", "/api/v1/models"), ("PATCH", "/api/v1/models/x"), ("DELETE", "/api/v1/session")):
            body = NEW_MODEL if method != "DELETE" else None
            error = assert_v1_error(page.request(method, path, json=body), 403, "forbidden", "X-CSRF-Token", method)
            assert error["details"] == {"header": "X-CSRF-Token"}
        wrong = page.post("/api/v1/models", json=NEW_MODEL, headers={"X-CSRF-Token": "0" * 64})
        assert_v1_error(wrong, 403, "forbidden", "does not match")
        _, other_cookie, other_csrf = open_session(v1, key)  # another session's token is wrong here
        assert_v1_error(
            page.post("/api/v1/models", json=NEW_MODEL, headers={"X-CSRF-Token": other_csrf}), 403, "forbidden"
        )
        made = page.post("/api/v1/models", json=NEW_MODEL, headers={"X-CSRF-Token": csrf})
        assert made.status_code == 201, made.text
    with v1.client(key) as by_key:  # the session acts as its key: same owner
        assert by_key.get(f"/api/v1/models/{made.json()['data']['id']}").status_code == 200
    with v1.admin() as admin:
        assert admin.get("/api/v1/models", params={"filter[name]": "From A Browser"}).json()["meta"]["total"] == 1


def test_the_cookie_is_this_documents_only(v1):
    key = create_key(v1, "scoped-cookie", owner="gina")
    _, cookie, _ = open_session(v1, key)
    with browser(v1, cookie) as page:
        assert page.get("/api/evaluations").status_code == 401  # the platform API ignores it
        assert page.get("/api/sandboxes").status_code == 401


def test_ending_the_session(v1):
    key = create_key(v1, "leaver", owner="hank")
    _, cookie, csrf = open_session(v1, key)
    with browser(v1, cookie, csrf) as page:
        ended = page.delete("/api/v1/session")
        assert ended.status_code == 204
        cleared = set_cookie_attributes(ended)
        assert cleared["value"] in ("", '""') and int(cleared["max-age"]) == 0
    with browser(v1, cookie) as page:
        assert_v1_error(page.get("/api/v1/models"), 401, "unauthorized", "POST /api/v1/session")
    with v1.client(key) as by_key:  # a request without a session has none to end
        assert_v1_error(by_key.delete("/api/v1/session"), 404, "not_found", "session cookie")
        who = by_key.get("/api/v1/session").json()["data"]
        assert who["session"] is None and who["owner"] == "hank" and who["permissions"] == ["execute", "read"]


def test_a_session_cannot_open_another(v1):
    key = create_key(v1, "no-chain", owner="ivy")
    _, cookie, csrf = open_session(v1, key)
    with browser(v1, cookie, csrf) as page:
        assert_v1_error(page.post("/api/v1/session"), 403, "forbidden", "API key")


def test_revoking_the_key_ends_its_sessions(v1):
    key = create_key(v1, "revoked-browser", owner="jack")
    _, cookie, _ = open_session(v1, key)
    with browser(v1, cookie) as page:
        assert page.get("/api/v1/models").status_code == 200
        done = cli(v1.data_dir, "keys", "revoke", "key_" + key.split("_")[1])
        assert done.returncode == 0, done.stderr
        assert_v1_error(page.get("/api/v1/models"), 401, "unauthorized")
    with sqlite3.connect(v1.data_dir / "appliance.db") as db:
        rows = db.execute("SELECT count(*) FROM sessions WHERE key_id = ?", ("key_" + key.split("_")[1],))
        assert rows.fetchone()[0] == 0


def test_revoking_through_the_api_ends_the_sessions_too(v1):
    key = create_key(v1, "revoked-by-api", owner="kate")
    _, cookie, _ = open_session(v1, key)
    with v1.admin() as admin:
        assert admin.delete(f"/auth/api-keys/key_{key.split('_')[1]}").status_code == 200
    with browser(v1, cookie) as page:
        assert_v1_error(page.get("/api/v1/session"), 401, "unauthorized", "session")


def test_an_expired_session_is_refused(v1):
    key = create_key(v1, "expiring", owner="lena")
    response, cookie, _ = open_session(v1, key)
    with sqlite3.connect(v1.data_dir / "appliance.db") as db:
        db.execute(
            "UPDATE sessions SET expires_at = '2000-01-01T00:00:00.000Z' WHERE session_id = ?",
            (response.json()["data"]["id"],),
        )
    with browser(v1, cookie) as page:
        assert_v1_error(page.get("/api/v1/models"), 401, "unauthorized", "expired")
        assert_v1_error(page.get("/api/v1/models"), 401, "unauthorized", "not valid")  # and it is gone


def test_owners_see_their_sessions_and_admins_all(v1):
    mia = create_key(v1, "mia-sessions", owner="mia")
    ned = create_key(v1, "ned-sessions", owner="ned")
    mine = [open_session(v1, mia)[0].json()["data"]["id"] for _ in range(3)]
    theirs = open_session(v1, ned)[0].json()["data"]["id"]
    with v1.client(mia) as client:
        listed = client.get("/api/v1/sessions", params={"per_page": 100}).json()
        assert {s["id"] for s in listed["data"]} == set(mine) and listed["meta"]["total"] == 3
        assert all("csrf_token" not in s for s in listed["data"])
        by_cursor = client.get("/api/v1/sessions", params={"per_page": 2}).json()
        rest = client.get("/api/v1/sessions", params={"per_page": 2, "cursor": by_cursor["meta"]["next_cursor"]})
        assert {s["id"] for s in by_cursor["data"] + rest.json()["data"]} == set(mine)
        assert_v1_error(client.delete(f"/api/v1/sessions/{theirs}"), 404, "not_found")
        assert client.delete(f"/api/v1/sessions/{mine[0]}").status_code == 204
    with v1.admin() as admin:
        everyone = admin.get("/api/v1/sessions", params={"per_page": 100, "filter[owner]": "ned"}).json()["data"]
        assert [s["id"] for s in everyone] == [theirs]
        assert admin.delete(f"/api/v1/sessions/{theirs}").status_code == 204


def test_the_client_opens_and_uses_a_session(v1):
    key = create_key(v1, "client-session", owner="olga")
    with ApplianceClient(v1.url, api_key=key) as client:
        opened = client.open_session(use=True)
        assert "X-API-Key" not in client.http.headers
        who = client.whoami()
        assert who.session.id == opened.id and who.owner == "olga"
        assert client.create_model("Via Session", "custom").name == "Via Session"
        client.close_session()
        with pytest.raises(Exception) as caught:
            client.whoami()
        assert getattr(caught.value, "status_code", None) == 401


# --- rate limits ------------------------------------------------------------------------------


def test_reads_and_writes_have_their_limits_and_headers(tmp_path):
    started = []

    def run():
        server = start_v1_server(
            tmp_path / f"data{len(started)}",
            env={"APPLIANCE_RATE_LIMIT_READ": "5", "APPLIANCE_RATE_LIMIT_WRITE": "3"},
        )
        started.append(server)
        other = create_key(server, "other-limited", owner="other")
        try:
            with server.admin() as admin, server.client(other) as them:
                reads = [admin.get("/api/v1/models") for _ in range(6)]
                writes = [admin.post("/api/v1/models", json=NEW_MODEL) for _ in range(4)]
                theirs = [them.get("/api/v1/models"), them.post("/api/v1/models", json=NEW_MODEL)]
                stored = admin.get("/api/evaluations")  # another document's bucket: still allowed
            return [*reads, *writes, *theirs, stored]
        finally:
            server.stop()

    responses = within_one_window(run)
    reads, writes, theirs, elsewhere = responses[:6], responses[6:10], responses[10:12], responses[12]
    assert [r.status_code for r in reads] == [200] * 5 + [429]
    assert {r.headers["X-RateLimit-Limit"] for r in reads} == {"5"}
    assert [int(r.headers["X-RateLimit-Remaining"]) for r in reads] == [4, 3, 2, 1, 0, 0]
    reset = int(reads[0].headers["X-RateLimit-Reset"])
    assert reset % 60 == 0 and time.time() - 120 < reset <= time.time() + 60
    error = assert_v1_error(reads[5], 429, "rate_limited", "5 requests per minute")
    assert error["details"]["retry_after"] >= 1 and 1 <= int(reads[5].headers["Retry-After"]) <= 60
    # writes are counted apart from reads
    assert [r.status_code for r in writes] == [201, 201, 201, 429]
    assert [r.headers["X-RateLimit-Limit"] for r in writes] == ["3"] * 4
    assert_v1_error(writes[3], 429, "rate_limited", "3 requests per minute")
    # each identity has its own budget
    assert [r.status_code for r in theirs] == [200, 201]
    assert theirs[0].headers["X-RateLimit-Remaining"] == "4"
    assert elsewhere.status_code == 200 and elsewhere.headers["X-RateLimit-Limit"] != "5"


def test_documented_defaults(tmp_path):
    """experiments-api.md's table: 1000 reads and 100 writes a minute."""
    server = start_server(tmp_path / "data", env={"APPLIANCE_WARM_POOL_MIN_IDLE": "0"})
    try:
        with server.admin() as admin:
            read = admin.get("/api/v1/models")
            write = admin.post("/api/v1/models", json=NEW_MODEL)
    finally:
        server.stop()
    assert read.status_code == 200 and read.headers["X-RateLimit-Limit"] == "1000"
    assert write.status_code == 201 and write.headers["X-RateLimit-Limit"] == "100"
