"""`network.allowed_hosts` of persistent sandboxes: egress only through the sandbox's
allow-listing proxy (runtime/egress.py), the list kept when the network is off, and the
proxy and its network made, remade and removed with the sandbox.

The hosts are the test's own: two containers on an internal Docker network this module
creates (no route off the machine), under the aliases `allowed.test` (and `a.lab.test`)
and `blocked.test` (and `b.lab.test`);
the appliance's egress network (setting sandbox_egress_network) is that network."""

from __future__ import annotations

import json
import secrets
import sqlite3

import pytest

from appliance.client import ApplianceClient
from tests.sandbox_support import SERVER_ENV, Sandboxes, container_of, remove_sandbox_containers, sandbox_exec
from tests.support import eventually, start_server

PYTHON_IMAGE = "appliance-runtime-python:bookworm-1"
TEST_LABEL = "appliance.test.egress"
# Each host serves a file naming it over plain HTTP on ports 80 and 443 (a CONNECT tunnel
# carries any bytes: plain HTTP through it shows the tunnel works) and echoes UDP on 5353.
HOST_SCRIPT = """
import http.server, os, socket, socketserver, sys, threading
os.makedirs("/tmp/site", exist_ok=True)
open("/tmp/site/hello.txt", "w").write(sys.argv[1] + "\\n")
os.chdir("/tmp/site")
def udp():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("", 5353))
    while True:
        data, peer = s.recvfrom(512)
        s.sendto(data, peer)
threading.Thread(target=udp, daemon=True).start()
for port in (443, 80):
    server = socketserver.ThreadingTCPServer(("", port), http.server.SimpleHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
threading.Event().wait()
"""

# Run inside the sandbox as its user: what a program there can and cannot reach.
PROBE = """
import json, socket, sys, urllib.error, urllib.request
blocked_ip = sys.argv[1]
out = {}
def fetch(url):
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return [answer.status, answer.read().decode()]
    except urllib.error.HTTPError as exc:
        return [exc.code, exc.read().decode()]
    except Exception as exc:
        return ["error", repr(exc)]
def raw(data, wait=10.0, host="proxy", port=3128):
    try:
        s = socket.create_connection((host, port), timeout=wait)
    except Exception as exc:
        return "connect failed: " + repr(exc)
    s.settimeout(wait)
    s.sendall(data)
    got = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
    except Exception:
        pass
    s.close()
    return got.decode("latin-1")
out["allowed"] = fetch("http://allowed.test/hello.txt")
out["blocked"] = fetch("http://blocked.test/hello.txt")
out["blocked_ip_via_proxy"] = fetch("http://%s/hello.txt" % blocked_ip)
out["allowed_other_port"] = fetch("http://allowed.test:8080/hello.txt")
out["tunnel_allowed"] = raw(b"CONNECT allowed.test:443 HTTP/1.1\\r\\nHost: allowed.test:443\\r\\n\\r\\n"
                            b"GET /hello.txt HTTP/1.0\\r\\nHost: allowed.test\\r\\n\\r\\n")
out["tunnel_blocked"] = raw(b"CONNECT blocked.test:443 HTTP/1.1\\r\\nHost: blocked.test:443\\r\\n\\r\\n"
                            b"GET /hello.txt HTTP/1.0\\r\\n\\r\\n")
out["tunnel_blocked_ip"] = raw(("CONNECT %s:443 HTTP/1.1\\r\\n\\r\\nGET /hello.txt HTTP/1.0\\r\\n\\r\\n"
                                % blocked_ip).encode())
out["fronting"] = raw(b"GET http://allowed.test/hello.txt HTTP/1.1\\r\\nHost: blocked.test\\r\\n\\r\\n")
out["not_http"] = raw(b"\\x16\\x03\\x01\\x00\\xa5\\x01\\x00\\x00\\xa1\\x03\\x03blocked.test\\r\\n\\r\\n")
out["direct_blocked_ip"] = raw(b"GET /hello.txt HTTP/1.0\\r\\n\\r\\n", wait=3, host=blocked_ip, port=80)
try:
    out["resolve_blocked"] = socket.gethostbyname("blocked.test")
except Exception as exc:
    out["resolve_blocked"] = "error: " + repr(exc)
try:
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.settimeout(2)
    u.sendto(b"ping", (blocked_ip, 5353))
    out["udp_blocked_ip"] = u.recvfrom(100)[0].decode()
except Exception as exc:
    out["udp_blocked_ip"] = "error: " + repr(exc)
print(json.dumps(out))
"""


