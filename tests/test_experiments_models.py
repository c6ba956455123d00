"""The model registry of experiments-api.md through a real server: every endpoint, the
entries seeded from the config file, permissions and owners, and no secret ever stored."""

from __future__ import annotations

import sqlite3

import pytest

from appliance.client import ApplianceClient
from tests.experiments_support import (
    SEEDED_IDS,
    assert_invalid,
    assert_v1_error,
    bearer,
    fake_secret,
    start_v1_server,
)
from tests.test_auth import create_key

ENV_SECRET = fake_secret()  # in the server's environment, named by api_key_env only
MODEL_FIELDS = {"id", "name", "provider", "type", "config", "status", "read_only", "created_at", "updated_at"}


@pytest.fixture(scope="module")
def v1(tmp_path_factory):
    server = start_v1_server(tmp_path_factory.mktemp("v1-models"), env={"CUSTOM_API_KEY": ENV_SECRET})
    yield server
    server.stop()


@pytest.fixture(scope="module")
def keys(v1):
    """Keys of two owners, and keys that lack one permission each."""
    return {
        "alice": create_key(v1, "alice-models", owner="alice"),
        "bob": create_key(v1, "bob-models", owner="bob"),
        "reader": create_key(v1, "reader-models", "read", owner="carol"),
        "writer": create_key(v1, "writer-models", "execute", owner="dave"),
    }


def new_model(client, name="Custom Model", provider="custom", **extra) -> dict:
    body = {"name": name, "provider": provider, "config": {}, **extra}
    response = client.post("/api/v1/models", json={"model": body})
    assert response.status_code == 201, response.text
    return response.json()["data"]


def stored_models(v1) -> int:
    with v1.admin() as admin:
        return admin.get("/api/v1/models", params={"per_page": 1}).json()["meta"]["total"]


# --- CRUD -------------------------------------------------------------------------------------


def test_create_get_update_delete(v1):
    with v1.admin() as admin:
        response = admin.post(
            "/api/v1/models",
            json={
                "model": {
                    "name": "Custom Model",
                    "provider": "custom",
                    "type": "llm",
                    "config": {"endpoint": "https://api.example.com/v1/completions", "api_key_env": "CUSTOM_API_KEY"},
                }
            },
        )
        assert response.status_code == 201, response.text
        assert set(response.json()) == {"data"}
        created = response.json()["data"]
        assert set(created) == MODEL_FIELDS and created["id"].startswith("model_")
        assert created["status"] == "active" and created["read_only"] is False
        assert created["created_at"] == created["updated_at"] and created["created_at"].endswith("Z")
        model_id = created["id"]

        assert admin.get(f"/api/v1/models/{model_id}").json() == {"data": created}

        patched = admin.patch(
            f"/api/v1/models/{model_id}",
            json={"model": {"name": "Renamed", "status": "inactive", "config": {"temperature": 0.2, "endpoint": None}}},
        )
        assert patched.status_code == 200, patched.text
        data = patched.json()["data"]
        assert data["name"] == "Renamed" and data["status"] == "inactive"
        # config is a merge patch: a key set, a key removed (null), the rest kept
        assert data["config"] == {"api_key_env": "CUSTOM_API_KEY", "temperature": 0.2}
        assert data["created_at"] == created["created_at"] and data["updated_at"] > created["updated_at"]
        assert admin.get(f"/api/v1/models/{model_id}").json()["data"] == data

        deleted = admin.delete(f"/api/v1/models/{model_id}")
        assert deleted.status_code == 204 and deleted.content == b""
        assert_v1_error(admin.get(f"/api/v1/models/{model_id}"), 404, "not_found", model_id)
        assert_v1_error(admin.delete(f"/api/v1/models/{model_id}"), 404, "not_found")
        assert_v1_error(admin.patch(f"/api/v1/models/{model_id}", json={"model": {}}), 404, "not_found")


