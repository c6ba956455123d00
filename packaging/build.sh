#!/usr/bin/env bash
# Build the appliance binary, reproducibly:
#   dist/appliance            one file, everything inside (unpacks itself on each start)
#   dist/appliance-onedir/    the same program as a folder (starts faster; run
#                             dist/appliance-onedir/appliance)
#   dist/SHA256SUMS           checksums of every file above (sha256sum -c SHA256SUMS)
#
# Builds in its own venv (packaging/.build-venv) from the pinned versions in
# packaging/requirements.lock (the dev venv's; packaging/write_lock.py writes it) and the
# appliance's sources in this checkout, with
# SOURCE_DATE_EPOCH from the last commit and PYTHONHASHSEED=0, so the same checkout gives
# the same bytes. Safe to run again: the venv is reused while the lock is unchanged.
#
#   packaging/build.sh
#   PYTHON=python3.11 packaging/build.sh                  the interpreter to build with
#   APPLIANCE_RUNTIME_TMPDIR=/path packaging/build.sh     bake a fixed unpack dir into the
#                                                         one-file build (default: $TMPDIR)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_VENV="${APPLIANCE_BUILD_VENV:-$ROOT/packaging/.build-venv}"
LOCK="$ROOT/packaging/requirements.lock"
DIST="$ROOT/dist"
WORK="$ROOT/build/pyinstaller"
STARTED=$SECONDS

say() { printf '[build %3ds] %s\n' "$((SECONDS - STARTED))" "$*" >&2; }
die() { printf '[build] error: %s\n' "$*" >&2; exit 1; }

# The interpreter: the one the dev venv was made from (the tested Python), else python3.
if [ -z "${PYTHON:-}" ]; then
    if [ -x "$ROOT/.venv/bin/python" ]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON=python3; fi
fi
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
    || die "$PYTHON is not Python 3.11 or newer; set PYTHON=/path/to/python3.11"
# PyInstaller bundles libpython: the interpreter must come with the shared library.
"$PYTHON" - <<'PY' || die "$PYTHON has no shared libpython, which PyInstaller bundles. On Debian: apt-get install -y libpython3-dev (or build Python with --enable-shared), then run this again"
import ctypes.util, sys, sysconfig
shared = sysconfig.get_config_var("Py_ENABLE_SHARED")
sys.exit(0 if shared or ctypes.util.find_library("python%d.%d" % sys.version_info[:2]) else 1)
PY
# PyInstaller reads binaries' dependencies with objdump and strips them with strip.
if ! command -v objdump >/dev/null || ! command -v strip >/dev/null; then
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
        say "installing binutils (objdump, strip)"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends binutils >/dev/null
    else
        die "objdump and strip are missing: install binutils (Debian: apt-get install -y binutils), then run this again"
    fi
fi

# Reproducible output: timestamps from the last commit, fixed hashing, locale and umask.
if SOURCE_DATE_EPOCH="$(git -C "$ROOT" log -1 --format=%ct 2>/dev/null)" && [ -n "$SOURCE_DATE_EPOCH" ]; then
    say "SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH (the last commit)"
else
    SOURCE_DATE_EPOCH=315532800  # 1980-01-01, the earliest a zip can store: not a git checkout
    say "not a git checkout: SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH"
fi
export SOURCE_DATE_EPOCH PYTHONHASHSEED=0 TZ=UTC LC_ALL=C.UTF-8 PYTHONDONTWRITEBYTECODE=1
umask 022

# --- the build venv, from the lock ------------------------------------------------------
pip() {  # quiet pip in the build venv; its output only when it fails
    local out
    if ! out="$("$BUILD_VENV/bin/python" -m pip "$@" 2>&1)"; then
        printf '%s\n' "$out" | grep -v '^WARNING: Location' | tail -20 >&2
        die "pip $* failed"
    fi
}
stamp="$BUILD_VENV/.lock-installed"
want="$(cat "$LOCK" <("$PYTHON" -c 'import sys; print(sys.version)') | sha256sum | cut -c1-16)"
if [ ! -x "$BUILD_VENV/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
    say "creating the build venv $BUILD_VENV from $(basename "$LOCK")"
    rm -rf "$BUILD_VENV"
    "$PYTHON" -m venv "$BUILD_VENV"
    # --no-deps: exactly the lock, nothing resolved anew; the checks below prove it complete.
    pip install -q --no-deps -r "$LOCK"
    echo "$want" > "$stamp"
else
    say "build venv is up to date ($BUILD_VENV)"
fi
# The appliance itself comes from this checkout (appliance.spec puts it on the path); its
# requirements in pyproject.toml, `build` extra included, must be met by the lock.
pip check
"$BUILD_VENV/bin/python" "$ROOT/packaging/write_lock.py" --check \
    || die "the lock does not satisfy pyproject.toml; run .venv/bin/python packaging/write_lock.py"

# --- PyInstaller ------------------------------------------------------------------------
say "running PyInstaller (one file and one folder; this takes a minute or two)"
log="$ROOT/build/pyinstaller.log"
mkdir -p "$ROOT/build"
if ! (cd "$ROOT" && "$BUILD_VENV/bin/python" -m PyInstaller --noconfirm --clean --log-level WARN \
        --distpath "$DIST" --workpath "$WORK" appliance.spec) >"$log" 2>&1; then
    tail -30 "$log" >&2
    die "PyInstaller failed; the whole log is in $log"
fi

version="$("$DIST/appliance" --version)" || die "the built binary does not start: $DIST/appliance --version failed"
[ "$("$DIST/appliance-onedir/appliance" --version)" = "$version" ] || die "the one-folder build does not start"

# --- checksums --------------------------------------------------------------------------
(cd "$DIST" && find appliance appliance-onedir -type f | LC_ALL=C sort | xargs -d '\n' sha256sum > SHA256SUMS)
say "built $version: $DIST/appliance ($(du -m "$DIST/appliance" | cut -f1) MB), $DIST/appliance-onedir/ ($(du -sm "$DIST/appliance-onedir" | cut -f1) MB)"
say "sha256 $(grep ' appliance$' "$DIST/SHA256SUMS" | cut -d' ' -f1)  dist/appliance"
