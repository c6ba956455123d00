"""Runtime images, never pulled from a registry: built from Debian packages (debootstrap,
then `docker import`) or carried in and out as `docker save` tarballs for air-gapped labs.
Synchronous: the services call these through `asyncio.to_thread`, the CLI directly."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import docker.errors
import msgspec

# Bump when a recipe changes (packages, trimming, import options), so that engines holding
# images of the old recipe build new ones instead of reusing them.
RUNTIME_IMAGE_VERSION = "bookworm-1"
DEBIAN_SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
RUNTIME_LABEL = "appliance.runtime"

Progress = Callable[[str, float, str], None]  # (image key, fraction 0..1, message)


class ImageRecipe(msgspec.Struct, frozen=True):
    key: str
    packages: tuple[str, ...]  # added to debootstrap's minbase, which already has bash
    # Baked in as the image's ENV (after LANG=C.UTF-8). The sandbox sets HOME=/work, TMPDIR
    # and PATH itself; this is what a toolchain needs beyond that.
    environment: tuple[tuple[str, str], ...] = ()
    # Paths (relative to the rootfs, globs allowed) no sandbox needs, removed before import.
    trim: tuple[str, ...] = ()


IMAGE_RECIPES: dict[str, ImageRecipe] = {
    r.key: r
    for r in (
        ImageRecipe("python", ("python3",)),
        ImageRecipe("node", ("nodejs",)),
        ImageRecipe("gcc", ("gcc", "g++", "libc6-dev")),
        # rustc links with cc (gcc). It depends on the virtual libc-dev, which debootstrap
        # does not resolve: libc6-dev provides it.
        ImageRecipe("rust", ("rustc", "libc6-dev")),
        # The work dir is the only writable place that allows exec, and the only one big enough
        # for a build: the build cache and go's temporary files go there. No module proxy can
        # be reached from a sandbox; with GOPROXY=off an import outside the standard library
        # says so at once. cgo stays on (without a C compiler): the standard library ships
        # compiled with it, and with it off net and os/user are rebuilt on every run (4.5 s).
        # Trimmed: the compiled packages of the go tools themselves and cgo's test programs.
        ImageRecipe(
            "go",
            ("golang-go",),
            environment=(
                ("GOCACHE", "/work/.cache/go-build"),
                ("GOPATH", "/work/.go"),
                ("GOTMPDIR", "/work"),
                ("GOPROXY", "off"),
            ),
            trim=(
                "usr/lib/go-*/pkg/linux_amd64/cmd",
                "usr/lib/go-*/pkg/linux_amd64_race",
                "usr/share/go-*/misc",
                "usr/share/go-*/src/**/testdata",
            ),
        ),
        # jmods only feed jlink, which no sandbox runs.
        ImageRecipe("java", ("default-jdk-headless",), trim=("usr/lib/jvm/*/jmods",)),
    )
}


class RuntimeImage(msgspec.Struct, frozen=True):
    key: str
    ref: str
    present: bool
    size: int = 0  # bytes, as the engine reports it
    created: str | None = None  # UTC ISO 8601 with Z
    image_id: str | None = None  # the engine's content id: changes when the image is rebuilt


class ImageBuildError(Exception):
    pass


def image_ref(key: str) -> str:
    return f"appliance-runtime-{key}:{RUNTIME_IMAGE_VERSION}"


def image_environment(key: str) -> dict[str, str]:
    """The environment the image of `key` sets (its ENV, as `docker import` bakes it in)."""
    return {"LANG": "C.UTF-8", **dict(IMAGE_RECIPES[key].environment)}


def _inspect(client: docker.DockerClient, ref: str) -> dict | None:
    try:
        return client.api.inspect_image(ref)
    except docker.errors.ImageNotFound:
        return None


def list_images(client: docker.DockerClient) -> list[RuntimeImage]:
    infos = {key: _inspect(client, image_ref(key)) or {} for key in IMAGE_RECIPES}
    return [
        RuntimeImage(
            key,
            image_ref(key),
            bool(info),
            info.get("Size", 0),  # created: no nanoseconds
            info["Created"].split(".")[0].rstrip("Z") + "Z" if info else None,
            info.get("Id"),
        )
        for key, info in infos.items()
    ]


def missing_images(client: docker.DockerClient) -> list[str]:
    return [row.key for row in list_images(client) if not row.present]


def _check_keys(keys: list[str]) -> None:
    if unknown := [key for key in keys if key not in IMAGE_RECIPES]:
        raise ImageBuildError(f"unknown image(s) {', '.join(unknown)}; known: {', '.join(IMAGE_RECIPES)}")


# --- building ---------------------------------------------------------------------------

# debootstrap announces each phase with an "I: " line, then one line per package. (marker,
# start, end) as fractions of its run, timed here: resolving dependencies is a fifth of it.
_PHASES = (
    ("Retrieving InRelease", 0.0, 0.03),
    ("Resolving dependencies", 0.03, 0.22),
    ("Checking component", 0.22, 0.45),
    ("Chosen extractor", 0.45, 0.52),
    ("Installing core packages", 0.52, 0.56),
    ("Unpacking required", 0.56, 0.70),
    ("Configuring required", 0.70, 0.75),
    ("Unpacking the base", 0.75, 0.95),
    ("Configuring the base", 0.95, 0.99),
    ("Base system installed", 0.99, 0.99),
)
DEBOOTSTRAP_SHARE = 0.95  # of a whole build; trimming and `docker import` take a few seconds
# Dead weight in a sandbox: apt's lists and the .debs debootstrap leaves in apt's cache
# (the image's size again), documentation, translations, install logs.
_TRIM = (
    "var/cache/apt",
    "var/lib/apt/lists",
    "usr/share/doc",
    "usr/share/man",
    "usr/share/info",
    "usr/share/locale",
    "var/log",
)


def _debootstrap(
    tool: str,
    recipe: ImageRecipe,
    rootfs: Path,
    debs: Path,
    mirror: str,
    report: Progress,
    downloaded: Callable[[], None],
) -> None:
    proc = subprocess.Popen(
        [
            tool,
            "--variant=minbase",
            f"--include={','.join(recipe.packages)}",
            f"--cache-dir={debs}",
            DEBIAN_SUITE,
            str(rootfs),
            mirror,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
    )
    assert proc.stdout is not None  # stdout=PIPE
    tail: deque[str] = deque(maxlen=20)
    fraction, start, end, steps = 0.0, 0.0, 0.0, 0
    try:
        for line in proc.stdout:
            tail.append(text := line.rstrip().removeprefix("I: "))
            if phase := next((p for p in _PHASES if text.startswith(p[0])), None):
                _, start, end, steps = *phase, 0
                if text.startswith("Chosen extractor"):  # printed once every .deb is verified
                    downloaded()
            elif not text.startswith("Retrieving"):  # a downloaded .deb prints it, then "Validating"
                steps += 1  # a line per package, within a phase: minbase has ~90, gcc's ~130
            fraction = max(fraction, start + (end - start) * min(steps / 100, 1.0))
            report(recipe.key, fraction * DEBOOTSTRAP_SHARE, text)
    except BaseException:  # the progress callback raised, or we are interrupted
        proc.kill()
        proc.wait()
        raise
    if (returncode := proc.wait()) != 0:
        raise ImageBuildError(f"debootstrap failed for {recipe.key} (exit {returncode}):\n" + "\n".join(tail))


def _import_rootfs(client: docker.DockerClient, recipe: ImageRecipe, rootfs: Path) -> str:
    repository, tag = (ref := image_ref(key := recipe.key)).rsplit(":", 1)
    changes = [
        f'LABEL {RUNTIME_LABEL}="{key}" {RUNTIME_LABEL}.version="{RUNTIME_IMAGE_VERSION}"',
        *(f"ENV {name}={value}" for name, value in image_environment(key).items()),
        'CMD ["/bin/sh"]',
    ]
    # GNU tar streams the tree straight into the engine, nothing staged on disk; it keeps
    # hard links and device nodes, and numeric owners (the rootfs's users, not the host's).
    tar = subprocess.Popen(["tar", "-C", str(rootfs), "--numeric-owner", "-cf", "-", "."], stdout=subprocess.PIPE)
    assert tar.stdout is not None  # stdout=PIPE
    with tar.stdout:
        client.api.import_image(src=tar.stdout, repository=repository, tag=tag, changes=changes, stream_src=True)
    if tar.wait() != 0 or _inspect(client, ref) is None:
        raise ImageBuildError(f"docker import of {rootfs} failed to make {ref} (tar exit {tar.returncode})")
    return ref


def _link_debs(source: Path, target: Path) -> None:
    for deb in source.glob("*.deb"):
        with contextlib.suppress(FileExistsError):  # same name, same version: keep either
            os.link(deb, target / deb.name)


def _build_one(
    client: docker.DockerClient,
    tool: str,
    recipe: ImageRecipe,
    mirror: str,
    cache_dir: Path,
    report: Progress,
    downloaded_once: threading.Event,
) -> str:
    # In the cache dir, not /tmp: /tmp may be a small tmpfs, or mounted nodev.
    work = Path(tempfile.mkdtemp(prefix=f"build-{recipe.key}-", dir=cache_dir))
    (shared := cache_dir / "debs").mkdir(exist_ok=True)
    (private := work / "debs").mkdir()

    def downloaded() -> None:  # verified .debs go to the shared cache for the other builds
        _link_debs(private, shared)
        downloaded_once.set()

    try:
        _link_debs(shared, private)
        _debootstrap(tool, recipe, work / "rootfs", private, mirror, report, downloaded)
        downloaded()
        report(recipe.key, DEBOOTSTRAP_SHARE, f"trimming, then importing {image_ref(recipe.key)}")
        for folder in (work / "rootfs" / relative for relative in _TRIM):
            if folder.is_dir() and not folder.is_symlink():
                shutil.rmtree(folder)
                folder.mkdir(mode=0o755)  # emptied, not removed: tools expect these to exist
        for path in (found for pattern in recipe.trim for found in (work / "rootfs").glob(pattern)):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
        ref = _import_rootfs(client, recipe, work / "rootfs")
        report(recipe.key, 1.0, f"built {ref}")
        return ref
    finally:
        downloaded_once.set()  # even if it failed: the others then download for themselves
        # debootstrap mounts /proc and /sys in the target (binds /dev nodes in a container)
        # and unmounts them as it ends, not when killed: rm -rf would reach into the host's.
        with open("/proc/self/mountinfo") as table:
            points = [p for p in (line.split()[4] for line in table) if p.startswith(f"{work}/")]
        for point in sorted(points, key=len, reverse=True):
            subprocess.run(["umount", "--lazy", point], capture_output=True, check=True)
        shutil.rmtree(work, ignore_errors=True)


def build_images(
    client: docker.DockerClient,
    keys: list[str] | None = None,
    *,
    only_missing: bool = True,
    mirror: str = DEFAULT_MIRROR,
    cache_dir: Path,
    progress: Progress | None = None,
) -> list[str]:
    """Build the named (default: all) images in parallel; returns the refs built. With
    `only_missing`, present ones are kept and nothing is checked if none is missing."""
    _check_keys(keys or [])
    todo = [
        IMAGE_RECIPES[k]
        for k in dict.fromkeys(keys or IMAGE_RECIPES)
        if not (only_missing and _inspect(client, image_ref(k)))
    ]
    if not todo:
        return []
    # A user's PATH may lack /usr/sbin: look there too, so "not installed" is true.
    if (tool := shutil.which("debootstrap", path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")) is None:
        raise ImageBuildError("debootstrap is not installed: apt-get install debootstrap")
    if os.geteuid() != 0:
        raise ImageBuildError(
            "building runtime images needs root (debootstrap creates device files "
            "and chroots): run as root, or import a tarball of the images instead"
        )
    (cache_dir := Path(cache_dir).resolve()).mkdir(parents=True, exist_ok=True)
    # All at once: on 2 cores with a warm .deb cache the three builds took 92 s one after
    # another, 77 s two at a time, 64 s all at once (debootstrap is one shell, dpkg waits on
    # disk). Each has its own download folder, seeded with hard links to the shared cache:
    # two debootstraps downloading into one corrupt the .debs both write. With a cold cache
    # the first build downloads alone, as most .debs are common to all (minbase): fetching
    # them three times at once took the three builds 92 s instead of 77 s.
    lock, downloaded_once = threading.Lock(), threading.Event()
    if any((cache_dir / "debs").glob("*.deb")):
        downloaded_once.set()

    def report(key: str, fraction: float, message: str) -> None:
        if progress is not None:
            with lock:  # builds report from their own threads: one at a time for the callback
                progress(key, fraction, message)

    with ThreadPoolExecutor(len(todo), thread_name_prefix="image-build") as pool:
        futures = {}
        for recipe in todo:
            futures[recipe.key] = pool.submit(
                _build_one, client, tool, recipe, mirror, cache_dir, report, downloaded_once
            )
            downloaded_once.wait()
    if failed := [f"{key}: {f.exception()}" for key, f in futures.items() if f.exception()]:
        raise ImageBuildError(f"{len(failed)} of {len(futures)} image builds failed\n" + "\n\n".join(failed))
    return [f.result() for f in futures.values()]


# --- carrying images in and out ---------------------------------------------------------


def export_images(
    client: docker.DockerClient, path: Path, keys: list[str] | None = None, progress: Progress | None = None
) -> list[str]:
    """One `docker save` tarball of the named runtime images, or of all present; returns refs."""
    _check_keys(keys or [])
    rows = [row for row in list_images(client) if not keys or row.key in keys]
    if absent := [row.key for row in rows if keys and not row.present]:
        raise ImageBuildError(f"not in the engine, build them first: {', '.join(absent)}")
    if not (rows := [row for row in rows if row.present]):
        raise ImageBuildError("no runtime images to export: build them first")
    refs, total, written = [row.ref for row in rows], sum(row.size for row in rows), 0
    report = progress or (lambda key, fraction, message: None)
    # The SDK's public save (`APIClient.get_image`) takes one image; the engine's
    # GET /images/get takes several and writes them into one tarball, one manifest.
    response = client.api._get(client.api._url("/images/get"), params={"names": refs}, stream=True)
    part = Path(path).with_name(Path(path).name + ".part")  # never a truncated tarball at `path`
    try:
        client.api._raise_for_status(response)
        with open(part, "wb") as sink:
            for chunk in response.iter_content(chunk_size=1 << 20):
                written += sink.write(chunk)
                report("export", min(written / max(total, 1), 0.99), f"{written / 1e6:.0f} MB")
        os.replace(part, path)
    finally:
        response.close()
        part.unlink(missing_ok=True)
    report("export", 1.0, f"{', '.join(refs)}: {written / 1e6:.0f} MB")
    return refs


def import_images(client: docker.DockerClient, path: Path, progress: Progress | None = None) -> list[str]:
    """`docker load` a tarball of runtime images; returns their refs. The manifest is read
    first: a tarball with no runtime images of this version is refused, loading nothing."""
    if not (path := Path(path)).is_file():
        raise ImageBuildError(f"{path} does not exist")
    try:  # the image names in its manifest, read without loading anything
        with tarfile.open(path) as tar:
            if (member := tar.extractfile("manifest.json")) is None:
                raise KeyError("manifest.json is not a regular file")
            with member:
                tags = [tag for entry in json.load(member) for tag in entry.get("RepoTags") or []]
    except (tarfile.TarError, KeyError, ValueError, TypeError, AttributeError, OSError) as exc:
        raise ImageBuildError(f"{path} is not a docker save tarball ({exc})") from exc
    if not (wanted := sorted(set(tags) & {image_ref(key) for key in IMAGE_RECIPES})):
        raise ImageBuildError(
            f"{path} holds no appliance runtime images of version {RUNTIME_IMAGE_VERSION} "
            f"(it holds: {', '.join(tags) or 'untagged images only'})"
        )
    report, size = progress or (lambda key, fraction, message: None), path.stat().st_size

    def chunks() -> Iterator[bytes]:  # streamed, never whole in memory; counted for progress
        with open(path, "rb") as source:
            while chunk := source.read(1 << 20):
                report("import", 0.95 * source.tell() / max(size, 1), f"loading {path.name}")
                yield chunk

    try:
        client.images.load(chunks())
    except (docker.errors.APIError, docker.errors.ImageLoadError) as exc:
        raise ImageBuildError(f"docker load of {path} failed: {exc}") from exc
    if missing := [ref for ref in wanted if _inspect(client, ref) is None]:
        raise ImageBuildError(f"docker load of {path} did not produce {', '.join(missing)}")
    report("import", 1.0, f"loaded {', '.join(wanted)}")
    return wanted


_shown: dict[str, int] = {}  # key -> last tenth printed, when stderr is not a terminal


def render_progress(key: str, fraction: float, message: str) -> None:
    """A one-line progress bar on stderr, `[python] [#########...........] 45% Unpacking`,
    redrawn in place, newline at 100%. Into a log file: a plain line per tenth instead."""
    percent = int(100 * (fraction := max(0.0, min(fraction, 1.0))))
    if sys.stderr.isatty():
        line = f"[{key}] [{('#' * round(20 * fraction)).ljust(20, '.')}] {percent:3d}% {message}"
        width = shutil.get_terminal_size().columns - 1  # padded: covers a longer line before it
        sys.stderr.write("\r" + line[:width].ljust(width) + ("\n" if fraction >= 1.0 else ""))
    elif _shown.get(key) != percent // 10:
        _shown[key] = percent // 10
        sys.stderr.write(f"[{key}] {percent:3d}% {message}\n")
    sys.stderr.flush()
