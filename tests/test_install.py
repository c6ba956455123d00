"""The offline bundle and its installer, for real: packaging/bundle.sh makes a bundle with the
python image, README.md's air-gapped install line unpacks and installs it as root (a
system user, a systemd unit, images loaded into the real engine), the service starts the
way its unit says, and --uninstall / --purge take it away again.

The install uses its own user, unit name, prefix and data dir (appliance-test, under a
temp dir), so it never touches a real installation; whatever happens, the fixture
uninstalls with --purge at the end. The bundle holds dist/appliance (built by
packaging/build.sh when missing), or the file APPLIANCE_BUNDLE_BINARY names.
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import httpx
import pytest

from tests.support import ROOT, answers, eventually, free_port, remove_sandboxes_of, run_eval

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]  # may build the binary first

USER = "appliance-test"
UNIT_DIR = Path("/etc/systemd/system")


def readme_install_line() -> str:
    """The command in README.md's "Install in an air-gapped lab" section, as written."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Install in an air-gapped lab", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block, "README.md's air-gapped section has no ```sh block"
    lines = [line for line in block.group(1).splitlines() if line.strip() and not line.startswith("#")]
    assert len(lines) == 1, f"README.md's air-gapped install should be one command, not {lines}"
    return lines[0]


def run(argv, cwd: Path | None = None, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout, shell=isinstance(argv, str))
    if check and result.returncode != 0:
        raise AssertionError(f"{argv} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


def user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


class Lab:
    """A directory the service user can reach (pytest's tmp dirs are 0700), holding the
    bundle's tarball, and the install's own prefix and data dir inside it."""

    def __init__(self, base: Path, tarball: Path) -> None:
        self.base = base
        self.tarball = shutil.copy2(tarball, base)
        self.prefix = base / "opt"
        self.data_dir = base / "var-lib"
        self.flags = ["--user", USER, "--service", USER, "--prefix", str(self.prefix), "--data-dir", str(self.data_dir)]
        self.binary = self.prefix / "bin" / "appliance"
        self.unit = UNIT_DIR / f"{USER}.service"

    @property
    def installer(self) -> Path:
        [script] = self.base.glob("appliance-bundle-*/install.sh")
        return script

    def unpack(self) -> Path:
        run(["tar", "xzf", str(self.tarball)], cwd=self.base)
        return self.installer.parent

    def install(self, *extra: str, check: bool = True) -> subprocess.CompletedProcess:
        return run([str(self.installer), *self.flags, *extra], cwd=self.base, check=check)

    def remove_everything(self) -> None:
        """--uninstall --purge; by hand what it left, should the installer be broken."""
        if list(self.base.glob("appliance-bundle-*/install.sh")):
            self.install("--uninstall", "--purge", check=False)
        for path in (UNIT_DIR / "multi-user.target.wants" / self.unit.name, self.unit):
            path.unlink(missing_ok=True)
        if user_exists(USER):
            subprocess.run(["userdel", USER], capture_output=True)
        shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture(scope="module")
def bundle(runtime_images, tmp_path_factory) -> Path:
    """A bundle with the python image, made once: the tarball's path."""
    out = tmp_path_factory.mktemp("bundle")
    binary = os.environ.get("APPLIANCE_BUNDLE_BINARY")
    argv = [
        str(ROOT / "packaging" / "bundle.sh"),
        "--images",
        "python",
        "--out",
        str(out),
        *(["--binary", binary] if binary else []),
    ]
    started = time.monotonic()
    result = run(argv, timeout=1700)
    print(f"bundle.sh took {time.monotonic() - started:.1f}s")
    tarball = Path(result.stdout.strip().splitlines()[-1])
    assert tarball.is_file() and tarball.name.startswith("appliance-bundle-")
    assert tarball.name.endswith("-linux-x86_64.tar.gz")
    return tarball


@pytest.fixture
def lab(bundle):
    if user_exists(USER):  # a run that died before its cleanup
        subprocess.run(["userdel", USER], capture_output=True)
    base = Path(tempfile.mkdtemp(prefix="appliance-install-"))
    base.chmod(0o755)
    lab = Lab(base, bundle)
    try:
        yield lab
    finally:
        lab.remove_everything()


def unit_fields(unit: Path) -> dict[str, list[str]]:
    fields: dict[str, list[str]] = {}
    for line in unit.read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            fields.setdefault(key, []).append(value)
    return fields


def start_as_the_unit_does(unit: Path, port: int, log: Path) -> subprocess.Popen:
    """The unit's ExecStartPre and ExecStart as its User with its Environment, listening on
    a free loopback port: what systemd would run, on a machine where systemd is not PID 1."""
    fields = unit_fields(unit)
    [user] = fields["User"]
    env = ["env", *fields["Environment"]]
    for pre in fields.get("ExecStartPre", []):
        run(["runuser", "-u", user, "--", *env, *shlex.split(pre.lstrip("-"))])
    [exec_start] = fields["ExecStart"]
    argv = ["runuser", "-u", user, "--", *env, *shlex.split(exec_start), "--host", "127.0.0.1", "--port", str(port)]
    with open(log, "wb") as sink:
        return subprocess.Popen(argv, stdout=sink, stderr=subprocess.STDOUT, cwd=fields["WorkingDirectory"][0])


def wait_until_serving(proc: subprocess.Popen, url: str, log: Path) -> None:
    def serving() -> bool:
        if proc.poll() is not None:
            pytest.fail(f"the service exited {proc.returncode}:\n{log.read_text()}", pytrace=False)
        return answers(url)

    eventually(serving, message=lambda: f"the service answering:\n{log.read_text()}")


def stop(proc: subprocess.Popen) -> None:
    """SIGTERM to the appliance itself, as systemd sends it: runuser, signalled, would
    SIGKILL it two seconds later, before a one-file binary has removed its unpacked files."""
    if proc.poll() is None:
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        for pid in children or [str(proc.pid)]:
            os.kill(int(pid), signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def test_bundle_holds_binary_images_installer_unit_and_checksums(bundle):
    name = bundle.name.removesuffix(".tar.gz")
    with tarfile.open(bundle) as tar:
        members = {m.name: m for m in tar.getmembers()}
        sums = tar.extractfile(f"{name}/SHA256SUMS").read().decode()  # type: ignore[union-attr]
    files = {
        f"{name}/{f}"
        for f in ("appliance", "install.sh", "appliance.service", "README.md", "SHA256SUMS", "images/python.tar")
    }
    assert files <= set(members), sorted(members)
    assert members[f"{name}/appliance"].mode & 0o111 and members[f"{name}/install.sh"].mode & 0o111
    listed = {line.split(None, 1)[1] for line in sums.splitlines()}
    assert listed == {"appliance", "install.sh", "appliance.service", "README.md", "images/python.tar"}
    run(["sha256sum", "--check", f"{bundle.name}.sha256"], cwd=bundle.parent)


def test_a_cluster_bundle_carries_wheels_that_install_without_an_index(runtime_images, tmp_path):
    """--cluster: the wheels of appliance[cluster] ride in the bundle, under its checksums,
    and a venv gets the appliance with Ray from them alone (pip --no-index), as a lab's
    machines do (docs/cluster.md)."""
    binary = os.environ.get("APPLIANCE_BUNDLE_BINARY")
    argv = [str(ROOT / "packaging" / "bundle.sh"), "--images", "python", "--out", str(tmp_path), "--cluster"]
    tarball = Path(run([*argv, *(["--binary", binary] if binary else [])], timeout=1700).stdout.split()[-1])
    unpacked = tmp_path / tarball.name.removesuffix(".tar.gz")
    wheels = unpacked / "wheels"
    names = sorted(path.name for path in wheels.iterdir())
    assert any(n.startswith("ray-2.60.0-") for n in names) and any(n.startswith("appliance-") for n in names), names
    listed = {line.split(None, 1)[1] for line in (unpacked / "SHA256SUMS").read_text().splitlines()}
    assert {f"wheels/{n}" for n in names} <= listed
    assert "## Cluster mode" in (unpacked / "README.md").read_text()

    venv = tmp_path / "lab-venv"
    run([sys.executable, "-m", "venv", str(venv)])
    run([str(venv / "bin" / "pip"), "install", "-q", "--no-index", "--find-links", str(wheels), "appliance[cluster]"])
    shown = run([str(venv / "bin" / "python"), "-c", "import ray, appliance.cluster; print(ray.__version__)"])
    assert shown.stdout.strip() == "2.60.0"


def test_readme_install_line_installs_a_service_that_runs_and_uninstalls(lab: Lab, docker_client):
    assert not user_exists(USER)

    # The README's command, as written, with this test's own user, unit, prefix and data dir.
    line = readme_install_line()
    started = time.monotonic()
    result = run(f"{line} {shlex.join(lab.flags)}", cwd=lab.base)
    print(f"install took {time.monotonic() - started:.1f}s")
    said = result.stderr
    assert "checking 5 files against SHA256SUMS" in said and "loading image 1/1: python" in said

    version = run([str(lab.binary), "--version"]).stdout.strip()
    assert re.fullmatch(r"appliance \d+\.\d+\.\d+\S*", version)
    assert docker_client.images.get("appliance-runtime-python:bookworm-1")
    user = pwd.getpwnam(USER)
    assert user.pw_shell in ("/usr/sbin/nologin", "/bin/false") and user.pw_uid < 1000
    assert USER in grp.getgrnam("docker").gr_mem
    data = lab.data_dir.stat()
    assert (data.st_mode & 0o777, pwd.getpwuid(data.st_uid).pw_name) == (0o700, USER)

    # Installed and enabled: the unit names this install's user, binary and data dir.
    fields = unit_fields(lab.unit)
    assert fields["User"] == [USER]
    assert fields["ExecStart"] == [f"{lab.binary} serve --data-dir {lab.data_dir}"]
    assert f"APPLIANCE_DATA_DIR={lab.data_dir}" in fields["Environment"]
    assert fields["ReadWritePaths"] == [str(lab.data_dir)]
    assert run(["systemctl", "is-enabled", lab.unit.name]).stdout.strip() == "enabled"
    assert (UNIT_DIR / "multi-user.target.wants" / lab.unit.name).resolve() == lab.unit
    if not Path("/run/systemd/system").is_dir():  # as here: PID 1 is not systemd
        assert "systemd is not running this machine" in said and "runuser -u appliance-test" in said

    # Started the way the unit says: healthy, its admin key written 0600 for the user, and an
    # evaluation runs (the user reaches the Docker socket through the docker group).
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start_as_the_unit_does(lab.unit, port, lab.base / "service.log")
    try:
        wait_until_serving(proc, url, lab.base / "service.log")
        health = httpx.get(url + "/api/health", timeout=30).json()
        assert health["status"] == "healthy", health
        key_file = lab.data_dir / "admin.key"
        key_stat = key_file.stat()
        assert (key_stat.st_mode & 0o777, pwd.getpwuid(key_stat.st_uid).pw_name) == (0o600, USER)
        key = key_file.read_text().strip()
        with httpx.Client(base_url=url, headers={"X-API-Key": key}, timeout=30) as client:
            done = run_eval(client, "print('hello from the installed appliance')")
        assert done["status"] == "completed" and "hello from the installed" in done["output"], done
        if not os.environ.get("APPLIANCE_BUNDLE_BINARY"):  # the one-file build unpacks into TMPDIR
            assert list((lab.data_dir / "tmp").glob("_MEI*")), "the binary did not unpack into DATA_DIR/tmp"
    finally:
        stop(proc)
        remove_sandboxes_of(lab.data_dir)
    # uvicorn re-raises the SIGTERM it handled: 128 + 15, which systemd counts as a clean stop.
    assert proc.returncode in (0, 143), (lab.base / "service.log").read_text()
    assert "Application shutdown complete" in (lab.base / "service.log").read_text()
    assert not list((lab.data_dir / "tmp").iterdir())  # a clean stop leaves nothing unpacked

    # Again: the binary is replaced (a new file), the data and its key are kept.
    old_inode = lab.binary.stat().st_ino
    result = lab.install()
    assert "the user appliance-test exists" in result.stderr
    assert f"{version} -> {version}" in result.stderr
    assert lab.binary.stat().st_ino != old_inode
    assert (lab.data_dir / "admin.key").read_text().strip() == key
    assert (lab.data_dir / "appliance.db").is_file()

    # --uninstall: unit and binary gone; the data dir and the user stay.
    said = lab.install("--uninstall").stderr
    assert not lab.binary.exists() and not lab.unit.exists()
    assert not (UNIT_DIR / "multi-user.target.wants" / lab.unit.name).is_symlink()
    assert (lab.data_dir / "admin.key").read_text().strip() == key and user_exists(USER)
    assert "kept the data dir" in said

    # --uninstall --purge: the data dir and the user too; the runtime images stay.
    lab.install("--uninstall", "--purge")
    assert not lab.data_dir.exists() and not user_exists(USER)
    assert docker_client.images.get("appliance-runtime-python:bookworm-1")


def test_a_damaged_bundle_is_refused_and_nothing_changes(lab: Lab):
    bundle_dir = lab.unpack()
    binary = bundle_dir / "appliance"
    content = bytearray(binary.read_bytes())
    content[len(content) // 2] ^= 0x01  # one bit, in the middle
    binary.write_bytes(bytes(content))
    before = sorted(p.name for p in lab.base.iterdir())

    result = lab.install(check=False)

    assert result.returncode == 1
    assert "checksum mismatch" in result.stderr and "appliance: FAILED" in result.stderr, result.stderr
    assert "Nothing was installed" in result.stderr
    assert "Traceback" not in result.stderr
    assert sorted(p.name for p in lab.base.iterdir()) == before  # no prefix, no data dir
    assert not user_exists(USER) and not lab.unit.exists()
