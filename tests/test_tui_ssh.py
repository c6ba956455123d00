"""The operator's way in: `ssh -t host appliance tui`. A private sshd (Debian's
openssh-server) on a loopback port with its own host key and config, a client key made
by the test; the TUI is run over that SSH session inside tmux and read from the screen."""

from __future__ import annotations

import getpass
import shlex
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from tests.support import eventually, free_port
from tests.tmux_support import APPLIANCE, TmuxSession

pytestmark = pytest.mark.slow

PRIVILEGE_SEPARATION_DIR = Path("/run/sshd")  # sshd refuses to start without it


class PrivateSshd:
    def __init__(self, proc: subprocess.Popen, port: int, client_key: Path, log_path: Path) -> None:
        self.proc, self.port, self.client_key, self.log_path = proc, port, client_key, log_path
        self.user = getpass.getuser()

    def ssh_command(self, remote: list[str]) -> list[str]:
        return [
            "ssh",
            "-t",
            "-F",
            "/dev/null",
            "-p",
            str(self.port),
            "-i",
            str(self.client_key),
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "IdentitiesOnly=yes",
            "-o",
            "LogLevel=ERROR",
            f"{self.user}@127.0.0.1",
            shlex.join(remote),
        ]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def keygen(path: Path) -> Path:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "appliance-test", "-f", str(path)],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return path


@pytest.fixture
def private_sshd(tmp_path):
    sshd = shutil.which("sshd") or "/usr/sbin/sshd"
    if not Path(sshd).exists():
        pytest.fail("no sshd: install Debian's openssh-server (scripts/setup.sh --test does)", pytrace=False)
    if not PRIVILEGE_SEPARATION_DIR.is_dir():
        PRIVILEGE_SEPARATION_DIR.mkdir(mode=0o755, parents=True)
    home = tmp_path / "sshd"
    home.mkdir()
    host_key = keygen(home / "host_key")
    client_key = keygen(home / "client_key")
    authorized = home / "authorized_keys"
    authorized.write_text((home / "client_key.pub").read_text())
    port = free_port()
    config = home / "sshd_config"
    config.write_text(f"""\
Port {port}
ListenAddress 127.0.0.1
HostKey {host_key}
PidFile {home / "sshd.pid"}
AuthorizedKeysFile {authorized}
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UsePAM no
StrictModes no
PrintMotd no
LogLevel VERBOSE
""")
    log_path = home / "sshd.log"
    # -D: stay in the foreground, so the pid is ours to stop; -e -E: log to a file.
    proc = subprocess.Popen(
        [sshd, "-D", "-e", "-f", str(config), "-E", str(log_path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )

    def listening() -> bool:
        if proc.poll() is not None:
            pytest.fail(f"sshd exited with {proc.returncode}: {log_path.read_text(errors='replace')}", pytrace=False)
        with socket.socket() as probe:
            return probe.connect_ex(("127.0.0.1", port)) == 0

    try:
        eventually(listening, interval=0.05, message="sshd listening")
    except AssertionError:
        proc.kill()
        raise
    yield PrivateSshd(proc, port, client_key, log_path)
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def test_the_tui_over_ssh(server, private_sshd, tmp_path):
    key_file = tmp_path / "operator.key"
    key_file.write_text(server.admin_key + "\n")
    key_file.chmod(0o600)
    remote = [str(APPLIANCE), "tui", "--url", server.url, "--api-key-file", str(key_file)]
    with TmuxSession(tmp_path) as tmux:
        tmux.start(private_sshd.ssh_command(remote))
        screen = tmux.wait_for(lambda s: all(n in s for n in ("Dashboard", "Evaluations", "Quit")))
        assert "Dashboard" in screen.splitlines()[0], screen  # the header, drawn through the SSH pty
        assert server.url.removeprefix("http://") in screen.splitlines()[0]
        assert f"Accepted publickey for {private_sshd.user}" in private_sshd.log()

        tmux.send_keys("q")
        assert tmux.exit_status() == 0  # ssh ends with the remote TUI's status
    # the usual slip: no -t, so no terminal; one line says what to type instead
    no_pty = [arg for arg in private_sshd.ssh_command(remote) if arg != "-t"]
    result = subprocess.run(no_pty, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60)
    assert result.returncode == 2 and "ssh -t" in result.stderr, result
    log = private_sshd.log()
    assert "Starting session: command on pts/" in log  # a real pty, as `ssh -t` asks for
    assert f"Disconnected from user {private_sshd.user}" in log
