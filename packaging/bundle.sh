#!/usr/bin/env bash
# The offline bundle: everything an air-gapped lab needs to install the appliance, in one
# directory and one tarball, dist/appliance-bundle-<version>-linux-<arch>[.tar.gz]:
#
#   appliance        the single-file binary (packaging/build.sh builds it when missing)
#   images/KEY.tar   one `docker save` tarball per runtime image (`appliance images export`)
#   install.sh       the installer (packaging/install.sh); appliance.service, its unit
#   README.md        how to install, upgrade and uninstall
#   SHA256SUMS       every file above; install.sh checks it before it changes anything
#   wheels/          with --cluster: the appliance and every dependency with Ray (the
#                    `cluster` extra) as wheels, for the venv cluster mode runs from
#                    (docs/cluster.md; Ray's workers cannot live in the one-file binary)
#
#   packaging/bundle.sh [--images python,node,...] [--out DIR] [--binary FILE] [--cluster]
#
# --images: the runtime images to carry (default: all; they must be built, see
# `appliance images build`). --out: where the bundle goes (default dist/). --binary:
# bundle this binary instead of dist/appliance. The tarball also gets a .sha256 file, to
# check the copy that reaches the lab. --cluster: also the wheels (asks the package index
# once, through pip; PYTHON=python3.11 sets the interpreter whose wheels are taken: the
# lab's machines must have the same Python version).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
IMAGES="" OUT="$ROOT/dist" BINARY="" CLUSTER=0

say() { printf '[bundle] %s\n' "$*" >&2; }
die() { printf '[bundle] error: %s\n' "$*" >&2; exit 1; }
usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; }

while [ $# -gt 0 ]; do
    case "$1" in
        --images) [ $# -ge 2 ] || die "--images needs a list, e.g. --images python,node"; IMAGES="$2"; shift 2 ;;
        --images=*) IMAGES="${1#*=}"; shift ;;
        --out) [ $# -ge 2 ] || die "--out needs a directory"; OUT="$2"; shift 2 ;;
        --out=*) OUT="${1#*=}"; shift ;;
        --binary) [ $# -ge 2 ] || die "--binary needs a file"; BINARY="$2"; shift 2 ;;
        --binary=*) BINARY="${1#*=}"; shift ;;
        --cluster) CLUSTER=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
done

# --- 1. the binary ----------------------------------------------------------------------
if [ -z "$BINARY" ]; then
    BINARY="$ROOT/dist/appliance"
    if [ ! -x "$BINARY" ]; then
        [ -x "$ROOT/packaging/build.sh" ] || die "no binary at $BINARY and no packaging/build.sh to build it"
        say "[1/4] no $BINARY yet: building it (packaging/build.sh)"
        "$ROOT/packaging/build.sh" >&2
        [ -x "$BINARY" ] || die "packaging/build.sh did not produce $BINARY"
    fi
fi
[ -x "$BINARY" ] || die "$BINARY is not an executable file"
version="$("$BINARY" --version)" || die "$BINARY --version failed: is it a build of the appliance for this machine?"
version="${version#appliance }"
[[ "$version" =~ ^[0-9A-Za-z.+_-]+$ ]] || die "$BINARY --version said '$version', not a version"
name="appliance-bundle-$version-linux-$(uname -m)"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
dir="$OUT/$name" tarball="$OUT/$name.tar.gz"
say "[1/4] $name: binary $BINARY ($(du -h "$BINARY" | cut -f1))"
rm -rf "$dir" "$tarball" "$tarball.sha256"
mkdir -p "$dir/images"
cp "$BINARY" "$dir/appliance"
chmod 0755 "$dir/appliance"

# --- 2. the runtime images --------------------------------------------------------------
# One tarball per image: a lab can load (and a bundle can carry) only some of them.
if [ -z "$IMAGES" ]; then  # every image the appliance knows, present or not (export says)
    IMAGES="$("$BINARY" images list | awk 'NR > 1 {print $1}' | paste -sd, -)" \
        || die "could not list the runtime images (is the Docker engine running?)"
