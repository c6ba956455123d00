#!/usr/bin/env bash
# Install the appliance from this unpacked offline bundle; no network needed. As root:
#
#   ./install.sh [--prefix DIR] [--data-dir DIR] [--user NAME] [--service NAME] [--no-start]
#   ./install.sh --uninstall [--purge]      (with the same options the install had)
#
#   --prefix DIR    the binary goes to DIR/bin/appliance             (default /usr/local)
#   --data-dir DIR  database, admin key, logs, config.toml           (default /var/lib/appliance)
#   --user NAME     the system user the service runs as, in group docker  (default appliance)
#   --service NAME  the systemd unit, /etc/systemd/system/NAME.service    (default appliance)
#   --no-start      install and enable the service, but do not start it
#   --uninstall     stop, disable and remove the service and the binary; the data dir,
#                   the user and the runtime images stay
#   --purge         with --uninstall: also remove the data dir and the user
#
# In order: every file is checked against SHA256SUMS (nothing changes on a mismatch);
# the Docker engine is checked (installed with apt-get only when a configured mirror
# offers docker.io, started when installed but stopped); then the binary is installed,
# the images loaded, the user and data dir created, the unit installed and enabled, the
# service started (when systemd runs this machine) and the admin key's place printed.
# Running it again upgrades the binary and keeps the data.
set -euo pipefail

BUNDLE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PREFIX=/usr/local DATA_DIR=/var/lib/appliance SERVICE_USER=appliance SERVICE=appliance
START=1 ACTION=install PURGE=0
UNIT_DIR=/etc/systemd/system
KEY_WAIT_SECONDS=60

say() { printf 'install: %s\n' "$*" >&2; }
die() { printf 'install: error: %s\n' "$*" >&2; exit 1; }
usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; }

ARGS="$*"
need_value() { [ $# -ge 2 ] && [ -n "$2" ] || die "$1 needs a value (see --help)"; }
while [ $# -gt 0 ]; do
    case "$1" in
        --prefix|--data-dir|--user|--service) need_value "$@"; opt="$1" value="$2"; shift 2 ;;
        --prefix=*|--data-dir=*|--user=*|--service=*) opt="${1%%=*}" value="${1#*=}"; shift ;;
        --no-start) START=0; shift; continue ;;
        --uninstall) ACTION=uninstall; shift; continue ;;
        --purge) PURGE=1; shift; continue ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
    case "$opt" in
        --prefix) PREFIX="${value%/}" ;;
        --data-dir) DATA_DIR="${value%/}" ;;
        --user) SERVICE_USER="$value" ;;
        --service) SERVICE="${value%.service}" ;;
    esac
done

[ $PURGE -eq 0 ] || [ "$ACTION" = uninstall ] || die "--purge goes with --uninstall"
for path in "$PREFIX" "$DATA_DIR"; do
    [[ "$path" = /?* ]] || die "'$path' is not an absolute path"
    # The paths are written into the unit file, whose ExecStart splits on spaces.
    [[ "$path" =~ ^[A-Za-z0-9._/+@:-]+$ ]] || die "'$path': use letters, digits and . _ - + @ : / only"
done
[[ "$SERVICE_USER" =~ ^[a-z_][a-z0-9_-]{0,31}$ ]] || die "'$SERVICE_USER' is not a valid user name"
[[ "$SERVICE" =~ ^[A-Za-z0-9_.-]+$ ]] || die "'$SERVICE' is not a valid unit name"
[ "$(id -u)" -eq 0 ] || die "run it as root (sudo $0 $ARGS)"

BIN="$PREFIX/bin/appliance"
UNIT="$UNIT_DIR/$SERVICE.service"
WANTS="$UNIT_DIR/multi-user.target.wants/$SERVICE.service"

systemd_runs() { [ -d /run/systemd/system ]; }  # sd_booted(): PID 1 is systemd
pid1() { cat /proc/1/comm 2>/dev/null || echo unknown; }
start_by_hand() {  # what the unit runs, for a machine where systemd does not
    echo "runuser -u $SERVICE_USER -- env APPLIANCE_DATA_DIR=$DATA_DIR TMPDIR=$DATA_DIR/tmp $BIN serve --data-dir $DATA_DIR"
}

