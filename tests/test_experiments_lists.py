"""The list parameters every list of experiments-api.md shares (filter[...], sort, page
and per_page, cursor), on the model registry's list, through a real server."""

from __future__ import annotations

import pytest

from tests.experiments_support import assert_invalid, start_v1_server
from tests.test_auth import create_key

# Created in this order by one owner; sorted by name (case-insensitive) they are the same.
NAMES = ["alpha", "Bravo", "charlie", "delta", "Echo", "foxtrot", "golf_7"]
PROVIDERS = ["ollama", "anthropic", "custom", "ollama", "openai", "custom", "ollama"]
STATUSES = ["active", "active", "inactive", "active", "inactive", "active", "active"]
API_ONLY = {"filter[source]": "api"}  # leaves out the config file's entries


@pytest.fixture(scope="module")
def v1(tmp_path_factory):
    server = start_v1_server(tmp_path_factory.mktemp("v1-lists"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def lister(v1):
    """A client of an owner of its own, and the models it made (in creation order)."""
    key = create_key(v1, "lister", owner="lister")
    with v1.client(key) as client:
        made = []
        for name, provider, status in zip(NAMES, PROVIDERS, STATUSES, strict=True):
            body = {"model": {"name": name, "provider": provider, "status": status}}
            response = client.post("/api/v1/models", json=body)
            assert response.status_code == 201, response.text
            made.append(response.json()["data"])
        yield client, made


def names(response) -> list[str]:
    assert response.status_code == 200, response.text
    return [m["name"] for m in response.json()["data"]]


def get(client, **params):
    return client.get("/api/v1/models", params={**API_ONLY, **params})


# --- sort -------------------------------------------------------------------------------------


def test_sort_by_each_field_and_direction(lister):
    client, made = lister
    assert names(get(client)) == NAMES  # default: name, case-insensitive
    assert names(get(client, sort="-name")) == NAMES[::-1]
    assert names(get(client, sort="created_at")) == NAMES
    assert names(get(client, sort="-created_at")) == NAMES[::-1]
    by_provider = names(get(client, sort="provider"))
    assert [PROVIDERS[NAMES.index(n)] for n in by_provider] == sorted(PROVIDERS)
    by_status = names(get(client, sort="-status"))
    assert [STATUSES[NAMES.index(n)] for n in by_status] == sorted(STATUSES, reverse=True)
    # equal sort values keep one order: by id, in the sort's direction
    ollama = [m for m in made if m["provider"] == "ollama"]
    listed = get(client, sort="provider", **{"filter[provider]": "ollama"}).json()["data"]
    assert [m["id"] for m in listed] == sorted(m["id"] for m in ollama)


# --- pages ------------------------------------------------------------------------------------


def test_pages_by_number(lister):
    client, _ = lister
    first = get(client, per_page=3)
    assert names(first) == NAMES[:3]
    meta = first.json()["meta"]
    assert meta["total"] == 7 and meta["page"] == 1 and meta["per_page"] == 3 and meta["has_more"] is True
    assert isinstance(meta["next_cursor"], str)
    assert names(get(client, per_page=3, page=2)) == NAMES[3:6]
    last = get(client, per_page=3, page=3)
    assert names(last) == NAMES[6:]
    assert last.json()["meta"] == {"total": 7, "page": 3, "per_page": 3, "next_cursor": None, "has_more": False}
    beyond = get(client, per_page=3, page=9)
    assert names(beyond) == [] and beyond.json()["meta"]["total"] == 7 and beyond.json()["meta"]["has_more"] is False
    assert get(client).json()["meta"]["per_page"] == 25  # the default
    assert names(get(client, per_page=100)) == NAMES  # the most


def walk_by_cursor(client, **params) -> list[str]:
    seen, cursor, pages = [], None, 0
    while True:
        response = get(client, **params, **({"cursor": cursor} if cursor else {}))
        seen += names(response)
        meta = response.json()["meta"]
        assert meta["page"] is None or cursor is None
        pages += 1
        assert pages < 50, "the cursor does not advance"
        if not meta["has_more"]:
            assert meta["next_cursor"] is None
            return seen
        cursor = meta["next_cursor"]


def test_pages_by_cursor_cover_the_list_once(lister):
    client, _ = lister
    assert walk_by_cursor(client, per_page=2) == NAMES
    assert walk_by_cursor(client, per_page=3, sort="-created_at") == NAMES[::-1]
    assert walk_by_cursor(client, per_page=1, sort="provider") == names(get(client, sort="provider"))
    by_status = names(get(client, sort="status", **{"filter[provider]": "ollama,custom"}))
    assert walk_by_cursor(client, per_page=2, sort="status", **{"filter[provider]": "ollama,custom"}) == by_status
    # a page asked for by number hands out a cursor to the rest
    cursor = get(client, per_page=2).json()["meta"]["next_cursor"]
    response = get(client, per_page=2, cursor=cursor)
    assert names(response) == NAMES[2:4] and response.json()["meta"]["page"] is None


def test_a_cursor_holds_its_place_while_the_list_grows(v1):
    """Keyset paging: rows made before the cursor's position do not shift what comes next."""
    key = create_key(v1, "grower", owner="grower")
    with v1.client(key) as client:
        for name in ("m1", "m2", "m3", "m4"):
            client.post("/api/v1/models", json={"model": {"name": name, "provider": "custom"}})
        first = get(client, per_page=2)
        assert names(first) == ["m1", "m2"]
        client.post("/api/v1/models", json={"model": {"name": "m0", "provider": "custom"}})
        assert names(get(client, per_page=2, cursor=first.json()["meta"]["next_cursor"])) == ["m3", "m4"]


def test_equal_sort_values_page_without_loss_or_repeat(v1):
    key = create_key(v1, "twins", owner="twins")
    with v1.client(key) as client:
        ids = {
            client.post("/api/v1/models", json={"model": {"name": "same", "provider": "custom"}}).json()["data"]["id"]
            for _ in range(5)
        }
        seen, cursor = [], None
        while True:
            params = {**API_ONLY, "per_page": 2, **({"cursor": cursor} if cursor else {})}
            response = client.get("/api/v1/models", params=params).json()
            seen += [m["id"] for m in response["data"]]
            cursor = response["meta"]["next_cursor"]
            if not cursor:
                break
    assert sorted(seen) == sorted(ids) and len(seen) == 5


# --- filters ----------------------------------------------------------------------------------


def test_filters(lister):
    client, made = lister
    assert names(get(client, **{"filter[provider]": "ollama"})) == ["alpha", "delta", "golf_7"]
    assert names(get(client, **{"filter[provider]": "openai,anthropic"})) == ["Bravo", "Echo"]
    assert names(get(client, **{"filter[status]": "inactive"})) == ["charlie", "Echo"]
    assert names(get(client, **{"filter[name]": "HA"})) == ["alpha", "charlie"]  # partial, any case
    assert names(get(client, **{"filter[name]": "_"})) == ["golf_7"]  # no wildcard
    assert names(get(client, **{"filter[name]": "%"})) == []
    assert names(get(client, **{"filter[type]": "llm"})) == NAMES
    fourth = made[3]["created_at"]
    assert names(get(client, sort="created_at", **{"filter[created_after]": fourth})) == NAMES[3:]
    assert names(get(client, sort="created_at", **{"filter[created_before]": fourth})) == NAMES[:3]
    both = {"filter[provider]": "ollama", "filter[status]": "active", "sort": "-name", "per_page": 2}
    response = get(client, **both)
    assert names(response) == ["golf_7", "delta"] and response.json()["meta"]["total"] == 3
    assert "model_seeded-llama" in [m["id"] for m in client.get("/api/v1/models").json()["data"]]
    assert names(client.get("/api/v1/models", params={"filter[source]": "config"})) == ["Seeded Claude", "Seeded Llama"]


# --- what is refused --------------------------------------------------------------------------

BAD_PARAMETERS = [
    ({"per_page": 0}, "per_page"),
    ({"per_page": 101}, "per_page"),
    ({"per_page": "ten"}, "per_page"),
    ({"page": 0}, "page"),
    ({"page": -1}, "page"),
    ({"page": "first"}, "page"),
    ({"sort": "colour"}, "sort"),
    ({"sort": "-"}, "sort"),
    ({"sort": "name,-created_at"}, "sort"),
    ({"filter[colour]": "red"}, "filter[colour]"),
    ({"filter[]": "x"}, "filter[]"),
    ({"filter": "x"}, "filter"),
    ({"filter[provider]": "skynet"}, "filter[provider]"),
    ({"filter[status]": "active,dead"}, "filter[status]"),
    ({"filter[created_after]": "yesterday"}, "filter[created_after]"),
    ({"filter[name]": ""}, "filter[name]"),
    ({"cursor": "not-a-cursor"}, "cursor"),
    ({"cursor": ""}, "cursor"),
]


@pytest.mark.parametrize("params,field", BAD_PARAMETERS, ids=[str(p) for p, _ in BAD_PARAMETERS])
def test_bad_list_parameter_is_422_naming_it(lister, params, field):
    client, _ = lister
    error = assert_invalid(client.get("/api/v1/models", params=params), field)
    assert field in error["message"]


def test_unknown_filter_names_the_ones_the_list_takes(lister):
    client, _ = lister
    error = assert_invalid(client.get("/api/v1/models", params={"filter[colour]": "red"}), "filter[colour]")
    assert "filter[provider]" in error["details"]["filter[colour]"][0]


def test_every_bad_parameter_is_named_at_once(lister):
    client, _ = lister
    error = assert_invalid(client.get("/api/v1/models", params={"page": 0, "per_page": 500, "sort": "x"}))
    assert set(error["details"]) == {"page", "per_page", "sort"}


def test_a_cursor_is_good_only_for_its_own_list_sort_and_filters(v1, lister):
    client, _ = lister
    cursor = get(client, per_page=2).json()["meta"]["next_cursor"]
    data, _, signature = cursor.partition(".")
    tampered = data[:-2] + ("A" if data[-2] != "A" else "B") + data[-1] + "." + signature
    assert_invalid(get(client, per_page=2, cursor=tampered), "cursor")
    assert_invalid(get(client, per_page=2, cursor=cursor + "x"), "cursor")
    assert_invalid(get(client, per_page=2, cursor=cursor, sort="-name"), "cursor")
    assert_invalid(client.get("/api/v1/models", params={"per_page": 2, "cursor": cursor}), "cursor")  # no filter
    assert_invalid(get(client, per_page=2, cursor=cursor, page=2), "cursor")
    assert names(get(client, per_page=5, cursor=cursor)) == NAMES[2:7]  # per_page may change
    with v1.admin() as admin:  # another list's cursor
        for _ in range(2):
            admin.post("/api/v1/session")
        sessions = admin.get("/api/v1/sessions", params={"per_page": 1}).json()["meta"]["next_cursor"]
        assert sessions
        assert_invalid(admin.get("/api/v1/models", params={"cursor": sessions}), "cursor")
