"""The batch lane's server: PID 1 of a batch sandbox (see `batch_sandbox`).

Not imported by the appliance: `BatchSandbox` reads this file's text and runs it with
`python3 -c` inside the sandbox container, where it forks one process per execution. It
runs on the runtime image's interpreter (Debian's python3, 3.11), so it uses only the
standard library. `python3 -c <this> relay` runs it with the authenticating relay.
"""

import atexit
import base64
import builtins
import ctypes
import errno
import io
import json
import linecache
import os
import resource
import select
import signal
import struct
import sys
import time
import traceback
import types

LENGTH = struct.Struct(">I")
MAC_SIZE = 32
WIPE_ROOTS = ("/work", "/tmp", "/dev/shm", "/dev/mqueue")
PR_SET_DUMPABLE = 4
libc = ctypes.CDLL(None, use_errno=True)
keep = []  # objects the child must never let the garbage collector finalize
# Ignored by the server; SIGCHLD stays default, or children would be reaped unasked.
CATCHABLE = sorted(set(signal.valid_signals()) - {signal.SIGKILL, signal.SIGSTOP, signal.SIGCHLD})
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
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            try:
                reap(0)
            except InterruptedError:
                pass
    # ECHILD means nothing else exists.
    while True:
        try:
            os.kill(-1, signal.SIGKILL)
        except ProcessLookupError:
            pass
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


def set_limit(kind, value):
    soft, hard = resource.getrlimit(kind)
    if hard != resource.RLIM_INFINITY:
        value = min(value, hard)
    resource.setrlimit(kind, (value, value))


def exit_status(exc):
    if exc.code is None or isinstance(exc.code, int):
        return (exc.code or 0) & 0xFF
    try:
        sys.stderr.write(str(exc.code) + "\n")
    except Exception:
        pass
    return 1


def report(exc_type, value, tb):
    """Print an uncaught exception as the interpreter would, from the program's frames."""
    if sys.excepthook is sys.__excepthook__:
        # The Python printer: it finds the source lines in linecache (no file on disk).
        traceback.print_exception(exc_type, value, tb)
    else:
        sys.excepthook(exc_type, value, tb)


# System V IPC objects and POSIX message queues outlive the processes that make them, and
# not every engine lets them be listed (gVisor has no /proc/sysvipc, and ids only grow):
# executions may not make them. A seccomp filter answers ENOSYS to shmget, semget, msgget
# and mq_open, to their x32 forms, and to every syscall of another ABI (int 0x80).
SECCOMP_BLOCKED = {
    "x86_64": (0xC000003E, (29, 64, 68, 240)),
    "aarch64": (0xC00000B7, (194, 190, 186, 180)),
}


def block_ipc():
    arch = SECCOMP_BLOCKED.get(os.uname().machine)
    if arch is None:
        return False
    audit_arch, numbers = arch
    n = len(numbers)
    program = [
        (0x20, 0, 0, 4),
        (0x15, 0, n + 3, audit_arch),  # A = arch; another ABI: deny
        (0x20, 0, 0, 0),
        (0x35, n + 1, 0, 0x40000000),
    ]  # A = nr; x32: deny
    program += [(0x15, n - i, 0, nr) for i, nr in enumerate(numbers)]  # a blocked call: deny
    program += [(0x06, 0, 0, 0x7FFF0000), (0x06, 0, 0, 0x00050000 | errno.ENOSYS)]  # allow; deny
    filters = ctypes.create_string_buffer(b"".join(struct.pack("=HBBI", *i) for i in program))
    prog = (ctypes.c_ulong * 2)(len(program), ctypes.addressof(filters))  # struct sock_fprog
    libc.prctl(38, 1, 0, 0, 0)  # PR_SET_NO_NEW_PRIVS (the container has it already)
    return libc.prctl(22, 2, prog, 0, 0) == 0  # PR_SET_SECCOMP, SECCOMP_MODE_FILTER


