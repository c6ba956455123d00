"""One sandbox container: made ready ahead of time, used for one execution, destroyed.

`create` makes the locked-down container with its runner (see `runners`) as PID 1,
attaches to its stdin/stdout/stderr and starts it: from then on the runner waits for
code. `execute` hands the payload in, streams the output, enforces the wall-clock limit
from outside, and reads the cgroup before the container goes. `destroy` removes it. All
three block and run on the engine's threads.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import logging
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import docker.errors
import msgspec

from appliance.core.evaluations import CreatedFile, ExecutionOutcome
from appliance.core.languages import LANGUAGES, WORK_DIR
from appliance.runtime import cgroups
from appliance.runtime.collect import CollectOutcome, CollectSpec, collect_files
from appliance.runtime.container_setup import ENGINE_LABEL, LANGUAGE_LABEL, container_environment, ephemeral_labels
from appliance.runtime.engine import DockerEngine
from appliance.runtime.limits import SANDBOX_USER, SandboxLimits, container_options, flood_bytes
from appliance.runtime.runners import build_payload, new_nonce, runner_command
from appliance.runtime.streams import STDERR, STDOUT, CappedOutput, FrameParser, StreamedOutput, TrailerScanner

log = logging.getLogger(__name__)

# How long to wait for the attach stream to close after a kill.
KILL_GRACE_SECONDS = 10.0
# Output held back as a possible trailer start (a line's final newline) goes out after
# the stream has been quiet this long, so a streamed line arrives whole.
QUIET_RELEASE_SECONDS = 0.05
# What the outcome of a streamed execution keeps of each stream (its end, for an error
# message): the caller has had all of it already.
STREAMED_TAIL_BYTES = 64 * 1024
# SIGXFSZ: the program wrote a file past the file-size rlimit.
EXIT_FILE_TOO_LARGE = 128 + 25

OutputCallback = Callable[[str, str], None]  # (stream name, text)


class SandboxSpec(msgspec.Struct, frozen=True, kw_only=True):
    """Everything a container is made with; containers of one spec are interchangeable."""

    image: str
    language: str
    engine: str = "docker"
    limits: SandboxLimits = SandboxLimits()
    environment: tuple[tuple[str, str], ...] = ()
    # What the container is for, when not interactive work: experiment runs ("run")
    # get containers made for them and never take the warm ones an evaluation waits for.
    purpose: str = ""


class SandboxBroken(Exception):
    """The container died before it took the payload (engine restart, reaped)."""


class Sandbox:
    def __init__(
        self, spec: SandboxSpec, container_id: str, attached: Any, nonce: str, cgroup: cgroups.CgroupPaths | None
    ) -> None:
        self.spec = spec
        self.container_id = container_id
        self.attached = attached
        self.sock: socket.socket = getattr(attached, "_sock", attached)
        self.nonce = nonce
        self.cgroup = cgroup
        self.ready_at = time.monotonic()
        # Its runner reported and exited, and the engine auto-removes it.
        self.ended_itself = False


class ExecutionHandle:
    """Lets another task kill an execution that may not have a container yet."""

    def __init__(self) -> None:
        self.container_id: str | None = None
        self.killed = False
        self._lock = threading.Lock()
        # Set by a caller that marks the run started only once it has its slot (cluster
        # mode: a node's); an executor that waits for slots awaits `placed` then.
        self.on_placed: Callable[[], Awaitable[bool]] | None = None

    async def placed(self) -> bool:
        """The run has its slot: tell the caller, once. False: it must not run."""
        hook, self.on_placed = self.on_placed, None
        return True if hook is None else await hook()

    def attach(self, container_id: str) -> bool:
        with self._lock:
            self.container_id = container_id
            return not self.killed

    def request_kill(self) -> str | None:
        """Mark killed; returns the container to kill now, if there is one."""
        with self._lock:
            self.killed = True
            return self.container_id


def create(engine: DockerEngine, spec: SandboxSpec) -> Sandbox:
    api = engine.api
    language = LANGUAGES[spec.language]
    # Under runc the runner reports its own cgroup and exits, and the engine removes the
    # container: no kill and no remove call per execution. gVisor hides the cgroup from
    # the runner, so there the host reads it and destroys the container.
    self_report = spec.engine != "gvisor"
    host_config = api.create_host_config(**container_options(spec.limits, engine=spec.engine), auto_remove=self_report)
    env = container_environment(WORK_DIR, dict(spec.environment))
    labels = ephemeral_labels(engine.instance_id, {LANGUAGE_LABEL: spec.language, ENGINE_LABEL: spec.engine})
    config = api.create_container_config(
        spec.image,
        runner_command(
            language,
            spec.limits.file_size_mb * 1024 * 1024,
            spec.limits.pids,
            poll_pids=not self_report,
            self_report=self_report,
        ),
        user=SANDBOX_USER,
        working_dir=WORK_DIR,
        stdin_open=True,
        environment=env,
        labels=labels,
        network_disabled=not spec.limits.network,
        host_config=host_config,
    )
    lean = engine.http
    container_id = lean.create(config) if lean else api.create_container_from_config(config)["Id"]
    try:
        # Attached before it starts, so not a byte of output is missed and a request
        # pays for no attach round trip.
        if lean:
            attached = lean.attach(container_id)
            lean.start(container_id)
        else:
            attached = api.attach_socket(container_id, params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1})
            api.start(container_id)
    except BaseException:
        engine.remove(container_id)
        raise
    return Sandbox(spec, container_id, attached, new_nonce(), cgroups.locate(container_id))


def destroy(engine: DockerEngine, sandbox: Sandbox) -> None:
    with contextlib.suppress(OSError):
        sandbox.attached.close()
    if not sandbox.ended_itself:  # the engine removes a container that ended by itself
        engine.remove(sandbox.container_id)


def resize(engine: DockerEngine, sandbox: Sandbox, spec: SandboxSpec) -> None:
    """Give a warm container another memory and CPU limit (`docker update`), so a request
    with its own limits need not wait for a container made for it. runc only: runsc has
    no `update`. Everything else in `spec` must equal the container's."""
    engine.update_resources(sandbox.container_id, spec.limits.memory_mb * 1024 * 1024, spec.limits.cpus)
    sandbox.spec = spec


