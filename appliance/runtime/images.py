"""Runtime images: built offline from Debian packages, or carried in as tarballs.

Nothing is ever pulled from a registry. `build_images` runs debootstrap into a folder
and streams the folder into `docker import`; `export_images`/`import_images` are
`docker save`/`docker load` for labs with no network at all.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
from pathlib import Path
from typing import Callable

import docker
import docker.errors
import msgspec

# Bump when a recipe changes, so old images are not mistaken for current ones.
RUNTIME_IMAGE_VERSION = "bookworm-1"
DEBIAN_SUITE = "bookworm"
DEFAULT_MIRROR = os.environ.get("APPLIANCE_DEBIAN_MIRROR", "http://deb.debian.org/debian")
RUNTIME_LABEL = "appliance.runtime"

Progress = Callable[[str, float, str], None]  # (image key, fraction 0..1, message)


class ImageRecipe(msgspec.Struct, frozen=True):
    key: str
    packages: tuple[str, ...]


IMAGE_RECIPES: dict[str, ImageRecipe] = {
    r.key: r
    for r in (
        ImageRecipe("python", ("python3",)),
        ImageRecipe("node", ("nodejs",)),
        ImageRecipe("gcc", ("gcc", "g++", "libc6-dev")),
    )
}


class RuntimeImage(msgspec.Struct, frozen=True):
    key: str
    ref: str
    present: bool
    size: int | None = None
    created: str | None = None


class ImageBuildError(Exception):
    pass


def image_ref(key: str) -> str:
    return f"appliance-runtime-{key}:{RUNTIME_IMAGE_VERSION}"


def _present(client: docker.DockerClient, ref: str) -> dict | None:
    try:
        return client.api.inspect_image(ref)
    except docker.errors.ImageNotFound:
        return None


def list_images(client: docker.DockerClient) -> list[RuntimeImage]:
    rows = []
    for key in IMAGE_RECIPES:
        info = _present(client, image_ref(key))
        rows.append(RuntimeImage(key=key, ref=image_ref(key), present=info is not None,
                                 size=info and info.get("Size"), created=info and info.get("Created")))
    return rows


def missing_images(client: docker.DockerClient) -> list[str]:
    return [row.key for row in list_images(client) if not row.present]


# --- building ---------------------------------------------------------------------------

# debootstrap prints one "I: ..." line per step; these phrases mark how far it is.
_PHASES = (("Retrieving Release", 0.02), ("Retrieving Packages", 0.05), ("Resolving", 0.1),
           ("Retrieving", 0.15), ("Extracting", 0.35), ("Installing core", 0.45),
           ("Unpacking the base", 0.55), ("Configuring the base", 0.65),
           ("Unpacking required", 0.55), ("Configuring required", 0.7),
           ("Configuring", 0.75), ("Base system installed", 0.85))

# Trimmed from the rootfs: apt's caches and documentation are dead weight in a sandbox.
_TRIM = ("var/cache/apt", "var/lib/apt/lists", "usr/share/doc", "usr/share/man",
         "usr/share/info", "usr/share/locale")


def _debootstrap(recipe: ImageRecipe, target: Path, mirror: str, cache_dir: Path,
                 progress: Progress) -> None:
    if shutil.which("debootstrap") is None:
        raise ImageBuildError("debootstrap is not installed: apt-get install debootstrap")
    if os.geteuid() != 0:
        raise ImageBuildError("building runtime images needs root (debootstrap creates device "
                              "files and chroots); run as root, or `appliance images import` a tarball")
    cache_dir.mkdir(parents=True, exist_ok=True)
    command = ["debootstrap", "--variant=minbase", f"--include={','.join(recipe.packages)}",
               f"--cache-dir={cache_dir}", DEBIAN_SUITE, str(target), mirror]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    tail: list[str] = []
    fraction = 0.0
    assert proc.stdout is not None
    for line in proc.stdout:
        line = line.rstrip()
        tail = (tail + [line])[-15:]
        for phrase, value in _PHASES:
            if phrase in line and value > fraction:
                fraction = value
        progress(recipe.key, fraction, line[3:] if line.startswith("I: ") else line)
    if proc.wait() != 0:
        raise ImageBuildError(f"debootstrap failed for {recipe.key}:\n" + "\n".join(tail))
    for relative in _TRIM:
        path = target / relative
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
            path.mkdir(parents=True, exist_ok=True)


def _import_rootfs(client: docker.DockerClient, recipe: ImageRecipe, rootfs: Path) -> str:
    ref = image_ref(recipe.key)
    repository, tag = ref.split(":")
    read_end, write_end = os.pipe()

    def write_tar() -> None:
        with os.fdopen(write_end, "wb") as sink, tarfile.open(fileobj=sink, mode="w|") as tar:
            for entry in sorted(os.listdir(rootfs)):
                tar.add(rootfs / entry, arcname=entry)

    writer = threading.Thread(target=write_tar, daemon=True)
    writer.start()
    changes = [f'LABEL {RUNTIME_LABEL}="{recipe.key}" {RUNTIME_LABEL}.version="{RUNTIME_IMAGE_VERSION}"',
               'CMD ["/bin/sh"]', "ENV LANG=C.UTF-8"]
    with os.fdopen(read_end, "rb") as source:
        client.api.import_image_from_stream(source, repository=repository, tag=tag, changes=changes)
    writer.join()
    if _present(client, ref) is None:
        raise ImageBuildError(f"docker import did not produce {ref}")
    return ref


def build_images(client: docker.DockerClient, keys: list[str] | None = None, *,
                 only_missing: bool = True, mirror: str = DEFAULT_MIRROR,
                 cache_dir: Path, progress: Progress | None = None) -> list[str]:
    """Build the named (default: all) runtime images; returns the refs built."""
    progress = progress or (lambda key, fraction, message: None)
    unknown = [k for k in keys or [] if k not in IMAGE_RECIPES]
    if unknown:
        raise ImageBuildError(f"unknown image(s) {', '.join(unknown)}; known: {', '.join(IMAGE_RECIPES)}")
    built = []
    for key in keys or list(IMAGE_RECIPES):
        recipe = IMAGE_RECIPES[key]
        if only_missing and _present(client, image_ref(key)) is not None:
            continue
        # Beside the cache, not in /tmp: /tmp may be a small tmpfs or mounted nodev.
        work = Path(tempfile.mkdtemp(prefix=f"rootfs-{key}-", dir=cache_dir.parent if cache_dir.parent.exists() else None))
        try:
            _debootstrap(recipe, work / "root", mirror, cache_dir, progress)
            progress(key, 0.9, f"importing into Docker as {image_ref(key)}")
            built.append(_import_rootfs(client, recipe, work / "root"))
            progress(key, 1.0, f"built {image_ref(key)}")
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return built


# --- carrying images in and out ---------------------------------------------------------


def export_images(client: docker.DockerClient, path: Path, keys: list[str] | None = None,
                  progress: Progress | None = None) -> list[str]:
    """One `docker save` tarball holding the (present) runtime images."""
    refs = [image_ref(k) for k in keys or IMAGE_RECIPES if _present(client, image_ref(k))]
    if not refs:
        raise ImageBuildError("no runtime images to export: run `appliance images build` first")
    total = sum(client.api.inspect_image(ref).get("Size", 0) for ref in refs) or 1
    response = client.api._get(client.api._url("/images/get"), params={"names": refs}, stream=True)
    client.api._raise_for_status(response)
    written = 0
    tmp = path.with_suffix(path.suffix + ".part")
    with open(tmp, "wb") as sink:
        for chunk in response.iter_content(chunk_size=1024 * 1024):
            sink.write(chunk)
            written += len(chunk)
            if progress:
                progress("export", min(written / total, 0.99), f"{written / 1e6:.0f} MB")
    os.replace(tmp, path)
    if progress:
        progress("export", 1.0, f"{len(refs)} image(s), {written / 1e6:.0f} MB")
    return refs


def import_images(client: docker.DockerClient, path: Path, progress: Progress | None = None) -> list[str]:
    """`docker load` a tarball; it must hold at least one appliance runtime image."""
    if not path.is_file():
        raise ImageBuildError(f"{path} does not exist")
    if progress:
        progress("import", 0.1, f"loading {path.name}")
    with open(path, "rb") as source:
        try:
            loaded = client.images.load(source)
        except docker.errors.APIError as exc:
            raise ImageBuildError(f"{path} is not a docker save tarball: {exc.explanation}") from exc
    known = {image_ref(k) for k in IMAGE_RECIPES}
    refs = sorted({tag for image in loaded for tag in image.tags if tag in known})
    if not refs:
        raise ImageBuildError(f"{path} holds no appliance runtime images (expected e.g. {image_ref('python')})")
    if progress:
        progress("import", 1.0, ", ".join(refs))
    return refs


_last_shown: dict[str, int] = {}


def render_progress(key: str, fraction: float, message: str) -> None:
    """A one-line progress bar on stderr, for the CLI; a line per tenth in a log file."""
    if not sys.stderr.isatty():
        tenth = int(fraction * 10)
        if _last_shown.get(key) == tenth:
            return
        _last_shown[key] = tenth
        sys.stderr.write(f"[{key}] {fraction * 100:3.0f}% {message}\n")
        sys.stderr.flush()
        return
    width = 24
    filled = int(width * max(0.0, min(fraction, 1.0)))
    bar = "#" * filled + "." * (width - filled)
    text = f"\r[{key}] [{bar}] {fraction * 100:3.0f}% {message[:60]:60}"
    sys.stderr.write(text + ("\n" if fraction >= 1.0 else ""))
    sys.stderr.flush()