def child(request, run_dir, out_w, err_w):
    os.setsid()
    libc.prctl(PR_SET_DUMPABLE, 1, 0, 0, 0)
    try:
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write("1000")
    except OSError:
        pass
    for fd, target in ((os.open("/dev/null", os.O_RDONLY), 0), (out_w, 1), (err_w, 2)):
        os.dup2(fd, target)
    os.closerange(3, max(resource.getrlimit(resource.RLIMIT_NOFILE)[1], 1024))
    os.chdir(run_dir)
    # The signal dispositions of a fresh interpreter (ignored ones survive exec).
    for sig in CATCHABLE:
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    for kind, key in (
        (resource.RLIMIT_CPU, "cpu_seconds"),
        (resource.RLIMIT_AS, "memory_bytes"),
        (resource.RLIMIT_FSIZE, "file_size_bytes"),
        (resource.RLIMIT_NOFILE, "open_files"),
    ):
        set_limit(kind, request[key])
    set_limit(resource.RLIMIT_CORE, 0)
    if not block_ipc() and not os.path.isdir("/proc/sysvipc"):
        raise RuntimeError("cannot keep System V IPC from outliving the execution")
    # Streams like `python3 -u`; the server's own stream objects are kept alive so that
    # their finalizers never close the fds they were opened on.
    keep.extend((sys.stdin, sys.stdout, sys.stderr, sys.modules["__main__"]))
    sys.stdin = sys.__stdin__ = io.TextIOWrapper(io.BufferedReader(io.FileIO(0, "r", closefd=False)), encoding="utf-8")
    sys.stdout = sys.__stdout__ = io.TextIOWrapper(
        io.FileIO(1, "w", closefd=False), encoding="utf-8", write_through=True
    )
    sys.stderr = sys.__stderr__ = io.TextIOWrapper(
        io.FileIO(2, "w", closefd=False), encoding="utf-8", errors="backslashreplace", write_through=True
    )
    os.environ["HOME"] = run_dir
    os.environ["PWD"] = run_dir
    filename = run_dir + "/main.py"
    code = request["code"]
    # Tracebacks show the source lines although no file exists (mtime None: never stale).
    linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
    module = types.ModuleType("__main__")
    module.__dict__.update(__file__=filename, __builtins__=builtins, __cached__=None)
    sys.modules["__main__"] = module
    sys.argv = [filename]
    sys.path[0] = run_dir
    status = 0
    try:
        exec(compile(code, filename, "exec"), module.__dict__)
    except SystemExit as exc:
        status = exit_status(exc)
    except KeyboardInterrupt as exc:
        report(type(exc), exc, exc.__traceback__.tb_next)
        status = 128 + signal.SIGINT
    except BaseException as exc:
        tb = exc.__traceback__.tb_next
        if isinstance(exc, SyntaxError) and tb is None:
            tb = None  # raised by compile(): no frame of the program to show
        report(type(exc), exc, tb)
        status = 1
    # What the interpreter does at exit: join non-daemon threads, run atexit, flush.
    threading = sys.modules.get("threading")
    if threading is not None:
        try:
            threading._shutdown()
        except BaseException:
            pass
    try:
        atexit._run_exitfuncs()
    except BaseException:
        pass
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None and not stream.closed:
                stream.flush()
        except BaseException:
            if stream is sys.stdout and status == 0:
                status = 120
    os._exit(status)


# --- the server --------------------------------------------------------------------------


class Sink:
    def __init__(self, limit):
        self.limit, self.data, self.total = limit, bytearray(), 0

    def add(self, chunk):
        self.total += len(chunk)
        self.data += chunk[: max(0, self.limit - len(self.data))]


def execute(request, control, roots):
    run_id = request["id"]
    run_dir = "/work/run-%d" % run_id
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
    os.close(out_w), os.close(err_w)
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
    status = rusage = None
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
                status, rusage = status_now, usage
                break
        if killed:
            break
        if sum(s.total for s in sinks.values()) > flood_at:
            flooded = True
            break
    elapsed = time.monotonic() - started
    if status is None:
        try:
            if RELAY_PID:  # kill(-1) would take the relay: the program's group, then the rest
                os.killpg(pid, signal.SIGKILL)
            else:
                os.kill(-1, signal.SIGKILL)
        except ProcessLookupError:
            pass
        os.kill(pid, signal.SIGKILL)  # in case it left its group; a zombie until waited for
        _, status, rusage = os.wait4(pid, 0)
    kill_all()
    # Every writer is dead now: what is left in the pipes ends with EOF.
    for fd in list(open_pipes):
        while True:
            data = os.read(fd, 1 << 16)
            if not data:
                break
            sinks[fd].add(data)
    for fd in (out_r, err_r, pidfd):
        if fd is not None:
            os.close(fd)
    oom = oom_kills() > oom_before
    pids_limited = pids_limit_hits() > pids_before
    disk_full = any_mount_full(roots)
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
                result = {"op": "error", "id": request["id"], "message": "%s: %s" % (type(exc).__name__, exc)}
            try:
                wipe(roots)
            except Exception as exc:
                send(result)
                send({"op": "fatal", "message": "%s: %s" % (type(exc).__name__, exc)})
                return 3
            send(result)
            if control.eof:
                break
        kill_all()
        return 0
    except (RelayDied, BrokenPipeError) as exc:
        # Nobody left to talk to: end the container (everything in it dies with PID 1).
        sys.stderr.write("batch sandbox server: %s\n" % exc)
        return 6


if __name__ == "__main__":
    sys.exit(main())