def execute(
    engine: DockerEngine,
    sandbox: Sandbox,
    code: str,
    files: dict[str, str] | None,
    timeout: float,
    handle: ExecutionHandle,
    emit: OutputCallback,
    environment: dict[str, str] | None = None,
    list_files: bool = False,
    *,
    stream_output: bool = False,
    max_output_bytes: int | None = None,
    collect: CollectSpec | None = None,
) -> ExecutionOutcome:
    """`stream_output`: every byte of output goes to `emit` and the outcome keeps only the
    last `STREAMED_TAIL_BYTES` of each stream; `max_output_bytes` replaces the flood limit (both
    streams together). `collect`: when the program ended by itself, copy those files out
    of the work dir before the container goes."""
    language = LANGUAGES[sandbox.spec.language]
    limit = sandbox.spec.limits.output_bytes
    flood_at = max_output_bytes if max_output_bytes is not None else flood_bytes(limit)
    outputs: dict[int, CappedOutput | StreamedOutput] = (
        {
            STDOUT: StreamedOutput(min(limit, STREAMED_TAIL_BYTES)),
            STDERR: StreamedOutput(min(limit, STREAMED_TAIL_BYTES)),
        }
        if stream_output
        else {STDOUT: CappedOutput(limit), STDERR: CappedOutput(limit)}
    )
    names = {STDOUT: "stdout", STDERR: "stderr"}
    trailers = {STDOUT: TrailerScanner(sandbox.nonce), STDERR: TrailerScanner(sandbox.nonce)}
    sock = sandbox.sock
    try:
        payload = build_payload(
            language, sandbox.nonce, code, files, environment, list_files=list_files, keep=collect is not None
        )
        sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)
    except OSError as exc:
        raise SandboxBroken(f"the sandbox container did not take the program: {exc}") from exc
    started = time.monotonic()
    deadline = started + timeout
    timed_out = flooded = False
    kill_sent_at: float | None = None
    usage: cgroups.CgroupUsage | None = None
    parser = FrameParser()

    def keep(stream: int, payload: bytes) -> None:
        if payload:
            text = outputs[stream].add(payload)
            if text:
                emit(names[stream], text)

    while not all(t.done for t in trailers.values()):
        now = time.monotonic()
        if kill_sent_at is None and (now >= deadline or handle.killed or flooded):
            timed_out = now >= deadline and not handle.killed and not flooded
            usage = cgroups.read_usage(sandbox.cgroup)  # while the cgroup still exists
            # From another thread, while this one keeps draining: the engine does not
            # finish a kill until the container's output is consumed, so a kill sent
            # from the reading thread deadlocks on a flood.
            threading.Thread(target=engine.kill, args=(sandbox.container_id,), daemon=True).start()
            kill_sent_at = now
        if kill_sent_at is not None and now - kill_sent_at > KILL_GRACE_SECONDS:
            break
        wait = (kill_sent_at + KILL_GRACE_SECONDS if kill_sent_at else deadline) - now
        holding = any(t.holding for t in trailers.values())
        # Wake at least every half second to notice a kill request.
        sock.settimeout(max(0.01, min(wait, QUIET_RELEASE_SECONDS if holding else 0.5)))
        try:
            data = sock.recv(65536)
        except TimeoutError:
            if holding:
                for stream, scanner in trailers.items():
                    keep(stream, scanner.release())
            continue
        except OSError:
            break
        if not data:
            break
        for stream, payload in parser.feed(data):
            if stream in trailers:
                keep(stream, trailers[stream].feed(payload))
        if sum(o.total for o in outputs.values()) > flood_at:
            flooded = True
    elapsed = time.monotonic() - started
    disk_full = file_too_large = pids_hit = False
    created: list[CreatedFile] | None = None
    if all(t.done for t in trailers.values()) and kill_sent_at is None:
        fields = trailers[STDERR].fields or []
        listing = [f for f in fields if f.startswith("files=")]
        if listing:
            fields = [f for f in fields if not f.startswith("files=")]
            created = _created_files(listing[0][len("files=") :])
        if len(fields) >= 7:  # the runner read its cgroup (and exits, unless kept for `collect`)
            peak = int(fields[4]) if fields[4].isdigit() else None
            usage = cgroups.CgroupUsage(
                memory_peak=peak, oom_kills=int(fields[5] or 0), pids_limit_hits=int(fields[6] or 0)
            )
            sandbox.ended_itself = collect is None
        else:
            usage = cgroups.read_usage(sandbox.cgroup)
        exit_code = int(fields[0]) if fields and fields[0].lstrip("-").isdigit() else None
        disk_full = len(fields) > 1 and fields[1] == "1"
        file_too_large = len(fields) > 2 and fields[2] == "1"
        pids_hit = len(fields) > 3 and fields[3] == "1"
        # Under gVisor an allocation past the limit can fail inside the sandbox
        # (MemoryError) instead of drawing the host's OOM killer.
        oom = bool(usage.oom_kills) or (
            usage.memory_limit_hits > 0 and exit_code not in (0, None) and sandbox.spec.engine == "gvisor"
        )
    else:
        for stream, scanner in trailers.items():
            keep(stream, scanner.flush())
        exit_code, oom = _wait_exit(engine, sandbox.container_id)
        if usage is None:
            usage = cgroups.CgroupUsage()
        # The runner itself died by SIGKILL that we did not send: only the kernel's OOM
        # killer does that (the engine's OOMKilled flag can miss it under gVisor).
        oom = oom or bool(usage.oom_kills) or (kill_sent_at is None and not handle.killed and exit_code == 137)
    collected = CollectOutcome()
    if collect is not None and all(t.done for t in trailers.values()) and kill_sent_at is None:
        try:
            limits = sandbox.spec.limits
            writable = (limits.work_dir_mb + limits.tmp_mb + limits.shm_mb) * 1024 * 1024
            collected = collect_files(engine, sandbox.container_id, collect, writable)
        except Exception as exc:  # the engine failed the exec: the run's result stands
            log.warning("could not copy %s/ out of %s: %s", collect.directory, sandbox.container_id[:12], exc)
            collected.problems.append(f"the files of {collect.directory}/ could not be copied out: {exc}")
    return ExecutionOutcome(
        collected=collected.files,
        collect_problems=collected.problems,
        exit_code=exit_code,
        stdout=outputs[STDOUT].text(),
        stderr=outputs[STDERR].text(),
        stdout_truncated=outputs[STDOUT].truncated,
        stderr_truncated=outputs[STDERR].truncated,
        timed_out=timed_out,
        killed=handle.killed,
        flooded=flooded,
        oom_killed=oom,
        pids_limited=pids_hit or usage.pids_limit_hits > 0,
        disk_full=disk_full,
        file_too_large=file_too_large or exit_code == EXIT_FILE_TOO_LARGE,
        execution_time=round(elapsed, 6),
        # An OOM kill of the whole sandbox takes its cgroup along: the peak was the limit.
        memory_used=usage.memory_peak
        if usage.memory_peak is not None or not oom
        else sandbox.spec.limits.memory_mb * 1024 * 1024,
        files_created=created,
    )


def _created_files(encoded: str) -> list[CreatedFile]:
    """The runner's `files=` listing: base64 of `<size> <path>\\0` records."""
    try:
        raw = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return []
    found = []
    for record in raw.split(b"\0"):
        size, _, name = record.partition(b" ")
        if size.isdigit() and name:
            found.append(CreatedFile(name=name.decode(errors="replace"), size=int(size)))
    return found


def _wait_exit(engine: DockerEngine, container_id: str) -> tuple[int | None, bool]:
    api = engine.api
    try:
        result = api.wait(container_id, timeout=KILL_GRACE_SECONDS)
        state = api.inspect_container(container_id)["State"]
    except docker.errors.NotFound:
        # Auto-removed already: the runner died without its trailer, and nothing but a
        # SIGKILL (ours, or the OOM killer's) ends it that way.
        return 137, False
    except Exception:  # the engine did not report an exit in time: make sure it dies
        engine.kill(container_id)
        return None, False
    return result.get("StatusCode"), bool(state.get("OOMKilled"))
