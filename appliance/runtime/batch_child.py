"""The child of the batch lane's server: one execution, in a process forked from the
server (see `batch_sandbox` for what it does and why, `batch_server` for the server).

Not imported by the appliance: shipped into the sandbox container with `batch_server`
(see `BATCH_SERVER_MODULES` in shipped_programs.py), so it uses only the standard library of the
runtime image's interpreter (Debian's python3, 3.11).
"""

import atexit
import builtins
import contextlib
import ctypes
import errno
import io
import linecache
import os
import resource
import signal
import struct
import sys
import traceback
import types

PR_SET_DUMPABLE = 4
libc = ctypes.CDLL(None, use_errno=True)
keep: list[object] = []  # objects the child must never let the garbage collector finalize
# Signals the server ignores and the child restores; SIGCHLD stays default in the
# server, or its children would be reaped unasked.
CATCHABLE = sorted(set(signal.valid_signals()) - {signal.SIGKILL, signal.SIGSTOP, signal.SIGCHLD})


def set_limit(kind, value):
    soft, hard = resource.getrlimit(kind)
    if hard != resource.RLIM_INFINITY:
        value = min(value, hard)
    resource.setrlimit(kind, (value, value))


def exit_status(exc):
    if exc.code is None or isinstance(exc.code, int):
        return (exc.code or 0) & 0xFF
    with contextlib.suppress(Exception):
        sys.stderr.write(str(exc.code) + "\n")
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


def program_frames(exc: BaseException) -> types.TracebackType | None:
    """The traceback of exc from the program's frames on: without the child's own (a
    SyntaxError raised by compile() has no frame of the program, so None)."""
    tb = exc.__traceback__
    return tb.tb_next if tb is not None else None


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
    # typeshed declares sys.__std*__ Final; a fresh interpreter has them on these fds.
    sys.stdin = sys.__stdin__ = io.TextIOWrapper(  # type: ignore[misc]
        io.BufferedReader(io.FileIO(0, "r", closefd=False)), encoding="utf-8"
    )
    sys.stdout = sys.__stdout__ = io.TextIOWrapper(  # type: ignore[misc]
        io.FileIO(1, "w", closefd=False), encoding="utf-8", write_through=True
    )
    sys.stderr = sys.__stderr__ = io.TextIOWrapper(  # type: ignore[misc]
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
        report(type(exc), exc, program_frames(exc))
        status = 128 + signal.SIGINT
    except BaseException as exc:
        report(type(exc), exc, program_frames(exc))
        status = 1
    # What the interpreter does at exit: join non-daemon threads, run atexit, flush.
    threading = sys.modules.get("threading")
    if threading is not None:
        with contextlib.suppress(BaseException):
            threading._shutdown()
    with contextlib.suppress(BaseException):
        atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None and not stream.closed:
                stream.flush()
        except BaseException:
            if stream is sys.stdout and status == 0:
                status = 120
    os._exit(status)
