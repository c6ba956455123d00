#!/usr/bin/env bash
# Set up everything the appliance needs on this machine, from nothing, idempotently:
# Debian packages (Docker engine, debootstrap), a running Docker engine, the Python venv
# with the appliance installed, gVisor's runsc registered as a Docker runtime, and the
# runtime images. Safe to run again: each step
# does nothing when its result is already there.
#
#   scripts/setup.sh            the appliance
#   scripts/setup.sh --test     the appliance and the test dependencies
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${APPLIANCE_VENV:-$ROOT/.venv}"
WITH_TEST=0
[ "${1:-}" = "--test" ] && WITH_TEST=1

say() { printf '[setup] %s\n' "$*" >&2; }
die() { printf '[setup] error: %s\n' "$*" >&2; exit 1; }

is_root() { [ "$(id -u)" -eq 0 ]; }
is_debian() { [ -f /etc/debian_version ] && command -v apt-get >/dev/null; }

APT_UPDATED=0
apt_install() {
    local missing=()
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if ! is_root || ! is_debian; then
        die "missing system packages: ${missing[*]}. Install them with your package manager (as root on Debian: apt-get install -y ${missing[*]}) and run this again."
    fi
    if [ $APT_UPDATED -eq 0 ]; then
        say "apt-get update"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        APT_UPDATED=1
    fi
    say "installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# --- Python -----------------------------------------------------------------------------
PYTHON="${PYTHON:-python3}"
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    apt_install python3 python3-venv
    PYTHON=python3
    "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || die "Python 3.11 or newer is required"
fi
if ! "$PYTHON" -c 'import venv, ensurepip' 2>/dev/null; then
    apt_install python3-venv
fi

# --- system packages --------------------------------------------------------------------
packages=(debootstrap)
command -v dockerd >/dev/null || packages+=(docker.io)
# tmux for terminal tests; prometheus for promtool, which validates /api/metrics;
# openssh-server for the test that runs the TUI over SSH (a private sshd on loopback);
# binutils (objdump, strip) for PyInstaller's build of the binary; systemd (systemctl)
# and passwd (useradd) for the test that runs install.sh; pdflatex with booktabs
# (texlive-latex-base, texlive-latex-recommended) and pdftotext (poppler-utils) for the
# test that compiles the publication LaTeX report.
[ $WITH_TEST -eq 1 ] && packages+=(tmux prometheus openssh-server binutils systemd passwd
    texlive-latex-base texlive-latex-recommended poppler-utils)
if is_root && is_debian; then
    apt_install "${packages[@]}"
elif ! command -v dockerd >/dev/null && ! command -v docker >/dev/null; then
    die "no Docker engine here. Install Docker Engine (Debian/Ubuntu: apt-get install docker.io; Fedora: dnf install moby-engine), start it, and add yourself to the 'docker' group."
fi

# --- the Docker engine ------------------------------------------------------------------
engine_answers() {
    if command -v docker >/dev/null; then docker info >/dev/null 2>&1; return; fi
    [ -S /var/run/docker.sock ] && "$PYTHON" - <<'PY' 2>/dev/null
import socket, sys
s = socket.socket(socket.AF_UNIX); s.settimeout(2); s.connect("/var/run/docker.sock")
s.sendall(b"GET /_ping HTTP/1.0\r\n\r\n"); sys.exit(0 if b"OK" in s.recv(1024) else 1)
PY
}
if ! engine_answers; then
    is_root || die "no Docker engine answers and you are not root: ask an administrator to start it (systemctl start docker) and to add you to the 'docker' group."
    if [ -d /run/systemd/system ] && systemctl list-unit-files docker.service >/dev/null 2>&1; then
        say "starting docker.service"
        systemctl start docker || true
    fi
    if ! engine_answers; then
        say "starting dockerd in the background (log: /var/log/appliance-dockerd.log)"
        nohup dockerd >/var/log/appliance-dockerd.log 2>&1 &
    fi
    for _ in $(seq 1 60); do engine_answers && break; sleep 0.5; done
    engine_answers || die "dockerd did not come up; see /var/log/appliance-dockerd.log"
fi
say "Docker engine is up"

# --- the venv ---------------------------------------------------------------------------
if [ ! -x "$VENV/bin/python" ]; then
    say "creating $VENV"
    "$PYTHON" -m venv "$VENV"
fi
stamp="$VENV/.appliance-installed"
hash="$(sha256sum "$ROOT/pyproject.toml" | cut -c1-16)"
have="$(cat "$stamp" 2>/dev/null || true)"
# Reinstall when pyproject.toml changed, or when the tests need extras not yet installed.
if [ "$have" != "$hash-1" ] && { [ $WITH_TEST -eq 1 ] || [ "$have" != "$hash-0" ]; }; then
    say "installing Python packages into $VENV"
    "$VENV/bin/pip" install -q --upgrade pip >/dev/null 2>&1 || true
    extras=""
    # The tests also run cluster mode on a loopback Ray cluster (tests/test_cluster.py).
    [ $WITH_TEST -eq 1 ] && extras="[test,cluster]"
    "$VENV/bin/pip" install -q -e "$ROOT$extras" 2>&1 | grep -v '^WARNING: Location' || true
    "$VENV/bin/python" -c 'import appliance, litestar, docker' || die "Python packages did not install"
    echo "$hash-$WITH_TEST" > "$stamp"
fi

# --- gVisor (engine "gvisor") -----------------------------------------------------------
# Debian's `runsc`, registered in dockerd as the runtime "runsc" with no network of its
# own. Mandatory when the appliance's settings say require_gvisor (config file or
# APPLIANCE_REQUIRE_GVISOR); otherwise a machine without it runs the docker engine only.
GVISOR_RUNTIME=runsc
DAEMON_JSON="${DOCKER_DAEMON_JSON:-/etc/docker/daemon.json}"
gvisor_required() {
    "$VENV/bin/python" -c 'from appliance.config import load_settings; import sys; sys.exit(0 if load_settings().require_gvisor else 1)' 2>/dev/null
}
gvisor_registered() {
    "$VENV/bin/python" - "$GVISOR_RUNTIME" <<'PY' 2>/dev/null
import sys, docker
client = docker.from_env(version="auto")
sys.exit(0 if sys.argv[1] in (client.info().get("Runtimes") or {}) else 1)
PY
}
gvisor_unavailable() {
    if gvisor_required; then
        die "gVisor is mandatory here (require_gvisor) but $*"
    fi
    say "gVisor not set up: $*. The appliance runs with the docker engine only; requests for engine \"gvisor\" get a 503 saying so."
}
reload_dockerd() {
    if [ -d /run/systemd/system ] && systemctl is-active --quiet docker 2>/dev/null; then
        say "reloading docker.service"
        systemctl reload docker
        return
    fi
    local pid=""
    [ -r /var/run/docker.pid ] && pid="$(cat /var/run/docker.pid)"
    if [ -z "$pid" ] || [ "$(cat "/proc/$pid/comm" 2>/dev/null)" != "dockerd" ]; then
        pid="$(pgrep -xo dockerd || true)"
    fi
    [ -n "$pid" ] || return 1
    say "sending SIGHUP to dockerd (pid $pid) so it reads $DAEMON_JSON again"
    kill -HUP "$pid"
}
setup_gvisor() {
    if gvisor_registered; then
        say "gVisor runtime '$GVISOR_RUNTIME' is registered in dockerd"
        return 0
    fi
    if ! is_root || ! is_debian; then
        gvisor_unavailable "this script can only install it as root on Debian. To enable it: install gVisor's runsc, add {\"runtimes\": {\"$GVISOR_RUNTIME\": {\"path\": \"/usr/bin/runsc\", \"runtimeArgs\": [\"--network=none\"]}}} to $DAEMON_JSON, reload dockerd (systemctl reload docker, or kill -HUP its pid) and run this again"
        return 0
    fi
    if ! command -v runsc >/dev/null; then
        apt_install runsc || { gvisor_unavailable "apt-get could not install runsc"; return 0; }
    fi
    local runsc_path
    runsc_path="$(command -v runsc)" || { gvisor_unavailable "runsc is not on PATH after installing it"; return 0; }
    mkdir -p "$(dirname "$DAEMON_JSON")"
    # Merge into the existing file: other keys and other runtimes stay as they are.
    "$PYTHON" - "$DAEMON_JSON" "$GVISOR_RUNTIME" "$runsc_path" <<'PY' || die "could not update $DAEMON_JSON (is it valid JSON?)"
import json, os, sys
path, name, runsc = sys.argv[1:4]
try:
    with open(path) as f:
        text = f.read()
    data = json.loads(text) if text.strip() else {}
except FileNotFoundError:
    data = {}
except ValueError as exc:
    sys.exit(f"[setup] {path} is not valid JSON ({exc}); fix it by hand, then run this again")
if not isinstance(data, dict) or not isinstance(data.get("runtimes", {}), dict):
    sys.exit(f"[setup] {path}: expected a JSON object whose \"runtimes\" is an object")
wanted = {"path": runsc, "runtimeArgs": ["--network=none"]}
runtimes = data.setdefault("runtimes", {})
if runtimes.get(name) != wanted:
    runtimes[name] = wanted
    tmp = path + ".appliance-tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=2)
        f.write("\n")
    if os.path.exists(path):
        os.chmod(tmp, os.stat(path).st_mode & 0o7777)
    os.replace(tmp, path)
    print(f"[setup] registered runtime {name!r} ({runsc}) in {path}", file=sys.stderr)
PY
    reload_dockerd || { gvisor_unavailable "no dockerd process found to reload; restart the Docker engine"; return 0; }
    for _ in $(seq 1 40); do gvisor_registered && break; sleep 0.5; done
    if gvisor_registered; then
        say "gVisor runtime '$GVISOR_RUNTIME' is registered in dockerd"
    else
        gvisor_unavailable "dockerd did not pick up the runtime from $DAEMON_JSON (see its log; a daemon.json key that conflicts with a dockerd flag stops the reload)"
    fi
}
setup_gvisor

# --- the Phoenix test client (tests only) -------------------------------------------------
# The official `phoenix` JavaScript client and `ws`, at the versions of the lockfile, for
# tests/test_phoenix_client.py (Node 20 and npm are needed; the npm registry is asked once).
if [ $WITH_TEST -eq 1 ]; then
    PHOENIX_CLIENT="$ROOT/tests/phoenix_client"
    if ! command -v npm >/dev/null; then
        is_root && is_debian && apt_install nodejs npm
    fi
    command -v npm >/dev/null || die "npm is needed for the Phoenix client tests: install Node.js 20 and npm, then run this again"
    if [ ! -f "$PHOENIX_CLIENT/node_modules/.package-lock.json" ] || ! cmp -s "$PHOENIX_CLIENT/package-lock.json" "$PHOENIX_CLIENT/node_modules/.lock-installed"; then
        say "installing the phoenix test client (npm ci in tests/phoenix_client)"
        (cd "$PHOENIX_CLIENT" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
        cp "$PHOENIX_CLIENT/package-lock.json" "$PHOENIX_CLIENT/node_modules/.lock-installed"
    fi
fi

# --- runtime images ---------------------------------------------------------------------
say "checking runtime images (built from Debian packages when missing; this takes a few minutes once)"
"$VENV/bin/python" -m appliance images build ${APPLIANCE_DATA_DIR:+--data-dir "$APPLIANCE_DATA_DIR"}
say "ready"
