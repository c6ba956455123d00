"""Runtime images against the real engine: built, listed, carried out and back in.

No skips: without a Docker engine the `docker_client` fixture fails the test."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
import uuid
from pathlib import Path

import docker.errors
import pytest

from appliance.runtime import images

# Shared with tests/conftest.py's `runtime_images`, so a build here fills the same cache.
CACHE_DIR = Path(os.environ.get("APPLIANCE_IMAGE_CACHE", Path.home() / ".cache" / "appliance-debootstrap"))


def test_image_ref_format():
    version = images.RUNTIME_IMAGE_VERSION
    assert images.image_ref("python") == f"appliance-runtime-python:{version}"
    assert {key: images.image_ref(key) for key in images.IMAGE_RECIPES} == {
        "python": f"appliance-runtime-python:{version}",
        "node": f"appliance-runtime-node:{version}",
        "gcc": f"appliance-runtime-gcc:{version}",
        "rust": f"appliance-runtime-rust:{version}",
        "go": f"appliance-runtime-go:{version}",
        "java": f"appliance-runtime-java:{version}",
    }


def test_every_language_has_a_recipe():
    from appliance.core.languages import LANGUAGES

    assert {lang.image for lang in LANGUAGES.values()} <= set(images.IMAGE_RECIPES)


def test_all_images_present_and_labelled_after_build(docker_client):
    # Fast when they are there already: only_missing builds nothing then.
    images.build_images(docker_client, only_missing=True, cache_dir=CACHE_DIR)
    rows = images.list_images(docker_client)
    assert [row.key for row in rows] == list(images.IMAGE_RECIPES)
    assert [row.key for row in rows if not row.present] == []
    assert images.missing_images(docker_client) == []
    for row in rows:
        assert row.ref == images.image_ref(row.key)
        assert row.size > 10_000_000
        assert row.created and row.created.endswith("Z") and "." not in row.created
        labels = docker_client.images.get(row.ref).labels
        assert labels == {"appliance.runtime": row.key, "appliance.runtime.version": images.RUNTIME_IMAGE_VERSION}


def test_build_refuses_unknown_keys_and_builds_nothing_when_present(docker_client, tmp_path):
    with pytest.raises(images.ImageBuildError, match="unknown image"):
        images.build_images(docker_client, ["fortran"], cache_dir=tmp_path)
    images.build_images(docker_client, only_missing=True, cache_dir=CACHE_DIR)
    # Nothing missing: no debootstrap check, no build, nothing returned.
    assert images.build_images(docker_client, ["python"], cache_dir=tmp_path) == []


def test_build_explains_missing_debootstrap_and_missing_root(docker_client, tmp_path, monkeypatch):
    monkeypatch.setattr(images.shutil, "which", lambda name, path=None: None)
    with pytest.raises(images.ImageBuildError, match=r"^debootstrap is not installed: apt-get install debootstrap$"):
        images.build_images(docker_client, ["python"], only_missing=False, cache_dir=tmp_path)
    monkeypatch.setattr(images.shutil, "which", lambda name, path=None: "/usr/sbin/debootstrap")
    monkeypatch.setattr(images.os, "geteuid", lambda: 1000)
    with pytest.raises(images.ImageBuildError, match="needs root"):
        images.build_images(docker_client, ["python"], only_missing=False, cache_dir=tmp_path)


def test_failed_debootstrap_reports_its_output_and_leaves_no_build_dir(docker_client, tmp_path):
    # Nothing listens on port 9: debootstrap fails at once, before anything is imported.
    with pytest.raises(images.ImageBuildError, match="debootstrap failed for python") as failed:
        images.build_images(
            docker_client, ["python"], only_missing=False, mirror="http://127.0.0.1:9/debian", cache_dir=tmp_path
        )
    assert "Failed getting release file" in str(failed.value)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["debs"]


@pytest.mark.slow
def test_export_then_import_round_trip(docker_client, tmp_path):
    images.build_images(docker_client, ["python"], only_missing=True, cache_dir=CACHE_DIR)
    tarball, seen = tmp_path / "runtimes.tar", []
    assert images.export_images(docker_client, tarball, ["python"], progress=lambda *a: seen.append(a)) == [
        images.image_ref("python")
    ]
    assert not (tmp_path / "runtimes.tar.part").exists()
    assert seen[-1][:2] == ("export", 1.0)
    assert [fraction for _, fraction, _ in seen] == sorted(fraction for _, fraction, _ in seen)
    with tarfile.open(tarball) as tar:
        assert "manifest.json" in tar.getnames()
    assert tarball.stat().st_size > 10_000_000

    seen.clear()
    assert images.import_images(docker_client, tarball, progress=lambda *a: seen.append(a)) == [
        images.image_ref("python")
    ]
    assert seen[-1][:2] == ("import", 1.0)
    labels = docker_client.images.get(images.image_ref("python")).labels
    assert labels["appliance.runtime"] == "python"


def test_import_refuses_a_tarball_without_runtime_images(docker_client, tmp_path):
    # A genuine `docker save` tarball, of a one-file image that is not a runtime image.
    rootfs = io.BytesIO()
    with tarfile.open(fileobj=rootfs, mode="w") as tar:
        info = tarfile.TarInfo("hello.txt")
        info.size = 5
        tar.addfile(info, io.BytesIO(b"hello"))
    foreign = f"appliance-test-foreign:{uuid.uuid4().hex[:12]}"
    repository, tag = foreign.split(":")
    docker_client.api.import_image_from_data(rootfs.getvalue(), repository=repository, tag=tag)
    saved = tmp_path / "foreign.tar"
    try:
        with open(saved, "wb") as sink:
            for chunk in docker_client.api.get_image(foreign):
                sink.write(chunk)
    finally:
        docker_client.images.remove(foreign, force=True)

    with pytest.raises(images.ImageBuildError, match="holds no appliance runtime images") as refused:
        images.import_images(docker_client, saved)
    assert foreign in str(refused.value)
    with pytest.raises(docker.errors.ImageNotFound):  # refused before loading anything
        docker_client.images.get(foreign)

    not_docker = tmp_path / "plain.tar"
    with tarfile.open(not_docker, "w") as tar:
        tar.add(saved, arcname="something.tar")
    with pytest.raises(images.ImageBuildError, match="not a docker save tarball"):
        images.import_images(docker_client, not_docker)
    (garbage := tmp_path / "garbage.tar").write_bytes(b"not a tarball at all")
    with pytest.raises(images.ImageBuildError, match="not a docker save tarball"):
        images.import_images(docker_client, garbage)
    with pytest.raises(images.ImageBuildError, match="does not exist"):
        images.import_images(docker_client, tmp_path / "missing.tar")


def test_render_progress_draws_one_line(monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "100")
    monkeypatch.setattr(images.sys.stderr, "isatty", lambda: True, raising=False)
    images.render_progress("python", 0.45, "Unpacking python3...")
    images.render_progress("python", 1.0, "built")
    err = capsys.readouterr().err
    assert err.startswith("\r[python] [#########...........]  45% Unpacking python3...")
    assert "\r[python] [####################] 100% built" in err and err.endswith("\n")
    assert err.count("\n") == 1


def _cli(*args: str, data_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "appliance", *args, "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_cli_images_list_shows_every_runtime(runtime_images, tmp_path):
    listed = _cli("images", "list", data_dir=tmp_path)
    assert listed.returncode == 0, listed.stderr
    for key in images.IMAGE_RECIPES:
        assert images.image_ref(key) in listed.stdout


@pytest.mark.slow
def test_cli_export_and_import_round_trip(runtime_images, tmp_path):
    tarball = tmp_path / "python.tar"
    exported = _cli("images", "export", str(tarball), "python", data_dir=tmp_path)
    assert exported.returncode == 0, exported.stderr
    assert tarball.stat().st_size > 10_000_000
    imported = _cli("images", "import", str(tarball), data_dir=tmp_path)
    assert imported.returncode == 0, imported.stderr
    assert images.image_ref("python") in imported.stderr
    bad = _cli("images", "import", str(tmp_path / "missing.tar"), data_dir=tmp_path)
    assert bad.returncode != 0 and "does not exist" in bad.stderr
