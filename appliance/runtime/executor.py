"""Runs one piece of code in one fresh, locked-down container.

The container's shell first copies its stdin into the source file, then runs the
language's command; the code is handed in over an attach socket, so nothing is written
to the host's disk and no exec call is needed. The wall-clock limit is enforced from
outside: when it passes, the container is killed. A container is never reused.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from typing import Callable

import docker.errors
import msgspec

from appliance.core.evaluations import ExecutionOutcome
from appliance.core.languages import WORK_DIR
from appliance.runtime.engine import INSTANCE_LABEL, MANAGED_LABEL, DockerEngine
from appliance.runtime.limits import SANDBOX_USER, SandboxLimits, container_options
from appliance.runtime.streams import STDERR, STDOUT, CappedOutput, FrameParser

log = logging.getLogger(__name__)

# A program that keeps writing after its output is truncated is killed once it has
# written this many times the limit: draining a flood forever only burns CPU.
FLOOD_FACTOR = 16
# How long to wait for the attach stream to close after a kill.
KILL_GRACE_SECONDS = 5.0

OutputCallback = Callable[[str, str], None]  # (stream name, text)


class ExecutionRequest(msgspec.Struct, kw_only=True):
    image: str
    source_file: str
    run: str
    code: str
    timeout: float
    limits: SandboxLimits
    engine: str = "docker"
    labels: dict[str, str] = {}
    environment: dict[str, str] = {}


class ExecutionHandle:
    """Lets another task kill an execution that may not have a container yet."""

    def __init__(self) -> None:
        self.container_id: str | None = None
        self.killed = False
        self._lock = threading.Lock()

    def attach(self, container_id: str) -> bool:
        with self._lock:
            self.container_id = container_id
            return not self.killed

    def request_kill(self) -> str | None:
        """Mark killed; returns the container to kill now, if there is one."""
        with self._lock:
            self.killed = True
            return self.container_id


class ContainerExecutor:
    def __init__(self, engine: DockerEngine, instance_id: str) -> None:
        self._engine = engine
        self._instance_id = instance_id
        self._removals: set[asyncio.Task] = set()

    async def run(
        self, request: ExecutionRequest, handle: ExecutionHandle, on_output: OutputCallback
    ) -> ExecutionOutcome:
        loop = asyncio.get_running_loop()

        def emit(stream: str, text: str) -> None:
            loop.call_soon_threadsafe(on_output, stream, text)

        container_id: str | None = None
        try:
            container_id = await self._engine.call(self._create, request)
            if not handle.attach(container_id):
                return ExecutionOutcome(exit_code=None, stdout="", stderr="", killed=True)
            return await self._engine.call(self._execute, container_id, request, handle, emit)
        finally:
            if container_id is not None:
                task = asyncio.create_task(self._engine.call(self._remove, container_id))
                self._removals.add(task)
                task.add_done_callback(self._removals.discard)

    async def kill(self, handle: ExecutionHandle) -> None:
        container_id = handle.request_kill()
        if container_id is not None:
            await self._engine.call(self._kill, container_id)

    async def drain(self) -> None:
        """Wait for pending container removals (at shutdown)."""
        if self._removals:
            await asyncio.gather(*self._removals, return_exceptions=True)

    # --- synchronous parts, run on the engine's threads -------------------------------

    def _create(self, request: ExecutionRequest) -> str:
        api = self._engine.api
        script = f"cat > {request.source_file} && {request.run}"
        host_config = api.create_host_config(**container_options(request.limits, engine=request.engine))
        env = {"HOME": WORK_DIR, "TMPDIR": "/tmp", "LANG": "C.UTF-8",
               "PATH": "/usr/local/bin:/usr/bin:/bin", **request.environment}
        labels = {MANAGED_LABEL: "true", INSTANCE_LABEL: self._instance_id, **request.labels}
        created = api.create_container(
            request.image,
            command=["/bin/sh", "-c", script],
            user=SANDBOX_USER,
            working_dir=WORK_DIR,
            stdin_open=True,
            environment=env,
            labels=labels,
            network_disabled=not request.limits.network,
            host_config=host_config,
        )
        container_id = created["Id"]
        api.start(container_id)
        return container_id

    def _execute(
        self, container_id: str, request: ExecutionRequest, handle: ExecutionHandle,
        emit: OutputCallback,
    ) -> ExecutionOutcome:
        api = self._engine.api
        limit = request.limits.output_bytes
        outputs = {STDOUT: CappedOutput(limit), STDERR: CappedOutput(limit)}
        names = {STDOUT: "stdout", STDERR: "stderr"}
        attached = api.attach_socket(
            container_id, params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1}
        )
        sock: socket.socket = getattr(attached, "_sock", attached)
        started = time.monotonic()
        deadline = started + request.timeout
        timed_out = flooded = False
        kill_sent_at: float | None = None
        try:
            sock.sendall(request.code.encode())
            sock.shutdown(socket.SHUT_WR)
            parser = FrameParser()
            while True:
                now = time.monotonic()
                if kill_sent_at is None and (now >= deadline or handle.killed or flooded):
                    timed_out = now >= deadline and not handle.killed and not flooded
                    # From another thread, while this one keeps draining: the engine does
                    # not finish a kill until the container's output is consumed, so a
                    # kill sent from the reading thread deadlocks on a flood.
                    threading.Thread(target=self._kill, args=(container_id,), daemon=True).start()
                    kill_sent_at = now
                if kill_sent_at is not None and now - kill_sent_at > KILL_GRACE_SECONDS:
                    break
                wait = (kill_sent_at + KILL_GRACE_SECONDS if kill_sent_at else deadline) - now
                # Wake at least every half second to notice a kill request.
                sock.settimeout(max(0.01, min(wait, 0.5)))
                try:
                    data = sock.recv(65536)
                except socket.timeout:
                    continue
                if not data:
                    break
                for stream, payload in parser.feed(data):
                    sink = outputs.get(stream)
                    if sink is None:
                        continue
                    text = sink.add(payload)
                    if text:
                        emit(names[stream], text)
                if sum(o.total for o in outputs.values()) > FLOOD_FACTOR * limit * 2:
                    flooded = True
        finally:
            attached.close()
        elapsed = time.monotonic() - started
        exit_code, oom = self._wait_exit(container_id)
        return ExecutionOutcome(
            exit_code=exit_code,
            stdout=outputs[STDOUT].text(),
            stderr=outputs[STDERR].text(),
            stdout_truncated=outputs[STDOUT].truncated,
            stderr_truncated=outputs[STDERR].truncated,
            timed_out=timed_out,
            killed=handle.killed,
            flooded=flooded,
            oom_killed=oom,
            execution_time=round(elapsed, 6),
        )

    def _wait_exit(self, container_id: str) -> tuple[int | None, bool]:
        api = self._engine.api
        try:
            result = api.wait(container_id, timeout=KILL_GRACE_SECONDS)
        except Exception:  # the engine did not report an exit in time: make sure it dies
            self._kill(container_id)
            return None, False
        state = api.inspect_container(container_id)["State"]
        return result.get("StatusCode"), bool(state.get("OOMKilled"))

    def _kill(self, container_id: str) -> None:
        try:
            self._engine.api.kill(container_id)
        except docker.errors.APIError:
            pass  # already exited or gone

    def _remove(self, container_id: str) -> None:
        try:
            self._engine.api.remove_container(container_id, force=True)
        except docker.errors.NotFound:
            pass
        except docker.errors.APIError as exc:
            log.warning("could not remove container %s: %s", container_id[:12], exc)
