"""The lean engine client on every sandbox's path, against the real engine."""

from __future__ import annotations

import docker.errors
import pytest

from appliance.runtime.engine import DockerEngine


@pytest.fixture
def lean():
    engine = DockerEngine()
    assert engine.http is not None, "the local socket engine should use the lean client"
    yield engine
    engine.close()


def test_errors_carry_the_engine_message(lean, runtime_images):
    with pytest.raises(docker.errors.NotFound, match="No such image"):
        lean.http.create({"Image": "appliance-no-such-image:never", "Cmd": ["true"]})
    with pytest.raises(docker.errors.NotFound):
        lean.http.start("0" * 64)


def test_create_attach_start_round_trip(lean, runtime_images):
    from appliance.runtime.images import image_ref

    container_id = lean.http.create(
        {
            "Image": image_ref("python"),
            "Cmd": ["python3", "-c", "print('lean')"],
            "NetworkDisabled": True,
            "HostConfig": {"NetworkMode": "none"},
        }
    )
    try:
        sock = lean.http.attach(container_id)
        lean.http.start(container_id)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
        sock.close()
        assert received.endswith(b"lean\n") and received[0] == 1  # one stdout frame
    finally:
        lean.api.remove_container(container_id, force=True)