def test_the_client_covers_the_registry(v1):
    with ApplianceClient(v1.url, api_key=v1.admin_key) as client:
        model = client.create_model("Client Model", "ollama", config={"base_url": "http://127.0.0.1:11434"})
        assert client.get_model(model.id).provider == "ollama"
        assert client.update_model(model.id, config={"model": "llama3"}).config == {
            "base_url": "http://127.0.0.1:11434",
            "model": "llama3",
        }
        assert client.model_statistics(model.id, "1h").total_requests == 0
        page = client.list_models({"provider": "ollama"}, per_page=1)
        assert page.meta.total >= 1 and all(m.provider == "ollama" for m in page.data)
        assert model.id in [m.id for m in client.iter_models({"source": "api"})]
        client.delete_model(model.id)
        expect_error = expect_v1_client_error(lambda: client.get_model(model.id), 404, "not_found")
        assert model.id in expect_error.message


def expect_v1_client_error(call, status, code):
    from appliance.client import ApiError

    with pytest.raises(ApiError) as caught:
        call()
    assert (caught.value.status_code, caught.value.code) == (status, code)
    return caught.value


def test_statistics_are_zeros_until_there_is_telemetry(v1):
    with v1.admin() as admin:
        model = new_model(admin, "Stats Model")
        for period in ("1h", "24h", "7d", "30d"):
            response = admin.get(f"/api/v1/models/{model['id']}/statistics", params={"period": period})
            assert response.status_code == 200, response.text
            assert response.json() == {
                "data": {
                    "period": period,
                    "total_requests": 0,
                    "success_rate": None,
                    "avg_latency_ms": None,
                    "p99_latency_ms": None,
                    "total_tokens": 0,
                    "error_breakdown": {},
                }
            }
        assert admin.get(f"/api/v1/models/{model['id']}/statistics").json()["data"]["period"] == "24h"
        seeded = admin.get(f"/api/v1/models/{SEEDED_IDS[0]}/statistics", params={"period": "7d"})
        assert seeded.status_code == 200 and seeded.json()["data"]["total_requests"] == 0
        error = assert_invalid(admin.get(f"/api/v1/models/{model['id']}/statistics?period=2d"), "period")
        assert "1h, 24h, 7d, 30d" in error["details"]["period"][0]
        assert_v1_error(admin.get("/api/v1/models/model_nope/statistics"), 404, "not_found")


# --- seeded from the config file --------------------------------------------------------------


def test_config_file_entries_are_listed_to_everyone_and_read_only(v1, keys):
    with v1.client(keys["reader"]) as reader:
        listed = reader.get("/api/v1/models", params={"filter[source]": "config", "sort": "name"}).json()
    assert [m["id"] for m in listed["data"]] == ["model_seeded-claude", "model_seeded-llama"]
    claude, llama = listed["data"]
    assert claude["read_only"] and llama["read_only"]
    assert claude["status"] == "inactive" and claude["provider"] == "anthropic"
    assert llama["config"] == {
        "base_url": "http://127.0.0.1:9/v1",
        "model": "llama-3-8b",
        "api_key_env": "SEEDED_LLAMA_KEY",
        "max_tokens": 512,
    }
    with v1.admin() as admin:  # not even an admin changes them through the API
        for model_id in SEEDED_IDS:
            assert_v1_error(
                admin.patch(f"/api/v1/models/{model_id}", json={"model": {"name": "x"}}), 403, "forbidden", "config"
            )
            assert_v1_error(admin.delete(f"/api/v1/models/{model_id}"), 403, "forbidden", "config.toml")
            assert admin.get(f"/api/v1/models/{model_id}").json()["data"]["name"].startswith("Seeded")


def test_seeds_follow_the_config_file_across_restarts(tmp_path):
    server = start_v1_server(tmp_path / "data")
    try:
        with server.admin() as admin:
            before = {m["id"]: m for m in admin.get("/api/v1/models").json()["data"]}
            mine = new_model(admin, "Made Through The API")
    finally:
        server.stop()
    changed = """
[[models]]
name = "Seeded Llama"
provider = "openai-compatible"
config = { base_url = "http://127.0.0.1:10/v1", model = "llama-3-70b" }
"""
    server = start_v1_server(tmp_path / "data", config=changed)
    try:
        with server.admin() as admin:
            after = {m["id"]: m for m in admin.get("/api/v1/models").json()["data"]}
    finally:
        server.stop()
    assert set(after) == {"model_seeded-llama", mine["id"]}  # the removed entry is gone, API entries stay
    llama = after["model_seeded-llama"]
    assert llama["config"] == {"base_url": "http://127.0.0.1:10/v1", "model": "llama-3-70b"}
    assert llama["created_at"] == before["model_seeded-llama"]["created_at"]
    assert llama["updated_at"] > before["model_seeded-llama"]["updated_at"]


