"""The batch lane's server: PID 1 of a batch sandbox (see `batch_sandbox`). It forks
one process per execution (`batch_child`), watches it, and cleans up after it.

Not imported by the appliance: `BatchSandbox` reads this module's text and that of
`batch_child` and runs them with `python3 -c` inside the sandbox container, registered
under their own names (`BATCH_SERVER_MODULES` in shipped_programs.py), then calls `main()`; with the argument `relay`
it runs with the authenticating relay. It runs on the runtime image's interpreter
(Debian's python3, 3.11), so it uses only the standard library.
"""

import base64
import contextlib
import json
import os
import select
import signal
import struct
import sys
import time
import traceback

from appliance.runtime.batch_child import CATCHABLE, PR_SET_DUMPABLE, child, keep, libc

LENGTH = struct.Struct(">I")
MAC_SIZE = 32
WIPE_ROOTS = ("/work", "/tmp", "/dev/shm", "/dev/mqueue")
# The worker's channel: the container's stdin/stdout, or in relay mode its socket to the
# relay. RELAY_PID is the relay's pid (0 without one).
IN_FD, OUT_FD, RELAY_PID = 0, 1, 0


def write_all(fd, data):
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def send(message):
    data = json.dumps(message, separators=(",", ":")).encode()
    write_all(OUT_FD, LENGTH.pack(len(data)) + data)


def split_frame(buffer, mac_size):
    """Take the first complete frame out of buffer: (payload, tag), or None."""
    if len(buffer) < 4:
        return None
    end = 4 + LENGTH.unpack_from(buffer)[0]
    if len(buffer) < end + mac_size:
        return None
    frame = bytes(buffer[4:end]), bytes(buffer[end : end + mac_size])
    del buffer[: end + mac_size]
    return frame


class Control:
    """Frames for the worker, read from IN_FD."""

    def __init__(self):
        self.buffer = bytearray()
        self.eof = False
        self.pending = []

    def fill(self):
        data = os.read(IN_FD, 1 << 20)
        if not data:
            self.eof = True
        self.buffer += data
        while (frame := split_frame(self.buffer, 0)) is not None:
            self.pending.append(json.loads(frame[0]))

    def next(self):
        while not self.pending:
            if self.eof:
                return None
            self.fill()
        return self.pending.pop(0)


# --- cleaning up after an execution ------------------------------------------------------


class RelayDied(Exception):
    """The relay is gone: nothing can reach the host any more."""


def reap(options):
    """Reap one child; returns its pid, 0 if none is ready. Raises ChildProcessError."""
    pid, _ = os.waitpid(-1, options)
    if pid and pid == RELAY_PID:
        raise RelayDied("the relay died")
    return pid


def kill_all():
    """Kill every process of the container but this one (and the relay), and reap them
    all. As PID 1 of the PID namespace every orphan is our child."""
    if RELAY_PID:
        # kill(-1) would take the relay too: kill by name until only the two of us are left.
        while True:
            while reap(os.WNOHANG):
                pass
            others = [int(p) for p in os.listdir("/proc") if p.isdigit() and int(p) not in (1, RELAY_PID)]
            if not others:
                return
            for pid in others:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(InterruptedError):
                reap(0)
    # ECHILD means nothing else exists.
    while True:
        with contextlib.suppress(ProcessLookupError):
            os.kill(-1, signal.SIGKILL)
        try:
            os.waitpid(-1, 0)
        except ChildProcessError:
            return
        except InterruptedError:
            pass


def unlink_files_list_dirs():
    dirs = []
    with os.scandir(".") as entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                dirs.append(entry.name)
            else:
                os.unlink(entry.name)
    return dirs


def clear(root):
    """Remove everything under root, however deep or unreadable (no paths, no fds:
    chdir down and up, so neither PATH_MAX nor the open-files limit gets in the way)."""
    os.chdir(root)
    pending = [unlink_files_list_dirs()]
    trail = []
    while pending:
        if pending[-1]:
            name = pending[-1].pop()
            os.chmod(name, 0o700)
            os.chdir(name)
            trail.append(name)
            pending.append(unlink_files_list_dirs())
        else:
            pending.pop()
            if trail:
                os.chdir("..")
                os.rmdir(trail.pop())
    os.chdir("/")


def sysv_ids(kind):
    try:
        with open("/proc/sysvipc/" + kind) as f:
            return [int(line.split()[1]) for line in f.read().splitlines()[1:] if line.strip()]
    except OSError:
        return []


def wipe(roots):
    for root, mode in roots:
        if os.stat(root).st_mode & 0o7777 != mode:
            os.chmod(root, mode)
        clear(root)
    # Executions cannot make System V IPC objects (see block_ipc); should one exist anyway.
    for ident in sysv_ids("shm"):
        libc.shmctl(ident, 0, None)  # IPC_RMID
    for ident in sysv_ids("sem"):
        libc.semctl(ident, 0, 0)
    for ident in sysv_ids("msg"):
        libc.msgctl(ident, 0, None)
    left = [root for root, _ in roots if os.listdir(root)]
    left += [kind for kind in ("shm", "sem", "msg") if sysv_ids(kind)]
    if left:
        raise RuntimeError("could not wipe " + ", ".join(left))


