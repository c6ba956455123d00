"""The program each sandbox container starts with: a runner waiting for code.

A container is created and started before any request needs it (the warm pool), with
its runner as PID 1 blocked on stdin. A request then only hands in its payload: one line
with a per-container nonce (and `L` when the files the program leaves in the work dir
are wanted), then the source file and any `files`, then the environment variables
(length-prefixed records for the Python runner; for the shell runner a tar stream, with
the environment as a shell function in a nonce-named file the runner reads and deletes).
The runner unpacks it into the work dir, runs the program with stdin at /dev/null and
the environment applied to the program only, and when the program ends writes one
trailer line to stdout and to stderr (the engine forwards the two streams
independently, so only a trailer on each shows that all of the program's output has
arrived):

    \\n<nonce> <exit code> <mount full> <file at the size limit> <process limit hit>
        [<peak memory> <OOM kills> <refused forks>] [files=<base64>]\\n

`files=` (stderr trailer only, when asked with `L`) is base64 of `<size> <path>\\0`
records: the regular files in the work dir after the run, at most `MAX_LISTED_FILES`.

Under runc the runner reads the three bracketed numbers from its own cgroup and exits,
and the engine removes the container (auto-remove); under gVisor, whose cgroup is not
visible inside, it waits to be destroyed so the host can read the cgroup first. With
`K` on the nonce line it waits under runc too: the host then copies files out of the
work dir (an experiment run's checkpoints/, runtime/collect.py) before destroying it.
The nonce reaches the runner only over stdin and never the program, so the program
cannot forge the trailer.

For Python the runner is an interpreter that has already forked the process that will
run the code: that child waits on a pipe, so handing code in costs no interpreter
start-up, and it never sees the nonce, which the parent reads after the fork.
"""

from __future__ import annotations

import io
import secrets
import shlex
import tarfile

from appliance.core.languages import WORK_DIR, Language

# At most this many files in a run's `files=` listing (the trailer is one line).
MAX_LISTED_FILES = 1000