# --- no secret --------------------------------------------------------------------------------

SECRET_CONFIGS = [
    ({"api_key": "{secret}"}, "config.api_key"),
    ({"token": "{secret}"}, "config.token"),
    ({"password": "{secret}"}, "config.password"),
    ({"clientSecret": "{secret}"}, "config.clientSecret"),
    ({"headers": {"Authorization": "Bearer {secret}"}}, "config.headers.Authorization"),
    ({"extra": ["{secret}"]}, "config.extra[0]"),  # looks like a provider key whatever its name
]


@pytest.mark.parametrize("config,field", SECRET_CONFIGS, ids=[f for _, f in SECRET_CONFIGS])
def test_a_secret_in_config_is_refused_and_nothing_is_stored(v1, config, field):
    secret = fake_secret()
    config = _with_secret(config, secret)
    before = stored_models(v1)
    with v1.admin() as admin:
        response = admin.post(
            "/api/v1/models", json={"model": {"name": "Leaky", "provider": "custom", "config": config}}
        )
        error = assert_invalid(response, field)
        assert "api_key_env" in error["details"][field][0] and "api_key_env" in error["message"]
        assert secret not in response.text
        model = new_model(admin, "Clean")
        patched = admin.patch(f"/api/v1/models/{model['id']}", json={"model": {"config": config}})
        assert_invalid(patched, field)
        assert admin.get(f"/api/v1/models/{model['id']}").json()["data"]["config"] == {}
        admin.delete(f"/api/v1/models/{model['id']}")
    assert stored_models(v1) == before
    assert_not_in_database(v1, secret)


def _with_secret(value, secret):
    if isinstance(value, dict):
        return {k: _with_secret(v, secret) for k, v in value.items()}
    if isinstance(value, list):
        return [_with_secret(v, secret) for v in value]
    return value.replace("{secret}", secret)


def test_keys_that_only_look_like_secrets_are_kept(v1):
    with v1.admin() as admin:
        model = new_model(
            admin,
            "Not Secret",
            config={"api_key_env": "CUSTOM_API_KEY", "max_tokens": 100, "token_limit": 4096, "api_key": None},
        )
        assert model["config"] == {
            "api_key_env": "CUSTOM_API_KEY",
            "max_tokens": 100,
            "token_limit": 4096,
            "api_key": None,
        }


def test_the_environments_secret_is_never_stored_or_echoed(v1):
    """The server's environment holds CUSTOM_API_KEY; a model names it. Neither its
    responses nor the database (nor its WAL) ever hold the value."""
    with v1.admin() as admin:
        model = new_model(admin, "Env Key", config={"api_key_env": "CUSTOM_API_KEY"})
        texts = [
            admin.get(f"/api/v1/models/{model['id']}").text,
            admin.get("/api/v1/models", params={"per_page": 100}).text,
            admin.get(f"/api/v1/models/{model['id']}/statistics").text,
        ]
    assert all(ENV_SECRET not in text for text in texts)
    assert_not_in_database(v1, ENV_SECRET)
    assert ENV_SECRET not in v1.log()


def assert_not_in_database(server, secret: str) -> None:
    files = [p for p in server.data_dir.iterdir() if p.name.startswith("appliance.db")]
    assert files, "no database file found"
    for path in files:
        assert secret.encode() not in path.read_bytes(), f"{secret} found in {path.name}"


# --- bad input --------------------------------------------------------------------------------