def cgroup_counter(paths, key):
    """A `key N` counter of the container's own cgroup (v1 or v2 layout), 0 if unknown."""
    for path in paths:
        try:
            with open(path) as f:
                for line in f:
                    if line.startswith(key + " "):
                        return int(line.split()[1])
        except (OSError, ValueError):
            pass
    return 0


def oom_kills():
    return cgroup_counter(("/sys/fs/cgroup/memory/memory.oom_control", "/sys/fs/cgroup/memory.events"), "oom_kill")


def pids_limit_hits():
    return cgroup_counter(("/sys/fs/cgroup/pids/pids.events", "/sys/fs/cgroup/pids.events"), "max")


def any_mount_full(roots):
    return any(os.statvfs(root).f_bavail == 0 for root, _ in roots if root != "/dev/mqueue")


# --- the child: one execution ------------------------------------------------------------


# --- the server --------------------------------------------------------------------------


class Sink:
    def __init__(self, limit):
        self.limit, self.data, self.total = limit, bytearray(), 0

    def add(self, chunk):
        self.total += len(chunk)
        self.data += chunk[: max(0, self.limit - len(self.data))]


def execute(request, control, roots):
    run_id = request["id"]
    run_dir = f"/work/run-{run_id}"
    os.mkdir(run_dir, 0o700)
    limit = request["output_limit"]
    flood_at = request["flood_bytes"]
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    oom_before = oom_kills()
    pids_before = pids_limit_hits()
    started = time.monotonic()
    try:
        pid = os.fork()
    except OSError:
        for fd in (out_r, out_w, err_r, err_w):
            os.close(fd)
        raise
    if pid == 0:
        try:
            child(request, run_dir, out_w, err_w)
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(70)
    os.close(out_w)
    os.close(err_w)
    sinks = {out_r: Sink(limit), err_r: Sink(limit)}
    try:
        pidfd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        pidfd = None
    poller = select.poll()
    for fd in sinks:
        poller.register(fd, select.POLLIN)
    poller.register(IN_FD, select.POLLIN)
    if pidfd is not None:
        poller.register(pidfd, select.POLLIN)
    deadline = started + request["timeout"]
    reaped = None  # the child's wait status and resource usage, once waited for
    timed_out = killed = flooded = False
    open_pipes = set(sinks)
    while True:
        now = time.monotonic()
        if now >= deadline:
            timed_out = True
            break
        wait = deadline - now
        if pidfd is None:
            wait = min(wait, 0.05 if open_pipes else 0.005)
        check_child = pidfd is None
        for fd, _ in poller.poll(wait * 1000):
            if fd in sinks:
                data = os.read(fd, 1 << 16)
                if data:
                    sinks[fd].add(data)
                else:
                    poller.unregister(fd)
                    open_pipes.discard(fd)
            elif fd == IN_FD:
                control.fill()
                if control.eof:
                    poller.unregister(IN_FD)
                    killed = True  # the host is gone
                for message in control.pending:
                    if message.get("op") == "kill" and message.get("id") == run_id:
                        killed = True
                control.pending = [m for m in control.pending if m.get("op") != "kill"]
            elif fd == pidfd:
                check_child = True
        if check_child:
            done, status_now, usage = os.wait4(pid, os.WNOHANG)
            if done:
                reaped = status_now, usage
                break
        if killed:
            break
        if sum(s.total for s in sinks.values()) > flood_at:
            flooded = True
            break
    elapsed = time.monotonic() - started
    if reaped is None:
        try:
            if RELAY_PID:  # kill(-1) would take the relay: the program's group, then the rest
                os.killpg(pid, signal.SIGKILL)
            else:
                os.kill(-1, signal.SIGKILL)
        except ProcessLookupError:
            pass
        os.kill(pid, signal.SIGKILL)  # in case it left its group; a zombie until waited for
        reaped = os.wait4(pid, 0)[1:]
    kill_all()
    # Every writer is dead now: what is left in the pipes ends with EOF.
    for fd in list(open_pipes):
        while True:
            data = os.read(fd, 1 << 16)
            if not data:
                break
            sinks[fd].add(data)
    os.close(out_r)
    os.close(err_r)
    if pidfd is not None:
        os.close(pidfd)
    oom = oom_kills() > oom_before
    pids_limited = pids_limit_hits() > pids_before
    disk_full = any_mount_full(roots)
    status, rusage = reaped
    exit_code = os.waitstatus_to_exitcode(status)
    if exit_code < 0:
        exit_code = 128 - exit_code  # killed by a signal: as a shell (and docker) reports it
    out, err = sinks[out_r], sinks[err_r]
    return {
        "op": "result",
        "id": run_id,
        "exit_code": exit_code,
        "stdout": base64.b64encode(bytes(out.data)).decode(),
        "stderr": base64.b64encode(bytes(err.data)).decode(),
        "stdout_truncated": out.total > limit,
        "stderr_truncated": err.total > limit,
        "timed_out": timed_out,
        "killed": killed,
        "flooded": flooded,
        "oom_killed": oom,
        "pids_limited": pids_limited,
        "disk_full": disk_full,
        "time": elapsed,
        "max_rss": rusage.ru_maxrss * 1024,
    }