fi
IFS=',' read -r -a keys <<< "$IMAGES"
[ ${#keys[@]} -gt 0 ] || die "--images names no image"
n=0
for key in "${keys[@]}"; do
    n=$((n + 1))
    say "[2/4] image $n/${#keys[@]}: $key (docker save)"
    "$BINARY" images export "$dir/images/$key.tar" "$key" \
        || die "could not export the '$key' image (build it first: appliance images build $key)"
done

# --- 2b. the cluster extra's wheels -------------------------------------------------------
if [ $CLUSTER -eq 1 ]; then
    if [ -z "${PYTHON:-}" ]; then
        if [ -x "$ROOT/.venv/bin/python" ]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON=python3; fi
    fi
    say "[2/4] wheels of appliance[cluster] for $("$PYTHON" -V 2>&1) (pip wheel; Ray is about 70 MB)"
    "$PYTHON" -m pip wheel -q -w "$dir/wheels" "$ROOT[cluster]" 2>&1 | grep -v '^WARNING: Location' >&2 || true
    ls "$dir"/wheels/ray-*.whl >/dev/null 2>&1 && ls "$dir"/wheels/appliance-*.whl >/dev/null 2>&1 \
        || die "pip wheel did not produce the appliance and Ray wheels (is the package index reachable?)"
fi

# --- 3. installer, unit, README, checksums ----------------------------------------------
say "[3/4] install.sh, appliance.service, README.md, SHA256SUMS"
install -m 0755 "$ROOT/packaging/install.sh" "$dir/install.sh"
install -m 0644 "$ROOT/packaging/appliance.service" "$dir/appliance.service"
cat > "$dir/README.md" <<EOF
# appliance $version: offline bundle (Linux $(uname -m))

Everything needed to install the appliance on a machine with no internet: the
single-file binary \`appliance\`, the runtime images (\`images/*.tar\`, \`docker save\`
tarballs: ${keys[*]}), the installer and the systemd unit.

## Install (as root)

    tar xzf $name.tar.gz && ./$name/install.sh

The installer first checks every file against \`SHA256SUMS\` and stops, changing
nothing, if one does not match. Then it checks for the Docker engine (and says what to
install if there is none), installs the binary as /usr/local/bin/appliance, loads the
images, creates the system user \`appliance\` (in group \`docker\`) and its data dir
/var/lib/appliance (0700), installs and enables \`appliance.service\`, starts it, and
prints where the admin API key is (/var/lib/appliance/admin.key, mode 0600). Address
and port (default 127.0.0.1:8080) are set in /var/lib/appliance/config.toml.

Options: \`--prefix DIR\` (binary in DIR/bin), \`--data-dir DIR\`, \`--user NAME\`,
\`--service NAME\` (the unit's name), \`--no-start\`. \`./install.sh --help\` says more.

## Upgrade

Unpack the newer bundle and run its install.sh the same way: the binary is replaced,
the service restarted, the data dir kept.

## Uninstall

    ./install.sh --uninstall           # the service and the binary; keeps data and user
    ./install.sh --uninstall --purge   # also the data dir and the user

The runtime images stay in Docker (\`docker image rm appliance-runtime-KEY:TAG\`).
EOF
if [ $CLUSTER -eq 1 ]; then
    cat >> "$dir/README.md" <<EOF

## Cluster mode

\`wheels/\` holds the appliance and every dependency with Ray, for the venv that cluster
mode runs from on every machine (the same Python version as this bundle's:
$("$PYTHON" -V 2>&1)):

    python3 -m venv /opt/appliance-cluster
    /opt/appliance-cluster/bin/pip install --no-index --find-links wheels 'appliance[cluster]'

Then docs/cluster.md (\`appliance node start\` on each machine, \`serve --cluster\` on the head).
EOF
fi
(cd "$dir" && find . -type f ! -name SHA256SUMS -printf '%P\n' | LC_ALL=C sort | xargs -d '\n' sha256sum > SHA256SUMS)

# --- 4. the tarball ---------------------------------------------------------------------
# Reproducible: sorted names, root owner, mtime of the binary, no name or time in gzip.
total=$(du -sb "$dir" | cut -f1)
checkpoint=$((total / 10240 / 10 + 1))  # tar counts 10 KiB records: a line per ~10%
say "[4/4] $name.tar.gz ($((total / 1000000)) MB to compress)"
tar -C "$OUT" --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$(stat -c %Y "$BINARY")" \
    --checkpoint="$checkpoint" \
    --checkpoint-action="exec=sh -c 'echo \"[bundle] [4/4] \$((TAR_CHECKPOINT * 10240 * 100 / $total))%\" >&2'" \
    -cf - "$name" | gzip -n > "$tarball.part"
mv "$tarball.part" "$tarball"
(cd "$OUT" && sha256sum "$name.tar.gz" > "$name.tar.gz.sha256")
say "done: $tarball ($(du -h "$tarball" | cut -f1)), checksum in $name.tar.gz.sha256"
say "install it (as root): tar xzf $name.tar.gz && ./$name/install.sh"
echo "$tarball"