BAD_MODELS = [
    ({"name": "  ", "provider": "custom"}, "name"),
    ({"name": "x", "provider": "skynet"}, "provider"),
    ({"name": "x", "provider": "custom", "type": "oracle"}, "type"),
    ({"name": "x", "provider": "custom", "status": "dead"}, "status"),
    ({"name": "x", "provider": "custom", "config": {"temperature": 3}}, "config.temperature"),
    ({"name": "x", "provider": "custom", "config": {"temperature": "hot"}}, "config.temperature"),
    ({"name": "x", "provider": "custom", "config": {"max_tokens": 0}}, "config.max_tokens"),
    ({"name": "x", "provider": "custom", "config": {"base_url": "ftp://x"}}, "config.base_url"),
    ({"name": "x", "provider": "custom", "config": {"endpoint": "https://u:p@x.example"}}, "config.endpoint"),
    ({"name": "x", "provider": "custom", "config": {"api_key_env": "1 BAD"}}, "config.api_key_env"),
    ({"name": "x", "provider": "custom", "config": {"price_per_input_token": -1}}, "config.price_per_input_token"),
    ({"name": 3, "provider": "custom"}, "name"),  # decoding: wrong type
    ({"provider": "custom"}, "name"),  # decoding: missing field
    ({"name": "x", "provider": "custom", "colour": "red"}, "colour"),  # decoding: unknown field
    ({"name": "x", "provider": "custom", "config": []}, "config"),
]


@pytest.mark.parametrize("model,field", BAD_MODELS, ids=[f"{f}-{i}" for i, (_, f) in enumerate(BAD_MODELS)])
def test_bad_model_is_422_naming_the_field_and_stores_nothing(v1, model, field):
    before = stored_models(v1)
    with v1.admin() as admin:
        assert_invalid(admin.post("/api/v1/models", json={"model": model}), field)
    assert stored_models(v1) == before


def test_bodies_that_cannot_be_read(v1):
    before = stored_models(v1)
    with v1.admin() as admin:
        unwrapped = assert_invalid(admin.post("/api/v1/models", json={"name": "x", "provider": "custom"}), "name")
        assert '{"model": {...}}' in unwrapped["details"]["name"][0]
        assert_invalid(admin.post("/api/v1/models", json={}), "model")
        assert_invalid(admin.post("/api/v1/models", json=[1]), "body")
        headers = {"Content-Type": "application/json"}
        assert_invalid(admin.post("/api/v1/models", content=b"{not json", headers=headers), "body")
        assert_invalid(admin.post("/api/v1/models", content=b"", headers=headers), "body")
        huge = {"model": {"name": "x", "provider": "custom", "config": {"blob": "x" * (3 * 1024 * 1024)}}}
        assert_v1_error(admin.post("/api/v1/models", json=huge), 413, "payload_too_large", "max_body_bytes")
    assert stored_models(v1) == before


# --- permissions and owners -------------------------------------------------------------------


def test_owners_see_and_change_only_their_own(v1, keys):
    with v1.client(keys["alice"]) as alice, v1.client(keys["bob"]) as bob, v1.admin() as admin:
        mine = new_model(alice, "Alice's Model")
        assert alice.get(f"/api/v1/models/{mine['id']}").status_code == 200
        listed = [m["id"] for m in bob.get("/api/v1/models", params={"per_page": 100}).json()["data"]]
        assert mine["id"] not in listed and set(SEEDED_IDS) <= set(listed)
        assert_v1_error(bob.get(f"/api/v1/models/{mine['id']}"), 404, "not_found")
        assert_v1_error(bob.patch(f"/api/v1/models/{mine['id']}", json={"model": {"name": "mine"}}), 404, "not_found")
        assert_v1_error(bob.delete(f"/api/v1/models/{mine['id']}"), 404, "not_found")
        assert_v1_error(bob.get(f"/api/v1/models/{mine['id']}/statistics"), 404, "not_found")
        assert alice.get(f"/api/v1/models/{mine['id']}").json()["data"]["name"] == "Alice's Model"
        # an admin sees every entry and may change any made through the API
        assert mine["id"] in [m["id"] for m in admin.get("/api/v1/models", params={"per_page": 100}).json()["data"]]
        assert admin.patch(f"/api/v1/models/{mine['id']}", json={"model": {"status": "inactive"}}).status_code == 200
        assert admin.delete(f"/api/v1/models/{mine['id']}").status_code == 204