# --- relay mode ---------------------------------------------------------------------------
# Where the engine lets same-user processes open another's /proc/<pid>/fd (gVisor does,
# even for a process that is not dumpable), an execution could write to or read from the
# container's stdin/stdout. Then the host's pipes are held by a relay, forked before the
# host hands over a key, so that no execution (a fork of the worker) ever has the key in
# its memory; /proc/<pid>/mem and ptrace stay closed. The relay authenticates every
# frame both ways (HMAC-SHA256 over direction, sequence number and payload) and talks to
# the worker over a socket pair, which cannot be opened through /proc. Anything forged,
# replayed or stolen on the pipes ends the sandbox instead of passing for a result.


def relay(sock_fd):
    import hashlib
    import hmac

    inbox, outbox, seq = bytearray(), bytearray(), {b"H": 0, b"S": 0}

    def read_host():
        data = os.read(0, 1 << 20)
        if not data:
            os._exit(0)  # the host is gone; the worker sees our socket close
        inbox.extend(data)

    while (first := split_frame(inbox, 0)) is None:
        read_host()
    key = bytes.fromhex(json.loads(first[0])["key"])

    def mac(direction, payload):
        counter = seq[direction].to_bytes(8, "big")
        seq[direction] += 1
        return hmac.new(key, direction + counter + payload, hashlib.sha256).digest()

    def to_host(payload):
        write_all(1, LENGTH.pack(len(payload)) + payload + mac(b"S", payload))

    poller = select.poll()
    poller.register(0, select.POLLIN)
    poller.register(sock_fd, select.POLLIN)
    while True:
        while (frame := split_frame(inbox, MAC_SIZE)) is not None:
            payload, tag = frame
            if not hmac.compare_digest(tag, mac(b"H", payload)):
                to_host(
                    json.dumps(
                        {
                            "op": "fatal",
                            "message": "a frame to the sandbox failed "
                            "authentication: something else wrote to its stdin",
                        }
                    ).encode()
                )
                os._exit(4)
            write_all(sock_fd, LENGTH.pack(len(payload)) + payload)
        while (frame := split_frame(outbox, 0)) is not None:
            to_host(frame[0])
        for fd, _ in poller.poll():
            if fd == 0:
                read_host()
            else:
                data = os.read(sock_fd, 1 << 20)
                if not data:
                    os._exit(0)  # the worker is gone
                outbox.extend(data)


def start_relay():
    global IN_FD, OUT_FD, RELAY_PID
    import socket

    worker_end, relay_end = socket.socketpair()
    pid = os.fork()
    if pid == 0:
        try:
            worker_end.close()
            relay(relay_end.fileno())
        finally:
            os._exit(5)
    relay_end.close()
    keep.append(worker_end)
    # The worker keeps no end of the host's pipes.
    null = os.open("/dev/null", os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.close(null)
    IN_FD = OUT_FD = worker_end.fileno()
    RELAY_PID = pid


def main():
    # Executions may signal the server and the relay (same user). Under runc the kernel
    # drops signals to PID 1 that it does not handle; gVisor delivers them, so ignore
    # every signal that can be (SIGKILL and SIGSTOP cannot: under gVisor an execution
    # that sends them ends the sandbox, which the host then reports).
    for sig in CATCHABLE:
        signal.signal(sig, signal.SIG_IGN)
    # Not dumpable: /proc/1/fd, /proc/1/mem and ptrace stay closed to the executions.
    libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    if sys.argv[1:] == ["relay"]:
        start_relay()
    roots = [(root, os.stat(root).st_mode & 0o7777) for root in WIPE_ROOTS if os.path.isdir(root)]
    wipe(roots)
    control = Control()
    send({"op": "ready", "python": sys.version.split()[0], "pids": [os.getpid()] + ([RELAY_PID] if RELAY_PID else [])})
    try:
        while True:
            request = control.next()
            if request is None:
                break
            if request.get("op") != "run":
                continue  # a kill for an execution that already ended
            try:
                result = execute(request, control, roots)
            except (RelayDied, BrokenPipeError):
                raise
            except Exception as exc:  # e.g. fork refused: this execution fails, not the sandbox
                kill_all()
                result = {"op": "error", "id": request["id"], "message": f"{type(exc).__name__}: {exc}"}
            try:
                wipe(roots)
            except Exception as exc:
                send(result)
                send({"op": "fatal", "message": f"{type(exc).__name__}: {exc}"})
                return 3
            send(result)
            if control.eof:
                break
        kill_all()
        return 0
    except (RelayDied, BrokenPipeError) as exc:
        # Nobody left to talk to: end the container (everything in it dies with PID 1).
        sys.stderr.write(f"batch sandbox server: {exc}\n")
        return 6