class Lab:
    def __init__(self, network: str, blocked_ip: str, hosts: dict[str, str]) -> None:
        self.network = network
        self.blocked_ip = blocked_ip
        self.hosts = hosts  # alias -> container id


@pytest.fixture(scope="module")
def lab(docker_client, runtime_images):
    """The test's own internal network with the two hosts on it."""
    api = docker_client.api
    token = secrets.token_hex(4)
    network = f"appliance-test-egress-{token}"
    api.create_network(network, driver="bridge", internal=True, labels={TEST_LABEL: token})
    hosts: dict[str, str] = {}
    try:
        for alias, other in (("allowed.test", "a.lab.test"), ("blocked.test", "b.lab.test")):
            container = api.create_container(
                PYTHON_IMAGE,
                command=["python3", "-c", HOST_SCRIPT, f"{alias} says hello"],
                labels={TEST_LABEL: token},
                host_config=api.create_host_config(network_mode=network),
                networking_config=api.create_networking_config(
                    {network: api.create_endpoint_config(aliases=[alias, other])}
                ),
            )["Id"]
            hosts[alias] = container
            api.start(container)
        info = api.inspect_container(hosts["blocked.test"])
        blocked_ip = info["NetworkSettings"]["Networks"][network]["IPAddress"]
        yield Lab(network, blocked_ip, hosts)
    finally:
        for container in hosts.values():
            api.remove_container(container, force=True)
        api.remove_network(network)


@pytest.fixture(scope="module")
def egress_server(lab, tmp_path_factory, docker_client):
    env = {**SERVER_ENV, "APPLIANCE_SANDBOX_EGRESS_NETWORK": lab.network, "APPLIANCE_SANDBOX_RECONCILE_SECONDS": "1"}
    proc = start_server(tmp_path_factory.mktemp("egress-server"), env=env)
    yield proc
    proc.stop()
    remove_sandbox_containers(docker_client, proc.data_dir)


@pytest.fixture
def admin(egress_server):
    with ApplianceClient(egress_server.url, api_key=egress_server.admin_key) as client:
        yield client


def proxy_of(docker_client, sandbox_id: str) -> dict | None:
    items = docker_client.api.containers(all=True, filters={"label": f"appliance.egress.sandbox={sandbox_id}"})
    return docker_client.api.inspect_container(items[0]["Id"]) if items else None


def network_of(docker_client, sandbox_id: str) -> dict | None:
    items = docker_client.api.networks(filters={"label": f"appliance.egress.sandbox={sandbox_id}"})
    return docker_client.api.inspect_network(items[0]["Id"]) if items else None


def probe(docker_client, sandbox_id: str, lab: Lab) -> dict:
    output = sandbox_exec(docker_client, sandbox_id, ["python3", "-c", PROBE, lab.blocked_ip])
    return json.loads(output.strip().splitlines()[-1])


