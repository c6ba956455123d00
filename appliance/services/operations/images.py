"""Runtime images for `appliance images ...`: built offline, listed, exported and loaded,
on the engine the settings name."""

from __future__ import annotations

import builtins
from pathlib import Path

from appliance.config import Settings
from appliance.runtime import images
from appliance.runtime.engine import DockerEngine
from appliance.runtime.images import Progress, RuntimeImage, render_progress

__all__ = ["RuntimeImages", "render_progress"]


class RuntimeImages:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._engine = DockerEngine(base_url=settings.docker_host)

    def build(self, keys: list[str] | None, *, only_missing: bool, progress: Progress | None = None) -> list[str]:
        return images.build_images(
            self._engine.client,
            keys,
            only_missing=only_missing,
            cache_dir=self._settings.data_path / "cache" / "debootstrap",
            progress=progress,
            mirror=self._settings.debian_mirror,
        )

    def list(self) -> list[RuntimeImage]:
        return images.list_images(self._engine.client)

    # builtins.list: in this class body, `list` is the method above.
    def export(self, path: Path, keys: builtins.list[str] | None, progress: Progress | None = None) -> None:
        images.export_images(self._engine.client, path, keys, progress=progress)

    def load(self, path: Path, progress: Progress | None = None) -> builtins.list[str]:
        return images.import_images(self._engine.client, path, progress=progress)
