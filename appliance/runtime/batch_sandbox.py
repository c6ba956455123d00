"""The batch lane: one locked-down container serving many executions of one batch.

A container per execution costs a few hundred milliseconds; grading a dataset (pass@k
over thousands of samples) cannot pay that for each sample. A `BatchSandbox` belongs to
one owner and one batch. It starts ONE container, under exactly the profile of
`container_options` (no network, no capabilities, read-only root, tmpfs work dirs,
memory and pids limits), whose PID 1 is a small Python "fork server" (`batch_server`
and `batch_child`, passed with `python3 -c`: nothing is written on the host). For each
execution the server

* makes a fresh, empty work dir (/work/run-N);
* forks its pre-warmed interpreter (fork, not exec: that is what makes it fast); the
  child starts a new session, becomes dumpable again (the server is not, so its /proc
  files and fds cannot be opened, nor the server ptraced, by user code), offers itself
  first to the OOM killer, points stdin at /dev/null and stdout/stderr at pipes, closes
  every other fd, restores a fresh interpreter's signal dispositions, chdirs to the run
  dir, sets rlimits (CPU from the timeout, address space from the memory limit, file
  size, open files, no core dumps), refuses System V IPC and POSIX message queues with
  a seccomp filter (they outlive processes, and gVisor gives no way to list them), and
  runs the code as `__main__` in a fresh module with Python's own exit semantics
  (SystemExit, traceback and status 1, non-daemon threads joined, atexit, flush);
* reads the pipes with the output caps, enforces the wall-clock timeout, and listens
  for a kill request from the host;
* when the child exits, times out, is killed or floods its output, kills EVERY other
  process in the container: the server is PID 1 of the container's PID namespace, so
  `kill(-1, SIGKILL)` reaches everything the execution started (setsid, double fork,
  daemons) and `waitpid(-1)` until ECHILD proves nothing is left (with a relay, which
  kill(-1) would take too, every other pid in /proc is killed until none is left);
* wipes /work, /tmp, /dev/shm, /dev/mqueue (and System V IPC objects where the kernel
  lists them) and checks they are empty: if anything cannot be removed the server gives
  up (the sandbox is then unusable, never silently dirty);
* reports exit code, time, peak RSS of the child in bytes (`wait4`) and the flags.

Host and server talk in length-prefixed JSON frames over the container's stdin/stdout
(the attach socket). The child's output only reaches the server through its pipes, and
under runc the child cannot reopen the server's stdin/stdout through /proc, so user code
cannot forge or steal a frame. gVisor lets a process open another's /proc/<pid>/fd of
the same user even when it is not dumpable, so there (and whenever `relay=True`) the
pipes are held by a relay process that authenticates every frame with a key no
execution ever has in its memory (see `relay` in batch_server): a forged frame ends the
sandbox with BatchSandboxError instead of passing for a result.

Executions of one sandbox run one at a time. Nothing crosses owners because a sandbox is
never shared between owners or batches; `close()` destroys the container.

What is shared between the executions of one batch, by design: the interpreter's
startup state (the modules the server imported, the hash seed, and whatever the
server's heap held when it forked: earlier executions' code and output may linger in
freed memory), and the container's cgroup (memory, pids, CPU). Module globals,
`os.environ`, files, IPC objects and processes are not.

Under gVisor an execution can do what runc prevents and end the whole sandbox (SIGKILL
or SIGSTOP to the server, or memory exhaustion, which the host's OOM killer answers by
killing the sandbox rather than the process): the host then raises BatchSandboxError,
and the caller starts another sandbox.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import logging
import math
import secrets
import socket
import struct
from typing import Any

from appliance.core.evaluations import ExecutionOutcome
from appliance.core.languages import WORK_DIR
from appliance.runtime.container_setup import BATCH_LABEL, OWNER_LABEL, container_environment, ephemeral_labels
from appliance.runtime.engine import DockerEngine, EngineError
from appliance.runtime.limits import SANDBOX_USER, SandboxLimits, container_options, flood_bytes
from appliance.runtime.shipped_programs import BATCH_SERVER_MODULES, program
from appliance.runtime.streams import STDERR, STDOUT, FrameParser

log = logging.getLogger(__name__)

# SIGXFSZ: a file grew past the file-size rlimit (Python itself ignores the signal and
# gets EFBIG instead; programs it starts may not).
EXIT_FILE_TOO_LARGE = 128 + 25
# Fields of ExecutionOutcome that not every version of the core has: set when present.
_OUTCOME_FIELDS = frozenset(ExecutionOutcome.__struct_fields__)

# How long the server may take to say it is ready after the container starts.
START_TIMEOUT_SECONDS = 30.0
# How long past an execution's own timeout the host waits for the server's answer
# before it declares the sandbox broken (the server kills and wipes well within this).
ANSWER_GRACE_SECONDS = 10.0
# Memory of the container kept back from an execution's address-space limit: the server
# (about 7 MB resident), and under gVisor also the runtime's own kernel (about 30 MB),
# which the container's memory limit counts too.
RESERVED_MB = {"docker": 16, "gvisor": 56}
# The least address space an execution gets, whatever the limits say.
MIN_EXECUTION_MB = 32
# The last bytes of the server's own stderr, kept to explain a death.
DIAGNOSTIC_BYTES = 8192

_LENGTH = struct.Struct(">I")
_MAC_SIZE = 32  # HMAC-SHA256, after each frame in relay mode


class BatchSandboxError(Exception):
    """The sandbox cannot run executions any more: its server died or gave up, it did
    not answer in time, or it was closed. Close it and start another."""


# The server: batch_child (one execution) and batch_server (the loop), shipped as text.
SERVER_PROGRAM = program(BATCH_SERVER_MODULES)


# --- the host side -----------------------------------------------------------------------


class _Tampered(Exception):
    pass


class _Execution:
    def __init__(self, run_id: int, future: asyncio.Future) -> None:
        self.run_id = run_id
        self.future = future
        self.sent = False
        self.kill_requested = False


class BatchSandbox:
    """One container, one owner, one batch; many executions, one at a time."""

    def __init__(
        self,
        engine: DockerEngine,
        image: str,
        limits: SandboxLimits,
        *,
        engine_name: str = "docker",
        owner: str,
        batch_id: str,
        labels: dict[str, str] | None = None,
        environment: dict[str, str] | None = None,
        relay: bool | None = None,
    ) -> None:
        """`relay`: authenticate the channel through a relay process (`relay` in
        batch_server); by default on for gVisor, whose /proc lets executions open the
        server's pipes."""
        self._engine = engine
        self._image = image
        self._limits = limits
        self._engine_name = engine_name
        self.owner = owner
        self.batch_id = batch_id
        self._labels = ephemeral_labels(
            engine.instance_id, {**(labels or {}), OWNER_LABEL: owner, BATCH_LABEL: batch_id}
        )
        self._environment = environment or {}
        self.relay = engine_name == "gvisor" if relay is None else relay
        self._key = secrets.token_bytes(32) if self.relay else b""
        self._seq = {b"H": 0, b"S": 0}
        self.container_id: str | None = None
        self.python_version: str | None = None
        # The sandbox's own processes, as its executions see them: the server (PID 1) and
        # the relay, if there is one. Every other process is an execution's.
        self.server_pids: tuple[int, ...] = ()
        self._attached: Any = None
        self._sock: socket.socket | None = None
        self._reader: asyncio.Task | None = None
        self._run_lock = asyncio.Lock()
        self._send_lock = asyncio.Lock()
        self._ready: asyncio.Future | None = None
        self._current: _Execution | None = None
        self._next_id = 0
        self._dead: str | None = None  # why the sandbox cannot be used, once it cannot
        self._diagnostics = bytearray()
        self._closed = False
        self._tasks: set[asyncio.Task] = set()
        self.executions = 0

    @property
    def max_memory_mb(self) -> int:
        """The largest address space an execution may have."""
        reserved = RESERVED_MB.get(self._engine_name, RESERVED_MB["gvisor"])
        return max(MIN_EXECUTION_MB, self._limits.memory_mb - reserved)

    @property
    def alive(self) -> bool:
        return self._dead is None and self.container_id is not None

    async def __aenter__(self) -> BatchSandbox:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # --- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        if self.container_id is not None or self._closed:
            raise BatchSandboxError("a batch sandbox starts once")
        loop = asyncio.get_running_loop()
        self._ready = loop.create_future()
        try:
            self.container_id, self._attached = await self._engine.call(self._create_and_attach)
            sock: socket.socket = getattr(self._attached, "_sock", self._attached)
            sock.setblocking(False)
            self._sock = sock
            self._reader = asyncio.create_task(self._read_loop(sock))
            await self._engine.call(self._engine.api.start, self.container_id)
            if self.relay:
                # Before any execution exists: only the relay can read it.
                await self._send({"op": "key", "key": self._key.hex()}, authenticate=False)
            ready = await asyncio.wait_for(asyncio.shield(self._ready), START_TIMEOUT_SECONDS)
            self.python_version = ready.get("python")
            self.server_pids = tuple(ready.get("pids", ()))
        except BaseException as exc:
            await self.close()
            if isinstance(exc, BatchSandboxError):
                raise
            if isinstance(exc, asyncio.TimeoutError):
                raise BatchSandboxError(
                    f"the batch sandbox did not start: no answer in {START_TIMEOUT_SECONDS:.0f} s{self._diag_suffix()}"
                ) from None
            if isinstance(exc, EngineError):
                raise BatchSandboxError(f"the batch sandbox did not start: {exc}") from exc
            raise

    async def close(self) -> None:
        """Destroy the container (kill and remove). Safe to call more than once."""
        if self._closed:
            return
        self._closed = True
        self._mark_dead("the batch sandbox is closed")
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        for closable in (self._attached, self._sock):
            try:
                if closable is not None:
                    closable.close()
            except OSError:
                pass
        if self.container_id is not None:
            await self._engine.call(self._engine.remove, self.container_id)

    # --- executions --------------------------------------------------------------------

    async def run(
        self,
        code: str,
        *,
        timeout: float,
        output_limit: int,
        memory_mb: int | None = None,
    ) -> ExecutionOutcome:
        """Run `code` as a Python program in a fresh process of this sandbox.

        `memory_mb` caps the execution's address space (RLIMIT_AS); by default, and at
        most, the sandbox's memory limit less what the server (and gVisor) need. Raises
        BatchSandboxError if the sandbox can no longer run anything (then close it and
        start another)."""
        async with self._run_lock:
            self._check_usable()
            self._next_id += 1
            run_id = self._next_id
            current = self._current = _Execution(run_id, asyncio.get_running_loop().create_future())
            memory = min(memory_mb or self.max_memory_mb, self.max_memory_mb)
            request = {
                "op": "run",
                "id": run_id,
                "code": code,
                "timeout": float(timeout),
                "output_limit": int(output_limit),
                "flood_bytes": flood_bytes(int(output_limit)),
                # Wall-clock timeout is enforced by the server; the CPU limit is a backstop.
                "cpu_seconds": int(math.ceil(timeout)) + 1,
                "memory_bytes": int(memory) * 1024 * 1024,
                "file_size_bytes": self._limits.file_size_mb * 1024 * 1024,
                "open_files": self._limits.open_files,
            }
            try:
                await self._send(request)
                current.sent = True
                if current.kill_requested:  # asked for while the request was on its way
                    await self._send({"op": "kill", "id": run_id})
                reply = await asyncio.wait_for(asyncio.shield(current.future), timeout + ANSWER_GRACE_SECONDS)
            except TimeoutError:
                reason = f"the batch sandbox did not answer within {timeout + ANSWER_GRACE_SECONDS:.0f} s"
                self._mark_dead(reason)
                await self._engine.call(self._engine.kill, self.container_id)
                raise BatchSandboxError(reason) from None
            except asyncio.CancelledError:
                # The caller gave up: stop the execution; its late answer is ignored.
                if self.alive:
                    task = asyncio.ensure_future(self._send_quietly({"op": "kill", "id": run_id}))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
                raise
            except BatchSandboxError as exc:
                raise BatchSandboxError(f"{exc}{await self._death_details()}") from None
            finally:
                self._current = None
            self.executions += 1
            return self._outcome(reply)

    async def kill_current(self) -> bool:
        """Kill the running execution, if there is one (it ends with killed=True)."""
        current = self._current
        if current is None or not self.alive:
            return False
        current.kill_requested = True
        if current.sent:  # otherwise run() sends the kill right after the request
            await self._send_quietly({"op": "kill", "id": current.run_id})
        return True

    # --- internals ---------------------------------------------------------------------

    def _outcome(self, reply: dict) -> ExecutionOutcome:
        if reply.get("op") == "error":
            return ExecutionOutcome(exit_code=None, stdout="", stderr=f"batch sandbox: {reply.get('message')}")
        optional = {
            "pids_limited": reply["pids_limited"],
            "disk_full": reply["disk_full"],
            "file_too_large": reply["exit_code"] == EXIT_FILE_TOO_LARGE,
        }
        return ExecutionOutcome(
            **{name: value for name, value in optional.items() if name in _OUTCOME_FIELDS},
            exit_code=reply["exit_code"],
            stdout=base64.b64decode(reply["stdout"]).decode("utf-8", errors="replace"),
            stderr=base64.b64decode(reply["stderr"]).decode("utf-8", errors="replace"),
            stdout_truncated=reply["stdout_truncated"],
            stderr_truncated=reply["stderr_truncated"],
            timed_out=reply["timed_out"] and not reply["killed"],
            killed=reply["killed"],
            flooded=reply["flooded"],
            oom_killed=reply["oom_killed"],
            execution_time=round(reply["time"], 6),
            memory_used=reply["max_rss"],
        )

    def _check_usable(self) -> None:
        if self.container_id is None and not self._closed:
            raise BatchSandboxError("the batch sandbox is not started")
        if self._dead is not None:
            raise BatchSandboxError(self._dead)

    def _mark_dead(self, reason: str) -> None:
        if self._dead is None:
            self._dead = reason
        error = BatchSandboxError(self._dead + self._diag_suffix())
        for future in (self._ready, self._current.future if self._current else None):
            if future is not None and not future.done():
                future.set_exception(error)
                future.exception()  # retrieved: no "never retrieved" warning if unawaited

    def _diag_suffix(self) -> str:
        text = self._diagnostics.decode("utf-8", errors="replace").strip()
        return f"; server stderr: {text[-2000:]}" if text else ""

    async def _death_details(self) -> str:
        if self.container_id is None:
            return ""
        try:
            state = (await self._engine.call(self._engine.api.inspect_container, self.container_id))["State"]
        except EngineError:
            return ""
        if state.get("Running"):
            return ""
        return (
            f" (container exited with {state.get('ExitCode')}"
            f"{', OOM-killed: the sandbox memory limit is too small' if state.get('OOMKilled') else ''})"
        )

    def _mac(self, direction: bytes, payload: bytes) -> bytes:
        tag = hmac.new(
            self._key, direction + self._seq[direction].to_bytes(8, "big") + payload, hashlib.sha256
        ).digest()
        self._seq[direction] += 1
        return tag

    async def _send(self, message: dict, *, authenticate: bool = True) -> None:
        # A frame half sent would garble the stream: once started, a send runs to its end
        # even if the caller is cancelled.
        task = asyncio.ensure_future(self._send_frame(message, authenticate))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(lambda t: t.cancelled() or t.exception())
        await asyncio.shield(task)

    async def _send_frame(self, message: dict, authenticate: bool) -> None:
        data = json.dumps(message, separators=(",", ":")).encode()
        loop = asyncio.get_running_loop()
        async with self._send_lock:
            if self._sock is None or self._dead is not None:
                raise BatchSandboxError(self._dead or "the batch sandbox is not started")
            frame = _LENGTH.pack(len(data)) + data
            if self.relay and authenticate:
                frame += self._mac(b"H", data)  # in send order: under the lock
            try:
                await loop.sock_sendall(self._sock, frame)
            except OSError as exc:
                self._mark_dead(f"the batch sandbox's connection failed: {exc}")
                raise BatchSandboxError(self._dead) from None

    async def _send_quietly(self, message: dict) -> None:
        with contextlib.suppress(BatchSandboxError):
            await self._send(message)

    async def _read_loop(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        parser = FrameParser()
        buffer = bytearray()
        reason = "the batch sandbox's server exited"
        mac_size = _MAC_SIZE if self.relay else 0
        try:
            while True:
                data = await loop.sock_recv(sock, 1 << 18)
                if not data:
                    break
                for stream, payload in parser.feed(data):
                    if stream == STDOUT:
                        buffer += payload
                        while len(buffer) >= _LENGTH.size:
                            (size,) = _LENGTH.unpack_from(buffer)
                            end = _LENGTH.size + size
                            if len(buffer) < end + mac_size:
                                break
                            body = bytes(buffer[_LENGTH.size : end])
                            if mac_size and not hmac.compare_digest(
                                bytes(buffer[end : end + mac_size]), self._mac(b"S", body)
                            ):
                                raise _Tampered(
                                    "a frame from the sandbox failed authentication: something else wrote to its stdout"
                                )
                            del buffer[: end + mac_size]
                            self._dispatch(json.loads(body))
                    elif stream == STDERR:
                        self._diagnostics += payload
                        del self._diagnostics[:-DIAGNOSTIC_BYTES]
        except OSError as exc:
            reason = f"the batch sandbox's connection failed: {exc}"
        except (ValueError, _Tampered) as exc:  # the channel does not come from the server
            reason = f"the batch sandbox's channel is corrupt: {exc}"
            self._kill_soon()
        finally:
            self._mark_dead(reason)

    def _kill_soon(self) -> None:
        task = asyncio.ensure_future(self._engine.call(self._engine.kill, self.container_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _dispatch(self, message: dict) -> None:
        op = message.get("op")
        if op == "ready":
            if self._ready is not None and not self._ready.done():
                self._ready.set_result(message)
        elif op in ("result", "error"):
            current = self._current
            if current is not None and current.run_id == message.get("id") and not current.future.done():
                current.future.set_result(message)
        elif op == "fatal":
            self._mark_dead(f"the batch sandbox's server gave up: {message.get('message')}")

    # --- synchronous parts, run on the engine's threads --------------------------------

    def _create_and_attach(self) -> tuple[str, Any]:
        api = self._engine.api
        host_config = api.create_host_config(**container_options(self._limits, engine=self._engine_name))
        env = container_environment(WORK_DIR, self._environment)
        created = api.create_container(
            self._image,
            command=["python3", "-c", SERVER_PROGRAM, *(["relay"] if self.relay else [])],
            user=SANDBOX_USER,
            working_dir=WORK_DIR,
            stdin_open=True,
            environment=env,
            labels=self._labels,
            network_disabled=not self._limits.network,
            host_config=host_config,
        )
        container_id = created["Id"]
        try:
            # Attach before start: nothing the server writes can be missed.
            attached = api.attach_socket(container_id, params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1})
        except BaseException:
            self._engine.remove(container_id)
            raise
        return container_id, attached