def test_allowed_host_answers_and_nothing_else_gets_through(admin, sandboxes, docker_client, lab):
    sandbox = sandboxes.create(network_enabled=True, allowed_hosts=["Allowed.Test."])
    assert sandbox.network == {"enabled": True, "allowed_hosts": ["allowed.test"]}  # kept canonical
    sandbox_id = sandbox.sandbox_id
    assert admin.get_sandbox(sandbox_id).network == {"enabled": True, "allowed_hosts": ["allowed.test"]}

    # The sandbox is on its internal network only, with the proxy variables.
    info = docker_client.api.inspect_container(container_of(docker_client, sandbox_id))
    internal = f"appliance-{sandbox_id}-egress"
    assert info["HostConfig"]["NetworkMode"] == internal
    assert list(info["NetworkSettings"]["Networks"]) == [internal]
    assert "HTTPS_PROXY=http://proxy:3128" in info["Config"]["Env"] and "NO_PROXY=" in info["Config"]["Env"]
    network = network_of(docker_client, sandbox_id)
    assert network["Name"] == internal and network["Internal"] is True
    # The proxy: on both networks, locked down like a sandbox.
    proxy = proxy_of(docker_client, sandbox_id)
    assert set(proxy["NetworkSettings"]["Networks"]) == {internal, lab.network}
    assert "proxy" in proxy["NetworkSettings"]["Networks"][internal]["Aliases"]
    host = proxy["HostConfig"]
    assert host["ReadonlyRootfs"] and host["CapDrop"] == ["ALL"] and "no-new-privileges" in host["SecurityOpt"]
    assert host["Memory"] > 0 and host["PidsLimit"] > 0 and proxy["Config"]["User"] == "65534:65534"
    assert host["Sysctls"] == {"net.ipv4.ip_forward": "0"}  # it does not route between its networks
    assert proxy["State"]["Status"] == "running"

    seen = probe(docker_client, sandbox_id, lab)
    assert seen["allowed"] == [200, "allowed.test says hello\n"], seen
    assert seen["blocked"][0] == 403 and "allowed_hosts" in seen["blocked"][1], seen
    assert seen["blocked_ip_via_proxy"][0] == 403, seen  # an address is not a listed name
    assert seen["allowed_other_port"][0] == 403, seen  # a bare name allows ports 80 and 443
    assert seen["tunnel_allowed"].startswith("HTTP/1.1 200"), seen
    assert "allowed.test says hello" in seen["tunnel_allowed"], seen
    for refused in ("tunnel_blocked", "tunnel_blocked_ip", "fronting"):
        assert seen[refused].startswith("HTTP/1.1 403"), seen
        assert "says hello" not in seen[refused], seen
    assert seen["not_http"].startswith("HTTP/1.1 400") and "says hello" not in seen["not_http"], seen
    # No way around the proxy: no route, no name, no datagram.
    assert seen["direct_blocked_ip"].startswith("connect failed"), seen
    assert seen["resolve_blocked"].startswith("error"), seen
    assert seen["udp_blocked_ip"].startswith("error"), seen
    # The same datagram from a host on the lab's network is answered: the echo works.
    control = docker_client.api.exec_create(
        lab.hosts["allowed.test"],
        [
            "python3",
            "-c",
            "import socket; u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.settimeout(5); "
            f"u.sendto(b'ping', ('{lab.blocked_ip}', 5353)); print(u.recvfrom(100)[0].decode())",
        ],
    )["Id"]
    assert docker_client.api.exec_start(control).decode().strip() == "ping"


def fetch_in(docker_client, sandbox_id: str, url: str) -> int | str:
    """The status a GET of `url` gets from inside the sandbox (through its proxy)."""
    program = (
        "import sys, urllib.error, urllib.request\n"
        "try:\n    print(urllib.request.urlopen(sys.argv[1], timeout=10).status)\n"
        "except urllib.error.HTTPError as exc:\n    print(exc.code)\n"
        "except Exception as exc:\n    print(repr(exc))\n"
    )
    answer = sandbox_exec(docker_client, sandbox_id, ["python3", "-c", program, url]).strip()
    return int(answer) if answer.isdigit() else answer


def test_ports_and_wildcards(admin, sandboxes, docker_client):
    sandbox_id = sandboxes.create(network_enabled=True, allowed_hosts=["allowed.test:8080", "*.lab.test"]).sandbox_id
    assert admin.get_sandbox(sandbox_id).network.allowed_hosts == ["allowed.test:8080", "*.lab.test"]
    expected = {
        "http://a.lab.test/hello.txt": 200,  # the wildcard covers the names under lab.test
        "http://b.lab.test/hello.txt": 200,
        "http://lab.test/hello.txt": 403,  # not the domain itself
        "http://allowed.test/hello.txt": 403,  # with a port, an entry allows that port only
        "http://allowed.test:8080/hello.txt": 502,  # allowed; nothing listens there
        "http://a.lab.test:8080/hello.txt": 403,  # without one, 80 and 443 only
    }
    assert {url: fetch_in(docker_client, sandbox_id, url) for url in expected} == expected


