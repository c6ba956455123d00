"""One look at a Docker engine for `appliance doctor`: what `docker info` says, which
images are there, and whether a container with the sandbox profile starts on a runtime.

Unlike `DockerEngine`, which serves the running appliance, this connects with a short
timeout and no thread pool: a doctor that hangs on an engine that never answers helps
nobody. Every method blocks. Failures are answers here (a reason string), not exceptions.
"""

from __future__ import annotations

import contextlib
import os
import time
from typing import Any

import docker
import docker.errors
import requests.exceptions

from appliance.runtime.images import missing_images
from appliance.runtime.limits import SANDBOX_USER, SandboxLimits, container_options

DEFAULT_DOCKER_SOCKET = "unix:///var/run/docker.sock"
PROBE_LABEL = "appliance.doctor"


class EngineProbe:
    """What one `docker info` said, or why the engine did not answer."""

    def __init__(self, address: str, *, timeout: float) -> None:
        """`address`: the setting docker_host; empty means as `DockerEngine` connects: the
        environment (DOCKER_HOST and its TLS variables), else the local socket."""
        self.configured = bool(address)
        self.address = address or os.environ.get("DOCKER_HOST") or DEFAULT_DOCKER_SOCKET
        self._client: docker.DockerClient | None = None
        self.info: dict[str, Any] = {}
        self.error: str | None = None
        self.asked_at = self.answered_at = 0.0  # wall clock around `docker info`
        try:
            self._client = (
                docker.DockerClient(base_url=self.address, version="auto", timeout=timeout)
                if self.configured
                else docker.from_env(version="auto", timeout=timeout)
            )
            self.asked_at = time.time()
            self.info = self._client.api.info()
            self.answered_at = time.time()
        except (docker.errors.DockerException, requests.exceptions.RequestException, OSError) as exc:
            self.error = str(exc)
            self.close()

    @property
    def reachable(self) -> bool:
        return self.error is None

    @property
    def local(self) -> bool:
        return self.address.startswith("unix://")

    @property
    def api_version(self) -> str:
        return self._client.api.api_version if self._client else "?"

    def first_image(self, refs: list[str]) -> str | None:
        """The first of `refs` the engine has."""
        if self._client is None:
            return None
        for ref in refs:
            try:
                self._client.api.inspect_image(ref)
                return ref
            except docker.errors.ImageNotFound:
                continue
        return None

    def missing_images(self) -> list[str]:
        """Keys of the runtime images the engine lacks (all of them when it does not answer)."""
        if self._client is None:
            raise RuntimeError("the engine does not answer")
        return missing_images(self._client)

    def run_true(self, limits: SandboxLimits, engine: str, image: str, timeout: float) -> tuple[str | None, float]:
        """Start `true` in a container with the sandbox profile (no network, read-only,
        all capabilities dropped, the limits) on `engine`: (why it failed or None, seconds
        it took). The profile is the real one, so a runtime that cannot enforce it shows here."""
        if self._client is None:
            return "the engine does not answer", 0.0
        api = self._client.api
        started = time.monotonic()
        container_id = None
        try:
            host_config = api.create_host_config(**container_options(limits, engine=engine))
            config = api.create_container_config(
                image,
                ["/bin/true"],
                user=SANDBOX_USER,
                working_dir="/work",
                network_disabled=True,
                host_config=host_config,
                labels={PROBE_LABEL: "probe"},
            )
            container_id = api.create_container_from_config(config)["Id"]
            api.start(container_id)
            result = api.wait(container_id, timeout=timeout)
            if result.get("StatusCode") != 0:
                return f"the probe container exited {result.get('StatusCode')} ({result.get('Error')})", 0.0
            return None, time.monotonic() - started
        except docker.errors.APIError as exc:
            return " ".join(str(exc.explanation or exc).split()), 0.0
        except requests.exceptions.RequestException:
            return f"the probe container did not finish within {timeout:g} s", 0.0
        finally:
            if container_id is not None:
                with contextlib.suppress(docker.errors.APIError):
                    api.remove_container(container_id, force=True)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