# --- uninstall --------------------------------------------------------------------------

uninstall() {
    if systemd_runs; then
        systemctl disable --now "$SERVICE.service" 2>/dev/null || true
    elif command -v systemctl >/dev/null; then
        systemctl disable "$SERVICE.service" >/dev/null 2>&1 || true
    fi
    if [ -e "$UNIT" ] || [ -L "$WANTS" ]; then
        rm -f "$WANTS" "$UNIT"
        if systemd_runs; then systemctl daemon-reload; fi
        say "removed the service $SERVICE ($UNIT)"
    else
        say "no service $SERVICE to remove ($UNIT)"
    fi
    if pids="$(pgrep -u "$SERVICE_USER" -d ' ' 2>/dev/null)" && [ -n "$pids" ]; then
        say "processes of $SERVICE_USER still run (pids $pids), e.g. an appliance started by hand: stop them"
    fi
    if [ -e "$BIN" ]; then rm -f "$BIN"; say "removed $BIN"; else say "no $BIN to remove"; fi
    if [ $PURGE -eq 0 ]; then
        say "kept the data dir $DATA_DIR and the user $SERVICE_USER (--purge removes them)"
    else
        purge
    fi
    say "the runtime images stay in Docker (docker image rm appliance-runtime-KEY:TAG removes one)"
}