def test_the_documents_create_example_keeps_the_list_with_no_network(admin, sandboxes, docker_client):
    response = admin.http.post(
        "/api/sandboxes",
        json={
            "name": "my-sandbox",
            "runtime": "python",
            "template": "basic",
            "resources": {"memory_limit": "512M", "cpu_limit": 1.0, "disk_limit": "1G"},
            "network": {"enabled": False, "allowed_hosts": ["api.example.com"]},
            "environment": {"PYTHON_PATH": "/custom/path"},
        },
    )
    assert response.status_code == 201, response.text
    created = response.json()
    sandboxes.created.append(created["sandbox_id"])
    assert created["network"] == {"enabled": False, "allowed_hosts": ["api.example.com"]}
    detail = admin.wait_for_sandbox(created["sandbox_id"])
    assert detail.network == {"enabled": False, "allowed_hosts": ["api.example.com"]}
    info = docker_client.api.inspect_container(container_of(docker_client, created["sandbox_id"]))
    assert info["HostConfig"]["NetworkMode"] == "none"
    assert sandbox_exec(docker_client, created["sandbox_id"], "ls /sys/class/net").split() == ["lo"]
    assert "HTTP_PROXY=http://proxy:3128" not in info["Config"]["Env"]
    assert proxy_of(docker_client, created["sandbox_id"]) is None
    assert network_of(docker_client, created["sandbox_id"]) is None


@pytest.mark.parametrize(
    "network,field,words",
    [
        ({"enabled": True, "allowed_hosts": ["allowed.test"]}, "network.allowed_hosts", ["gvisor", "docker"]),
        ({"enabled": True}, "network.enabled", ["gvisor"]),
    ],
)
def test_gvisor_with_a_network_is_a_400(admin, network, field, words):
    before = admin.list_sandboxes(limit=1000).total
    response = admin.http.post("/api/sandboxes", json={"runtime": "python", "engine": "gvisor", "network": network})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["details"]["field"] == field, error
    for word in words:
        assert word in error["message"].lower(), error
    assert admin.list_sandboxes(limit=1000).total == before


@pytest.mark.parametrize(
    "hosts,words",
    [
        (["bad host!"], ["not a host name"]),
        (["evil.test/path"], ["not a host name"]),
        (["1.2.3"], ["not a host name"]),
        (["*.test", "*.com"], ["wildcard"]),
        (["allowed.test:0"], ["port"]),
        (["allowed.test:70000"], ["port"]),
        (["a" * 300 + ".test"], ["longer than 260"]),
        ([f"h{i}.test" for i in range(65)], ["at most 64"]),
    ],
)
def test_bad_allowed_hosts_are_a_400_naming_the_field(admin, hosts, words):
    before = admin.list_sandboxes(limit=1000).total
    for enabled in (True, False):  # checked whether or not the network is on
        response = admin.http.post(
            "/api/sandboxes", json={"runtime": "python", "network": {"enabled": enabled, "allowed_hosts": hosts}}
        )
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error["code"] == "VALIDATION_ERROR" and error["details"]["field"] == "network.allowed_hosts", error
        assert error["message"].startswith("network.allowed_hosts"), error
        for word in words:
            assert word in error["message"], error
    assert admin.list_sandboxes(limit=1000).total == before


def test_delete_removes_the_proxy_and_the_network(admin, sandboxes, docker_client):
    sandbox_id = sandboxes.create(network_enabled=True, allowed_hosts=["allowed.test"]).sandbox_id
    proxy, network = proxy_of(docker_client, sandbox_id), network_of(docker_client, sandbox_id)
    assert proxy is not None and network is not None
    admin.delete_sandbox(sandbox_id, force=True)
    assert proxy_of(docker_client, sandbox_id) is None and network_of(docker_client, sandbox_id) is None