_PYTHON_RUNNER = r"""
import os, sys, signal
POLL_PIDS = %(poll_pids)d
SELF_REPORT = %(self_report)d
MAX_LISTED = %(max_listed)d
r, w = os.pipe()
signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGCHLD])
pid = os.fork()
if pid == 0:
    signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGCHLD])
    os.close(w)
    null = os.open("/dev/null", os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    # Only what every run needs is imported ahead: a container pays for its runner's
    # imports on every execution, so traceback and threading wait until used.
    import atexit, builtins, io, types
    # Line-buffered over a buffered writer, not `python3 -u`: an unbuffered stdout drops
    # the rest of a write the kernel took only part of, which gVisor does for pipes.
    for fd, name in ((1, "stdout"), (2, "stderr")):
        old = getattr(sys, name)
        setattr(sys, name, io.TextIOWrapper(io.BufferedWriter(io.FileIO(fd, "w", closefd=False)),
                                            encoding=old.encoding, errors=old.errors, line_buffering=True))
    # The parent hands over "x" and the program's environment as "NAME=value\0"
    # records, then closes the pipe; EOF at once means the container is shutting down.
    handed = []
    while True:
        chunk = os.read(r, 65536)
        if not chunk:
            break
        handed.append(chunk)
    handed = b"".join(handed)
    if not handed:
        os._exit(0)
    os.close(r)
    for item in handed[1:].split(b"\0"):
        if item:
            name, _, value = item.partition(b"=")
            os.environb[name] = value
    path = "/work/main.py"
    sys.argv = [path]
    sys.path[0] = "/work"
    # This interpreter started before PYTHONPATH was known: apply it as start-up would.
    if b"\0PYTHONPATH=" in b"\0" + handed[1:]:
        sys.path[1:1] = [entry for entry in os.environ["PYTHONPATH"].split(":") if entry]
    del handed
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
        import traceback
        traceback.print_exception(type(exc), exc, exc.__traceback__.tb_next)
        code = 1
    threading = sys.modules.get("threading")
    finishers = (threading._shutdown,) if threading else ()
    for finish in (*finishers, atexit._run_exitfuncs, sys.stdout.flush, sys.stderr.flush):
        try:
            finish()
        except BaseException:
            pass
    os._exit(code)
os.close(r)
import resource
stdin = sys.stdin.buffer
first = stdin.readline().split()
if not first:
    os._exit(0)
nonce = first[0].decode()
list_files = b"L" in first[1:]
keep = b"K" in first[1:]
# Files as "<name bytes> <data bytes>\n<name><data>" records (tarfile costs 8 ms to import).
for _ in range(int(stdin.readline())):
    name_size, data_size = map(int, stdin.readline().split())
    name = stdin.read(name_size).decode()
    data = stdin.read(data_size)
    target = os.path.normpath(os.path.join("/work", name))
    if not target.startswith("/work/"):
        continue
    os.makedirs(os.path.dirname(target), exist_ok=True)
    with open(target, "wb") as out:
        out.write(data)
handoff = [b"x"]
for _ in range(int(stdin.readline() or 0)):
    name_size, value_size = map(int, stdin.readline().split())
    handoff += [stdin.read(name_size), b"=", stdin.read(value_size), b"\0"]
handoff = b"".join(handoff)
while handoff:
    handoff = handoff[os.write(w, handoff):]
os.close(w)
pids_hit = 0
if POLL_PIDS:
    # No pids cgroup to ask afterwards (gVisor caps processes with RLIMIT_NPROC): count
    # them while the program runs, waking at once when it exits.
    nproc = resource.getrlimit(resource.RLIMIT_NPROC)[0]
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        try:
            pids_hit |= sum(1 for entry in os.listdir("/proc") if entry.isdigit()) >= nproc
        except OSError:
            pass
        signal.sigtimedwait([signal.SIGCHLD], 0.01)
else:
    _, status = os.waitpid(pid, 0)
code = os.waitstatus_to_exitcode(status)
if code < 0:
    code = 128 - code
# Whatever the program left running dies with it (PID 1 is spared by kill(-1)).
try:
    os.kill(-1, signal.SIGKILL)
except OSError:
    pass
full = too_large = 0
listed = []
size_limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
for mount in ("/work", "/tmp", "/dev/shm"):
    try:
        full |= os.statvfs(mount).f_bavail == 0
        for folder, _, names in os.walk(mount):
            for name in names:
                where = os.path.join(folder, name)
                info = os.lstat(where)
                size = info.st_size
                too_large |= size_limit > 0 and size >= size_limit
                if (list_files and mount == "/work" and len(listed) < MAX_LISTED
                        and info.st_mode & 0o170000 == 0o100000):
                    listed.append(b"%%d %%s\0" %% (size, os.fsencode(where[len("/work/"):])))
    except OSError:
        pass
fields = [code, full, too_large, pids_hit]
if SELF_REPORT:
    # The container's own cgroup, read-only in here: peak memory, OOM kills, refused forks.
    def counter(key, *paths):
        for path in paths:
            try:
                with open(path) as f:
                    for line in f:
                        name, _, value = line.partition(" ")
                        if name == key:
                            return int(value)
            except (OSError, ValueError):
                pass
        return 0
    peak = -1
    for path in ("/sys/fs/cgroup/memory/memory.max_usage_in_bytes", "/sys/fs/cgroup/memory.peak"):
        try:
            with open(path) as f:
                peak = int(f.read())
            break
        except (OSError, ValueError):
            pass
    fields += [peak, counter("oom_kill", "/sys/fs/cgroup/memory/memory.oom_control", "/sys/fs/cgroup/memory.events"),
               counter("max", "/sys/fs/cgroup/pids/pids.events", "/sys/fs/cgroup/pids.events")]
def write_all(fd, data):
    while data:  # a pipe may take part of a write (gVisor does)
        data = data[os.write(fd, data):]
report = "%%s %%s" %% (nonce, " ".join(map(str, fields)))
write_all(1, ("\n%%s\n" %% report).encode())
if list_files:
    import binascii
    report += " files=" + binascii.b2a_base64(b"".join(listed), newline=False).decode()
write_all(2, ("\n%%s\n" %% report).encode())
if SELF_REPORT and not keep:
    os._exit(0)
while True:
    signal.pause()
"""

# dash's `read` takes one byte at a time from a pipe, so tar gets the rest of stdin.
_SHELL_RUNNER = """\
read -r n w || exit 0
tar -x -f - -C {work} --no-same-owner --no-same-permissions -m 2>/dev/null
# The program's environment, as a function the program's subshell calls (the runner's
# own commands keep theirs); its file goes before the program starts.
appliance_env() {{ :; }}
if [ -f {work}/.env-$n ]; then . {work}/.env-$n; rm -f {work}/.env-$n; fi
{wait_program}
# Whatever the program left running dies with it (PID 1 is spared), which also frees
# the process slots the checks below need.
kill -9 -1 2>/dev/null
f=0
for d in /work /tmp /dev/shm; do [ "$(stat -f -c %a "$d" 2>/dev/null)" = 0 ] && f=1; done
l=0
[ -n "$(find /work /tmp /dev/shm -xdev -type f -size +{fsize_below}c -print -quit 2>/dev/null)" ] && l=1
{report}
x=""
case " $w " in *" L "*)
  x=" files=$(find {work} -xdev -type f -printf '%s %P\\0' 2>/dev/null |
    head -z -n {max_listed} | base64 -w0)" ;;
esac
printf '\\n%s %s %s %s %s%s\\n' "$n" "$c" "$f" "$l" "$h" "$r"
printf '\\n%s %s %s %s %s%s%s\\n' "$n" "$c" "$f" "$l" "$h" "$r" "$x" >&2
{finish}
"""

