"""Shared fixtures: a real Docker engine, real runtime images, real servers on loopback.

Nothing here is skipped when Docker is missing: the suite fails with the reason, since
a run that silently skipped the sandbox tests would prove nothing.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.support import ServerProcess, remove_sandboxes_of, start_server

# Fixture modules: their fixtures are found by name, so no test imports a fixture (an
# import that only pytest uses looks unused to a linter, and a parameter of the same name
# then looks like a redefinition).
pytest_plugins = ["tests.sandbox_support", "tests.llm_fixtures"]


def pytest_configure(config):
    # Tests run real containers; keep pytest's own temp dirs on the same disk as usual.
    os.environ.setdefault("APPLIANCE_TEST", "1")


@pytest.fixture(scope="session")
def docker_client():
    import docker

    try:
        client = docker.from_env(version="auto")
        client.ping()
    except Exception as exc:  # noqa: BLE001 - any failure means the same thing here
        pytest.fail(
            f"no Docker engine answers ({exc}); run scripts/test.sh, which installs and starts one", pytrace=False
        )
    yield client
    client.close()


@pytest.fixture(scope="session")
def runtime_images(docker_client):
    """The runtime images, built once if missing (scripts/test.sh builds them up front)."""
    from appliance.runtime import images

    cache = Path(os.environ.get("APPLIANCE_IMAGE_CACHE", Path.home() / ".cache" / "appliance-debootstrap"))
    images.build_images(docker_client, None, only_missing=True, cache_dir=cache)
    missing = images.missing_images(docker_client)
    if missing:
        pytest.fail(f"runtime images missing after build: {missing}", pytrace=False)
    return [images.image_ref(key) for key in images.IMAGE_RECIPES]


@pytest.fixture(scope="session")
def session_dir():
    path = Path(tempfile.mkdtemp(prefix="appliance-tests-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def server(runtime_images, session_dir) -> ServerProcess:
    """One appliance shared by the tests that do not restart or reconfigure it.

    Rate limits are raised so tests do not trip over each other; the rate-limit tests
    start their own server with the documented defaults."""
    proc = start_server(
        session_dir / "shared",
        env={
            "APPLIANCE_RATE_LIMIT_AUTHENTICATED": "100000",
            "APPLIANCE_RATE_LIMIT_BATCH": "100000",
            "APPLIANCE_RATE_LIMIT_EXECUTE": "100000",
            "APPLIANCE_RATE_LIMIT_ANONYMOUS": "100000",
            "APPLIANCE_RATE_LIMIT_READ": "100000",
            "APPLIANCE_RATE_LIMIT_WRITE": "100000",
            "APPLIANCE_RATE_LIMIT_EXPORT": "100000",
            "APPLIANCE_WORKERS": "4",
        },
    )
    yield proc
    proc.stop()
    remove_sandboxes_of(proc.data_dir)


@pytest.fixture
def fresh_server(runtime_images, tmp_path):
    """Factory for a server of one's own: `fresh_server(env={...})`."""
    started: list[ServerProcess] = []

    def start(env: dict[str, str] | None = None, data_dir: Path | None = None) -> ServerProcess:
        proc = start_server(data_dir or tmp_path / f"data{len(started)}", env=env or {})
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.stop()
        remove_sandboxes_of(proc.data_dir)