def test_a_lost_proxy_is_remade_by_the_reconciler(admin, sandboxes, docker_client, lab):
    sandbox_id = sandboxes.create(network_enabled=True, allowed_hosts=["allowed.test"]).sandbox_id
    container = container_of(docker_client, sandbox_id)
    first = proxy_of(docker_client, sandbox_id)["Id"]
    docker_client.api.remove_container(first, force=True)

    def remade() -> bool:
        proxy = proxy_of(docker_client, sandbox_id)
        return proxy is not None and proxy["Id"] != first and proxy["State"]["Status"] == "running"

    eventually(remade, message="the proxy remade")
    assert container_of(docker_client, sandbox_id) == container  # the sandbox itself kept running
    eventually(lambda: admin.get_sandbox(sandbox_id).status == "running", message="running again")
    # A proxy just started may not listen yet: the first probe can find nobody there.
    eventually(
        lambda: probe(docker_client, sandbox_id, lab)["allowed"][0] == 200, message="the allowed host through it"
    )


def test_restore_carries_the_network_setting(admin, sandboxes, docker_client, lab):
    source = sandboxes.create(network_enabled=True, allowed_hosts=["allowed.test"]).sandbox_id
    started = admin.create_snapshot(source, "with-egress")
    snapshot = admin.wait_for_snapshot(source, started.snapshot_id)
    target = sandboxes.create().sandbox_id  # no network
    assert proxy_of(docker_client, target) is None

    kept = admin.restore_snapshot(snapshot.snapshot_id, target, preserve_network=True)
    assert kept.network_enabled is False and kept.allowed_hosts == []
    assert proxy_of(docker_client, target) is None

    outcome = admin.restore_snapshot(snapshot.snapshot_id, target)
    assert outcome.status == "running" and outcome.network_enabled is True
    assert outcome.allowed_hosts == ["allowed.test"] and outcome.warnings == []
    assert admin.get_sandbox(target).network == {"enabled": True, "allowed_hosts": ["allowed.test"]}
    seen = probe(docker_client, target, lab)
    assert seen["allowed"][0] == 200 and seen["blocked"][0] == 403, seen

    # Back to no network: the proxy and its network go.
    offline = sandboxes.create().sandbox_id
    started = admin.create_snapshot(offline, "offline")
    admin.restore_snapshot(admin.wait_for_snapshot(offline, started.snapshot_id).snapshot_id, target)
    assert admin.get_sandbox(target).network == {"enabled": False, "allowed_hosts": []}
    assert proxy_of(docker_client, target) is None and network_of(docker_client, target) is None


def test_leftovers_of_a_deleted_sandbox_are_removed_at_start(fresh_server, docker_client, lab):
    env = {**SERVER_ENV, "APPLIANCE_SANDBOX_EGRESS_NETWORK": lab.network}
    servers = [fresh_server(env=env)]
    data_dir = servers[0].data_dir
    try:
        with ApplianceClient(servers[0].url, api_key=servers[0].admin_key) as client:
            tracker = Sandboxes(client)
            kept = tracker.create(network_enabled=True, allowed_hosts=["allowed.test"]).sandbox_id
            gone = tracker.create(network_enabled=True, allowed_hosts=["allowed.test"]).sandbox_id
        servers[0].stop()
        # As if the appliance had stopped midway through deleting `gone`: its container
        # and row are gone, its proxy and network are not.
        docker_client.api.remove_container(container_of(docker_client, gone), force=True)
        with sqlite3.connect(data_dir / "appliance.db") as conn:
            conn.execute("DELETE FROM sandboxes WHERE sandbox_id = ?", (gone,))
        assert proxy_of(docker_client, gone) is not None and network_of(docker_client, gone) is not None

        servers.append(fresh_server(env=env, data_dir=data_dir))
        eventually(lambda: proxy_of(docker_client, gone) is None, message="the stray proxy removed")
        eventually(lambda: network_of(docker_client, gone) is None, message="the stray network removed")
        assert proxy_of(docker_client, kept)["State"]["Status"] == "running"
        with ApplianceClient(servers[1].url, api_key=servers[1].admin_key) as client:
            assert client.get_sandbox(kept).status == "running"
    finally:
        for server in servers:
            server.stop()
        remove_sandbox_containers(docker_client, data_dir)
