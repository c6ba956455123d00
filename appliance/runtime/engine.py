"""The Docker engine connection, the threads its synchronous SDK runs on, and the
errors the rest of the appliance sees from it.

The docker SDK blocks, so every call goes through `DockerEngine.call`, which runs it on
a dedicated thread pool: the event loop never waits on Docker, and executions do not
compete with other `asyncio.to_thread` users for the default pool.

The SDK (docker, and requests beneath it) stays inside `runtime`: `call` turns what it
raises into `EngineError` and its kinds, which the services catch.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import docker
import docker.errors
import requests.exceptions

from appliance.runtime.container_setup import INSTANCE_LABEL
from appliance.runtime.engine_http import EngineHTTP

log = logging.getLogger(__name__)

T = TypeVar("T")

ENGINE_MISSING_HELP = (
    "no Docker engine answers. On Debian as root: apt-get install -y docker.io && "
    "(systemctl start docker || dockerd &). Elsewhere install Docker Engine from your "
    "distribution's packages, start it, and make sure this user may use its socket "
    "(root, or a member of the 'docker' group)."
)


def gvisor_missing_help(runtime: str) -> str:
    """What an administrator does when dockerd has no gVisor runtime of that name."""
    return (
        f'the Docker engine has no runtime named {runtime!r}, so engine "gvisor" cannot run. '
        "An administrator must install gVisor's runsc (Debian: apt-get install -y runsc) and "
        "run scripts/setup.sh, which registers it with Docker (setting gvisor_runtime names it)"
    )


class EngineError(Exception):
    """The engine refused or failed a request; the message is its explanation."""


class EngineUnavailable(EngineError):
    """No engine answers (not running, no permission on its socket, timed out)."""


class ContainerNotFound(EngineError):
    """The container is gone."""


class ImageMissing(EngineError):
    """The image is not on the engine."""


def engine_error(exc: BaseException) -> EngineError | None:
    """Ours for an exception of the docker SDK (or of requests beneath it); None for any other."""
    if isinstance(exc, EngineError):
        return exc
    if isinstance(exc, docker.errors.APIError):
        explanation = " ".join(str(exc.explanation or exc).split())
        if isinstance(exc, docker.errors.ImageNotFound):
            return ImageMissing(explanation)
        if isinstance(exc, docker.errors.NotFound):
            return ContainerNotFound(explanation)
        return EngineError(explanation)
    message = str(exc) or type(exc).__name__
    if isinstance(exc, (requests.exceptions.ConnectionError, requests.exceptions.Timeout)):
        return EngineUnavailable(message)
    if type(exc) is docker.errors.DockerException:  # what the SDK raises when it cannot connect
        return EngineUnavailable(message)
    if isinstance(exc, (docker.errors.DockerException, requests.exceptions.RequestException)):
        return EngineError(message)
    return None


@contextlib.contextmanager
def engine_errors() -> Iterator[None]:
    """Raise `EngineError`s instead of the SDK's exceptions within."""
    try:
        yield
    except Exception as exc:
        ours = engine_error(exc)
        if ours is None or ours is exc:
            raise
        raise ours from exc


def _translated(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    with engine_errors():
        return fn(*args, **kwargs)


class DockerEngine:
    def __init__(self, *, base_url: str = "", threads: int = 32) -> None:
        self._base_url = base_url
        self._threads = threads
        self._http: EngineHTTP | None = None
        self._client: docker.DockerClient | None = None
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="docker")
        # The label value that marks this installation's containers (the data dir's
        # instance id); set once the database is open, before any container is made.
        self.instance_id = ""

    @property
    def client(self) -> docker.DockerClient:
        if self._client is None:
            try:
                if self._base_url:
                    self._client = docker.DockerClient(
                        base_url=self._base_url, version="auto", max_pool_size=self._threads
                    )
                else:
                    # One connection per thread: with the SDK's default of 10, busy
                    # threads queue for a connection, and a health ping waits behind them.
                    self._client = docker.from_env(version="auto", max_pool_size=self._threads)
            except docker.errors.DockerException as exc:
                raise EngineUnavailable(f"{ENGINE_MISSING_HELP} ({exc})") from exc
        return self._client

    @property
    def api(self) -> docker.APIClient:
        return self.client.api

    @property
    def http(self) -> EngineHTTP | None:
        """The lean client for the calls on every execution's path, where it applies."""
        if self._http is None and EngineHTTP.supports(self._base_url):
            self._http = EngineHTTP(self._base_url, self.api._version)
        return self._http

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """`fn(*args, **kwargs)` on the engine's threads; the SDK's errors come out as `EngineError`s."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(_translated, fn, *args, **kwargs))

    def ping(self) -> bool:
        try:
            return bool(self.client.ping())
        except (EngineUnavailable, docker.errors.DockerException, OSError):
            self._client = None
            return False

    def runtimes(self) -> set[str]:
        """The OCI runtimes dockerd has registered ("runc", and "runsc" once set up)."""
        return set(self.api.info().get("Runtimes") or {})

    def has_runtime(self, name: str) -> bool | None:
        """Whether dockerd has a runtime of that name; None when the engine does not answer."""
        try:
            return name in self.runtimes()
        except (EngineUnavailable, docker.errors.DockerException, OSError):
            self._client = None
            return None

    def image_present(self, ref: str) -> bool:
        try:
            self.api.inspect_image(ref)
            return True
        except docker.errors.ImageNotFound:
            return False

    def kill(self, container_id: str) -> None:
        """SIGKILL; a container that already exited or is gone is no error."""
        with contextlib.suppress(docker.errors.APIError):
            self.api.kill(container_id)

    def remove(self, container_id: str) -> bool:
        """Kill and remove; False when it was gone already or the engine is removing it
        itself (an auto-removed sandbox that just ended)."""
        try:
            self.api.remove_container(container_id, force=True)
            return True
        except docker.errors.NotFound:
            return False
        except docker.errors.APIError as exc:
            if "already in progress" in str(exc):
                return False
            log.warning("could not remove container %s: %s", container_id[:12], exc)
            return False

    def update_resources(self, container_id: str, memory_bytes: int, cpus: float) -> None:
        """`docker update --memory --memory-swap --cpus` on a running container (runc only:
        gVisor's runsc has no update). Not the SDK's update_container: it cannot set
        NanoCpus, and the engine refuses a CpuQuota on a container made with NanoCpus, so
        the endpoint is called through the SDK's own (private) request helpers."""
        api = self.api
        body = {"Memory": memory_bytes, "MemorySwap": memory_bytes, "NanoCpus": int(cpus * 1e9)}
        api._raise_for_status(api._post_json(api._url("/containers/{0}/update", container_id), data=body))

    def remove_instance_containers(self) -> int:
        """Remove every container this installation left behind (crash, kill -9)."""
        items = self.api.containers(all=True, filters={"label": f"{INSTANCE_LABEL}={self.instance_id}"})
        return sum(self.remove(item["Id"]) for item in items)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        if self._client is not None:
            self._client.close()
            self._client = None
