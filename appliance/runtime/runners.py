"""The program each sandbox container starts with: a runner waiting for code.

A container is created and started before any request needs it (the warm pool), with
its runner as PID 1 blocked on stdin. A request then only hands in its payload: one line
with a per-container nonce, then a tar stream holding the source file and any `files`.
The runner unpacks it into the work dir, runs the program with stdin at /dev/null, and
when the program ends writes one trailer line to stdout and to stderr (the engine
forwards the two streams independently, so only a trailer on each shows that all of
the program's output has arrived):

    \\n<nonce> <exit code> <1 if a writable mount is full, else 0>\\n

and then waits to be destroyed, so the host can read the container's cgroup while it
still exists. The nonce reaches the runner only over stdin and never the program, so
the program cannot forge the trailer.

For Python the runner is an interpreter that has already forked the process that will
run the code: that child waits on a pipe, so handing code in costs no interpreter
start-up, and it never sees the nonce, which the parent reads after the fork.
"""

from __future__ import annotations

import io
import secrets
import tarfile

from appliance.core.languages import WORK_DIR, Language

_PYTHON_RUNNER = r'''
import os, sys, signal
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    os.close(w)
    null = os.open("/dev/null", os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    import atexit, builtins, threading, traceback, types
    if not os.read(r, 1):
        os._exit(0)
    os.close(r)
    path = "/work/main.py"
    sys.argv = [path]
    sys.path[0] = "/work"
    main = types.ModuleType("__main__")
    main.__file__ = path
    main.__builtins__ = builtins
    sys.modules["__main__"] = main
    code = 0
    try:
        with open(path, "rb") as source:
            compiled = compile(source.read(), path, "exec")
        del source
        exec(compiled, main.__dict__)
    except SystemExit as exc:
        if exc.code is None:
            code = 0
        elif isinstance(exc.code, int):
            code = exc.code & 0xFF
        else:
            print(exc.code, file=sys.stderr)
            code = 1
    except BaseException as exc:
        traceback.print_exception(type(exc), exc, exc.__traceback__.tb_next)
        code = 1
    for finish in (threading._shutdown, atexit._run_exitfuncs, sys.stdout.flush, sys.stderr.flush):
        try:
            finish()
        except BaseException:
            pass
    os._exit(code)
os.close(r)
import tarfile
stdin = sys.stdin.buffer
nonce = stdin.readline().strip().decode()
if not nonce:
    os._exit(0)
with tarfile.open(fileobj=stdin, mode="r|") as bundle:
    for member in bundle:
        target = os.path.normpath(os.path.join("/work", member.name))
        if not member.isfile() or not target.startswith("/work/"):
            continue
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "wb") as out:
            out.write(bundle.extractfile(member).read())
os.write(w, b"x")
os.close(w)
_, status = os.waitpid(pid, 0)
code = os.waitstatus_to_exitcode(status)
if code < 0:
    code = 128 - code
full = 0
for mount in ("/work", "/tmp", "/dev/shm"):
    try:
        full |= os.statvfs(mount).f_bavail == 0
    except OSError:
        pass
trailer = ("\n%s %d %d\n" % (nonce, code, full)).encode()
os.write(1, trailer)
os.write(2, trailer)
while True:
    signal.pause()
'''

# dash's `read` takes one byte at a time from a pipe, so tar gets the rest of stdin.
_SHELL_RUNNER = """\
IFS= read -r n || exit 0
tar -x -f - -C {work} --no-same-owner --no-same-permissions -m 2>/dev/null
( {run} ) </dev/null
c=$?
f=0
for d in /work /tmp /dev/shm; do [ "$(stat -f -c %a "$d" 2>/dev/null)" = 0 ] && f=1; done
printf '\\n%s %s %s\\n' "$n" "$c" "$f"
printf '\\n%s %s %s\\n' "$n" "$c" "$f" >&2
exec sleep infinity
"""

TRAILER_FIELDS = 3


def runner_command(language: Language) -> list[str]:
    if language.name == "python":
        return ["python3", "-u", "-c", _PYTHON_RUNNER]
    return ["/bin/sh", "-c", _SHELL_RUNNER.format(work=WORK_DIR, run=language.run)]


def new_nonce() -> str:
    return secrets.token_hex(16)


def build_payload(nonce: str, source_file: str, code: str, files: dict[str, str] | None = None) -> bytes:
    """The nonce line and a tar of the program and its files, padded as tar readers expect."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as bundle:
        for name, text in ((files or {}) | {source_file: code}).items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            bundle.addfile(info, io.BytesIO(data))
    return f"{nonce}\n".encode() + buffer.getvalue()