# Builtins only: the program may have left no process slot free.
_SHELL_SELF_REPORT = """\
m=-1
for p in /sys/fs/cgroup/memory/memory.max_usage_in_bytes /sys/fs/cgroup/memory.peak; do
  [ -r "$p" ] && read -r m < "$p" && break
done
o=0
for p in /sys/fs/cgroup/memory/memory.oom_control /sys/fs/cgroup/memory.events; do
  [ -r "$p" ] && while read -r k v; do [ "$k" = oom_kill ] && o=$v; done < "$p"
done
q=0
for p in /sys/fs/cgroup/pids/pids.events /sys/fs/cgroup/pids.events; do
  [ -r "$p" ] && while read -r k v; do [ "$k" = max ] && q=$v; done < "$p"
done
r=" $m $o $q"
"""

# `K`: the host copies files out of the work dir before the container goes.
_SHELL_FINISH_SELF_REPORT = """\
case " $w " in *" K "*) exec sleep infinity ;; esac
exit 0"""

_WAIT_PROGRAM = """\
( appliance_env; {run} ) </dev/null
c=$?
h=0"""

# bash, for its builtin `read -t` as a sleep that costs no process. The program is
# polled every 10 ms; fd 9 is a pipe nobody writes to.
_WAIT_PROGRAM_COUNTING_PROCESSES = """\
exec 9< <(exec sleep infinity)
( appliance_env; {run} ) </dev/null &
p=$!
h=0
while read -r _ _ s _ 2>/dev/null < /proc/$p/stat && [ "$s" != Z ]; do
  g=(/proc/[0-9]*); [ ${{#g[@]}} -ge {nproc} ] && h=1
  read -t 0.01 -u 9 _
done
wait $p
c=$?"""


def runner_command(
    language: Language, file_size_bytes: int, processes: int, *, poll_pids: bool = False, self_report: bool = False
) -> list[str]:
    """`poll_pids`: count processes while the program runs, where no pids cgroup tells
    afterwards whether the process limit was hit (gVisor caps them with RLIMIT_NPROC).
    `self_report`: the runner reads its container's cgroup itself (visible under runc),
    adds peak memory, OOM kills and refused forks to the trailer and exits, so the
    container ends by itself; otherwise it waits for the host to read and destroy it."""
    if language.name == "python":
        return [
            "python3",
            "-c",
            _PYTHON_RUNNER
            % {"poll_pids": int(poll_pids), "self_report": int(self_report), "max_listed": MAX_LISTED_FILES},
        ]
    wait = _WAIT_PROGRAM_COUNTING_PROCESSES if poll_pids else _WAIT_PROGRAM
    script = _SHELL_RUNNER.format(
        work=WORK_DIR,
        fsize_below=file_size_bytes - 1,
        wait_program=wait.format(run=language.run, nproc=processes),
        report=_SHELL_SELF_REPORT if self_report else 'r=""',
        finish=_SHELL_FINISH_SELF_REPORT if self_report else "exec sleep infinity",
        max_listed=MAX_LISTED_FILES,
    )
    return ["/bin/bash" if poll_pids else "/bin/sh", "-c", script]


def new_nonce() -> str:
    return secrets.token_hex(16)


def build_payload(
    language: Language,
    nonce: str,
    code: str,
    files: dict[str, str] | None = None,
    environment: dict[str, str] | None = None,
    *,
    list_files: bool = False,
    keep: bool = False,
) -> bytes:
    """The nonce line (with `L` to have the work dir's files listed in the trailer, `K`
    to keep the container after the trailer, for files to be copied out), then
    the program, its files and its environment: as length-prefixed records for the
    Python runner, as a tar stream (padded as tar readers expect) for the shell one,
    where the environment is a shell function in `.env-<nonce>`."""
    first_line = f"{nonce}{' L' if list_files else ''}{' K' if keep else ''}\n".encode()
    bundle_files = (files or {}) | {language.source_file: code}
    environment = environment or {}
    if language.name == "python":
        records = [f"{len(bundle_files)}\n".encode()]
        for name, text in bundle_files.items():
            raw_name, data = name.encode(), text.encode()
            records += [f"{len(raw_name)} {len(data)}\n".encode(), raw_name, data]
        records.append(f"{len(environment)}\n".encode())
        for name, value in environment.items():
            raw_name, data = name.encode(), value.encode()
            records += [f"{len(raw_name)} {len(data)}\n".encode(), raw_name, data]
        return first_line + b"".join(records)
    if environment:
        exports = "".join(f"export {name}={shlex.quote(value)}\n" for name, value in environment.items())
        bundle_files = bundle_files | {f".env-{nonce}": "appliance_env() {\n" + exports + "}\n"}
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as bundle:
        for name, text in bundle_files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            bundle.addfile(info, io.BytesIO(data))
    return first_line + buffer.getvalue()
