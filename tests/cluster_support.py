"""A Ray cluster on loopback for the cluster-mode tests: a head and nodes, each node with
its own Docker engine (an extra dockerd: its own socket, data root, exec root and
pidfile, no bridge, no iptables, in a network namespace of its own), the python runtime
image loaded from a tarball saved from the machine's engine, as an offline bundle carries it.

Every Ray process binds 127.0.0.1 only: `ray start` turns 127.0.0.1 into the machine's
address, so the processes come up through `ray.cluster_utils.Cluster` with
RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 (Ray then binds its gRPC servers to loopback);
`listeners_outside_loopback` checks it with `ss`.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from appliance.runtime.images import image_ref
from tests.support import ROOT, eventually

RAY_ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
    "RAY_AUTH_MODE": "token",
    "RAY_AUTH_TOKEN": secrets.token_hex(16),
}
if importlib.util.find_spec("ray") is None:
    pytest.skip("cluster mode needs Ray: pip install -e '.[cluster]'", allow_module_level=True)

# Ray reads its auth mode when imported: the test process (which starts the cluster's
# processes) has them from before then; LoopbackCluster.shutdown puts them back.
_SAVED_ENV = {key: os.environ.get(key) for key in RAY_ENV}
os.environ.update(RAY_ENV)

import ray.cluster_utils as cluster_utils  # noqa: E402 - after the environment above

PYTHON_IMAGE = image_ref("python")
IMAGE_TARBALL = Path("/tmp/appliance-cluster-test-python.tar")


class NodeEngine:
    """An extra dockerd for one node."""

    def __init__(self, root: Path, gvisor: bool) -> None:
        self.root = root
        self.socket = root / "docker.sock"
        self.url = f"unix://{self.socket}"
        root.mkdir(parents=True, exist_ok=True)
        # Its own network namespace: a dockerd started with --bridge=none deletes the
        # host's docker0 (the machine's engine then cannot start a networked container).
        args = [
            "unshare",
            "--net",
            "--",
            "dockerd",
            "--host",
            self.url,
            "--data-root",
            str(root / "data"),
            "--exec-root",
            str(root / "exec"),
            "--pidfile",
            str(root / "docker.pid"),
            "--bridge=none",
            "--iptables=false",
            "--ip-masq=false",
        ]
        if gvisor:
            args += ["--add-runtime", "runsc=/usr/bin/runsc"]
        self.log = open(root / "dockerd.log", "ab")  # noqa: SIM115 - open while the engine runs
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT)
        eventually(self._answers, timeout=60, message=lambda: (root / "dockerd.log").read_text()[-2000:])

    def docker(self, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(["docker", "-H", self.url, *args], check=True, capture_output=True, **kwargs)

    def _answers(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"dockerd exited: {(self.root / 'dockerd.log').read_text()[-2000:]}")
        return subprocess.run(["docker", "-H", self.url, "version"], capture_output=True).returncode == 0

    def load(self, tarball: Path) -> None:
        with open(tarball, "rb") as f:
            self.docker("load", stdin=f)

    def stop(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            ids = self.docker("ps", "-aq").stdout.split()
            if ids:
                self.docker("rm", "-f", *[i.decode() for i in ids])
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self.log.close()
        shutil.rmtree(self.root, ignore_errors=True)


def image_tarball() -> Path:
    """The python runtime image as a tarball (what the offline bundle ships)."""
    if not IMAGE_TARBALL.exists():
        partial = IMAGE_TARBALL.with_suffix(".part")
        subprocess.run(["docker", "save", "-o", str(partial), PYTHON_IMAGE], check=True)
        partial.rename(IMAGE_TARBALL)
    return IMAGE_TARBALL


class LoopbackCluster:
    def __init__(self, root: Path) -> None:
        self.root = root
        # Ray's session files go under /tmp/ray (a short path: its sockets live there).
        Path("/tmp/ray").mkdir(exist_ok=True)
        os.environ.update(RAY_ENV)
        self.cluster = cluster_utils.Cluster(
            initialize_head=True,
            connect=False,
            head_node_args={
                "num_cpus": 1,
                "node_ip_address": "127.0.0.1",
                "include_dashboard": False,
                # A node that stops answering is declared dead in about 2 s, not 30.
                "_system_config": {"health_check_period_ms": 500, "health_check_failure_threshold": 4},
            },
        )
        self.address: str = self.cluster.address
        self.ray_nodes: dict[str, Any] = {}
        self.engines: dict[str, NodeEngine] = {}

    def env(self) -> dict[str, str]:
        return {**os.environ, **RAY_ENV, "PYTHONUNBUFFERED": "1"}

    def add_node(self, name: str, slots: str = "docker=2", gvisor: bool = False) -> str:
        """A Ray node with its own dockerd, and `appliance node start` pinned to it."""
        engine = self.engines.get(name) or NodeEngine(self.root / f"d-{name}", gvisor)
        if name not in self.engines:
            engine.load(image_tarball())
            self.engines[name] = engine
        ray_node = self.cluster.add_node(num_cpus=1, node_ip_address="127.0.0.1")
        self.cluster.wait_for_nodes()
        self.ray_nodes[name] = ray_node
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "appliance",
                "node",
                "start",
                "--data-dir",
                str(self.root / f"node-{name}"),
                "--cluster",
                self.address,
                "--name",
                name,
                "--slots",
                slots,
                "--docker-host",
                engine.url,
                "--ray-node-id",
                ray_node.node_id,
            ],
            capture_output=True,
            text=True,
            env=self.env(),
            cwd=ROOT,
            timeout=180,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    def kill_node(self, name: str) -> None:
        """The machine dies: its raylet and workers go at once (SIGKILL)."""
        self.cluster.remove_node(self.ray_nodes.pop(name), allow_graceful=False)

    def shutdown(self) -> None:
        self.cluster.shutdown()
        for engine in self.engines.values():
            engine.stop()
        for key, value in _SAVED_ENV.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def ray_pids() -> set[int]:
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    pids = set()
    for line in out.splitlines()[1:]:
        pid, _, args = line.strip().partition(" ")
        if "ray" in args and str(pid) != str(os.getpid()):
            pids.add(int(pid))
    return pids


def listeners_outside_loopback(pids: set[int]) -> list[str]:
    """Listening TCP sockets of these processes bound to anything but 127.0.0.0/8."""
    out = subprocess.run(["ss", "-Htlnp"], capture_output=True, text=True, check=True).stdout
    bad = []
    for line in out.splitlines():
        fields = line.split()
        local = fields[3]
        owners = {int(p) for p in _pids_in(line)}
        if not owners & pids:
            continue
        host = local.rsplit(":", 1)[0].strip("[]").removeprefix("::ffff:")
        if not host.startswith("127."):
            bad.append(line)
    return bad


def _pids_in(line: str) -> Iterator[str]:
    for part in line.split("pid=")[1:]:
        yield part.split(",", 1)[0]


def wait_until(predicate: Any, timeout: float, message: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(message)