purge() {
    case "$DATA_DIR" in
        /|/bin|/boot|/dev|/etc|/home|/lib|/opt|/proc|/root|/run|/sbin|/srv|/sys|/tmp|/usr|/usr/*bin|/var|/var/lib|/var/tmp)
            die "will not remove $DATA_DIR" ;;
    esac
    if [ -d "$DATA_DIR" ]; then
        # Only the directory this installer made: owned by the service user.
        [ "$(stat -c %U "$DATA_DIR")" = "$SERVICE_USER" ] \
            || die "$DATA_DIR is not owned by $SERVICE_USER: not removing it (remove it yourself)"
        rm -rf "$DATA_DIR"
        say "removed the data dir $DATA_DIR"
    fi
    if uid="$(id -u "$SERVICE_USER" 2>/dev/null)"; then
        # A system user (useradd --system gives 100..999), never root or a person's account.
        [ "$uid" -ge 100 ] && [ "$uid" -lt 1000 ] \
            || die "$SERVICE_USER (uid $uid) is not a system user: not removing it"
        userdel "$SERVICE_USER" || die "could not remove the user $SERVICE_USER (processes still running as it?)"
        getent group "$SERVICE_USER" >/dev/null && groupdel "$SERVICE_USER" 2>/dev/null || true
        say "removed the user $SERVICE_USER"
    fi
}

# --- install: checks before any change --------------------------------------------------

verify_bundle() {
    [ -f "$BUNDLE/SHA256SUMS" ] || die "no SHA256SUMS in $BUNDLE: the bundle is incomplete; copy it again. Nothing was installed."
    say "checking $(wc -l < "$BUNDLE/SHA256SUMS") files against SHA256SUMS ($(du -sh "$BUNDLE" | cut -f1))"
    local report
    if ! report="$(cd "$BUNDLE" && sha256sum --check --strict SHA256SUMS 2>&1)"; then
        local bad
        bad="$(printf '%s\n' "$report" | grep -v ': OK$' | grep -v '^sha256sum: WARNING' | tr '\n' ' ')"
        die "checksum mismatch, the bundle is damaged or was altered: ${bad}Nothing was installed; copy the bundle again (check the .tar.gz against its .sha256 file first)."
    fi
    local listed
    for required in appliance appliance.service; do
        listed="$(awk -v f="$required" '$2 == f || $2 == "*" f' "$BUNDLE/SHA256SUMS")"
        [ -n "$listed" ] || die "SHA256SUMS does not list $required: not an appliance bundle. Nothing was installed."
    done
}

engine_answers() {
    if command -v docker >/dev/null; then
        timeout 20 docker info >/dev/null 2>&1
    else  # the bundle's own binary talks to the engine as the appliance will
        timeout 20 "$BUNDLE/appliance" images list >/dev/null 2>&1
    fi
}

ensure_docker() {
    engine_answers && { say "the Docker engine answers"; return; }
    if ! command -v dockerd >/dev/null; then
        local candidate=""
        command -v apt-cache >/dev/null && candidate="$(apt-cache policy docker.io 2>/dev/null | awk '/Candidate:/ {print $2}')"
        if [ -z "$candidate" ] || [ "$candidate" = "(none)" ]; then
            die "Docker is not installed, and apt offers no docker.io package here (air-gapped?). Install the Docker engine first: from a local Debian mirror 'apt-get install docker.io', or copy the .deb files of docker.io, containerd and runc (and their dependencies) and 'dpkg -i *.deb'; elsewhere your distribution's Docker Engine packages. Then run this again. Nothing was installed."
        fi
        say "Docker is not installed: installing docker.io $candidate with apt-get"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o Acquire::http::Timeout=20 -o Acquire::Retries=0 docker.io \
            || die "apt-get install docker.io failed (no reachable mirror?). Install the Docker engine by hand (see above: a local mirror or the .deb files) and run this again. Nothing else was installed."
    fi
    if systemd_runs; then
        say "starting docker.service"
        systemctl enable --now docker.service || true
    else
        say "starting dockerd in the background, systemd does not run here (log: /var/log/appliance-dockerd.log)"
        nohup dockerd >/var/log/appliance-dockerd.log 2>&1 &
    fi
    for _ in $(seq 1 60); do engine_answers && break; sleep 0.5; done
    engine_answers || die "the Docker engine did not come up (systemctl status docker, or /var/log/appliance-dockerd.log). Nothing else was installed."
    say "the Docker engine answers"
}

# --- install: the changes ---------------------------------------------------------------

install_binary() {
    local old=""
    [ -x "$BIN" ] && old="$("$BIN" --version 2>/dev/null || echo 'an unknown version')"
    install -d -m 0755 "$PREFIX/bin"
    # Beside it, then renamed over it: a running service keeps its old file until restarted.
    install -m 0755 "$BUNDLE/appliance" "$BIN.new"
    mv -f "$BIN.new" "$BIN"
    local new
    new="$("$BIN" --version)" || die "$BIN does not run on this machine ($(uname -m))"
    if [ -n "$old" ]; then say "$BIN: $old -> $new"; else say "$BIN: $new"; fi
}

load_images() {
    local tarballs=("$BUNDLE"/images/*.tar)
    [ -e "${tarballs[0]}" ] || { say "no runtime images in this bundle: build them with '$BIN images build'"; return; }
    local n=0
    for tarball in "${tarballs[@]}"; do
        n=$((n + 1))
        say "loading image $n/${#tarballs[@]}: $(basename "$tarball" .tar)"
        "$BIN" images import "$tarball" || die "could not load $tarball into Docker"
    done
}

create_user() {
    if id -u "$SERVICE_USER" >/dev/null 2>&1; then
        say "the user $SERVICE_USER exists"
    else
        local shell=/usr/sbin/nologin
        [ -x "$shell" ] || shell=/bin/false
        useradd --system --user-group --home-dir "$DATA_DIR" --no-create-home --shell "$shell" \
            --comment "appliance service" "$SERVICE_USER"
        say "created the system user $SERVICE_USER (no login shell)"
    fi
    getent group docker >/dev/null \
        || die "there is no 'docker' group, so $SERVICE_USER cannot be given the Docker socket: reinstall the Docker engine's package (it creates the group) and run this again"
    usermod -a -G docker "$SERVICE_USER"
}

create_data_dir() {
    # On an existing dir this only resets the dir's own owner and mode: the data is kept.
    local group
    group="$(id -gn "$SERVICE_USER")"
    install -d -m 0700 -o "$SERVICE_USER" -g "$group" "$DATA_DIR"
    # The unit's TMPDIR: where the single-file binary unpacks itself on each start.
    install -d -m 0700 -o "$SERVICE_USER" -g "$group" "$DATA_DIR/tmp"
    runuser -u "$SERVICE_USER" -- test -w "$DATA_DIR" \
        || die "$SERVICE_USER cannot write $DATA_DIR: a directory above it is not searchable by others (chmod o+x it), or choose another --data-dir"
    runuser -u "$SERVICE_USER" -- env TMPDIR="$DATA_DIR/tmp" "$BIN" --version >/dev/null \
        || die "$SERVICE_USER cannot run $BIN: a directory above it is not searchable by others (chmod o+x it), or choose another --prefix"
    say "data dir $DATA_DIR (0700, owner $SERVICE_USER)"
}

install_unit() {
    install -d -m 0755 "$UNIT_DIR"
    sed -e "s|^User=appliance\$|User=$SERVICE_USER|" \
        -e "s|/usr/local/bin/appliance|$BIN|g" \
        -e "s|/var/lib/appliance|$DATA_DIR|g" \
        "$BUNDLE/appliance.service" > "$UNIT.new"
    chmod 0644 "$UNIT.new"
    mv -f "$UNIT.new" "$UNIT"
    if systemd_runs; then
        systemctl daemon-reload
        systemctl enable --quiet "$SERVICE.service" || die "systemctl enable $SERVICE failed"
    elif command -v systemctl >/dev/null; then  # works offline: it only makes the symlink
        systemctl enable --quiet "$SERVICE.service" 2>/dev/null || true
    fi
    if [ ! -L "$WANTS" ]; then  # no systemctl at all
        install -d -m 0755 "$(dirname "$WANTS")"
        ln -sf "$UNIT" "$WANTS"
    fi
    say "installed and enabled $UNIT"
}

start_service() {
    local key="$DATA_DIR/admin.key"
    if [ $START -eq 0 ]; then
        say "not started (--no-start): systemctl start $SERVICE"
    elif ! systemd_runs; then
        say "systemd is not running this machine (PID 1 is $(pid1)): the service is enabled for a boot under systemd; until then start the appliance by hand, as root:"
        say "  $(start_by_hand) &"
        [ -f "$key" ] || say "its first start writes the admin API key to $key"
    else
        if systemctl is-active --quiet "$SERVICE.service"; then
            say "restarting $SERVICE (the new binary)"
            systemctl restart "$SERVICE.service" || die "$SERVICE did not restart: see 'journalctl -u $SERVICE'"
        else
            say "starting $SERVICE"
            systemctl start "$SERVICE.service" || die "$SERVICE did not start: see 'journalctl -u $SERVICE'"
        fi
        local waited=0
        while [ ! -s "$key" ] && [ $waited -lt $((KEY_WAIT_SECONDS * 2)) ]; do
            systemctl is-failed --quiet "$SERVICE.service" && break
            sleep 0.5
            waited=$((waited + 1))
        done
        if [ ! -s "$key" ]; then
            if [ -f "$DATA_DIR/appliance.db" ] && systemctl is-active --quiet "$SERVICE.service"; then
                say "$SERVICE runs; there is no $key (removed after an earlier install?). A new admin key:"
                say "  runuser -u $SERVICE_USER -- $BIN keys create --data-dir $DATA_DIR --name ops --permissions admin,execute,read"
            else
                die "$SERVICE did not write $key within ${KEY_WAIT_SECONDS}s: see 'journalctl -u $SERVICE' and 'systemctl status $SERVICE'"
            fi
        fi
    fi
    [ -s "$key" ] || return 0
    say "the admin API key is in $key (mode 0600, owner $SERVICE_USER)"
    say "the TUI, as the service user: sudo -u $SERVICE_USER $BIN tui --data-dir $DATA_DIR"
    say "  or copy the key to an operator: install -m 0600 -o OPERATOR $key ~OPERATOR/appliance-admin.key"
    say "  then, as OPERATOR: appliance tui --url http://127.0.0.1:8080 --api-key-file ~/appliance-admin.key"
}

if [ "$ACTION" = uninstall ]; then
    uninstall
    exit 0
fi
say "installing appliance from $BUNDLE (binary $BIN, data dir $DATA_DIR, user $SERVICE_USER, service $SERVICE)"
verify_bundle
ensure_docker
install_binary
load_images
create_user
create_data_dir
install_unit
start_service
say "done"