def test_reading_needs_read_and_changing_needs_execute(v1, keys):
    with v1.client(keys["reader"]) as reader, v1.client(keys["writer"]) as writer:
        assert reader.get("/api/v1/models").status_code == 200
        error = assert_v1_error(
            reader.post("/api/v1/models", json={"model": {"name": "x", "provider": "custom"}}), 403, "forbidden"
        )
        assert error["details"] == {"required_permission": "execute"}
        assert_v1_error(writer.get("/api/v1/models"), 403, "forbidden", "read")
        assert writer.post("/api/v1/models", json={"model": {"name": "w", "provider": "custom"}}).status_code == 201


def test_bearer_api_key_and_bearer_jwt(v1, keys):
    with bearer(v1, keys["alice"]) as by_key:
        assert by_key.get("/api/v1/models").status_code == 200
        mine = new_model(by_key, "By Bearer Key")
        assert by_key.get("/api/evaluations").status_code == 200  # the other documents take it too
    with v1.client(keys["alice"]) as alice:
        token = alice.post("/api/auth/token").json()["access_token"]
    with bearer(v1, token) as by_token:
        assert by_token.get(f"/api/v1/models/{mine['id']}").json()["data"]["name"] == "By Bearer Key"
    with v1.client() as browser_socket_style:  # a Phoenix socket's `token` param takes either too
        assert browser_socket_style.get("/api/v1/models", params={"token": keys["alice"]}).status_code == 200
        assert browser_socket_style.get("/api/v1/models", params={"token": token}).status_code == 200
    with bearer(v1, "ak_000000000000_" + "x" * 30) as wrong_key:
        assert_v1_error(wrong_key.get("/api/v1/models"), 401, "unauthorized", "invalid API key")
    with bearer(v1, "abc.def.ghi") as wrong_token:
        assert_v1_error(wrong_token.get("/api/v1/models"), 401, "unauthorized", "token")
    with v1.client(headers={"Authorization": "Basic YWxpY2U6eA=="}) as basic:
        assert_v1_error(basic.get("/api/v1/models"), 401, "unauthorized", "Bearer")
    with v1.client() as anonymous:
        assert_v1_error(anonymous.get("/api/v1/models"), 401, "unauthorized", "Authorization")
        # a 401 comes before anything about the request is looked at
        assert_v1_error(anonymous.post("/api/v1/models", content=b"{bad"), 401, "unauthorized")
        assert_v1_error(anonymous.get("/api/v1/models?per_page=0"), 401, "unauthorized")


def test_an_unexpected_failure_is_a_500_in_the_documents_shape(v1):
    """A row the server cannot read (written behind its back) is its own fault: a 500
    internal_error with a request id that the log names too."""
    with v1.admin() as admin:
        model = new_model(admin, "To Be Broken")
        with sqlite3.connect(v1.data_dir / "appliance.db") as db:
            db.execute("UPDATE models SET config = '{broken' WHERE model_id = ?", (model["id"],))
        try:
            response = admin.get(f"/api/v1/models/{model['id']}")
            error = assert_v1_error(response, 500, "internal_error", "internal error")
            request_id = response.headers["x-request-id"]
            assert request_id in error["message"] and request_id in v1.log()
        finally:
            with sqlite3.connect(v1.data_dir / "appliance.db") as db:
                db.execute("DELETE FROM models WHERE model_id = ?", (model["id"],))


def test_the_client_raises_the_documents_errors(v1):
    with ApplianceClient(v1.url, api_key=v1.admin_key) as client:
        expect_v1 = expect_v1_client_error(lambda: client.create_model(" ", "custom"), 422, "validation_error")
        assert expect_v1.details == {"name": ["can't be blank"]}
        expect_v1_client_error(lambda: client.delete_model(SEEDED_IDS[0]), 403, "forbidden")
    with ApplianceClient(v1.url) as anonymous:
        expect_v1_client_error(anonymous.list_models, 401, "unauthorized")
