"""Checkpoint files of runs: DATA_DIR/checkpoints/<run_id>/<checkpoint_id>.

A checkpoint comes from a code run's work dir (copied out of its sandbox into the run's
staging folder, runtime/collect.py) or from an upload of an external run (streamed to a
temporary file in the same folder, never held in memory). Either way it is checked
against the caps (settings experiment_checkpoint_max_bytes for one file,
experiment_run_checkpoints_max_bytes and experiment_run_max_checkpoints for a run)
before it gets its row; a file that does not fit is not kept.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

from appliance.core.clock import utc_now
from appliance.core.errors import PayloadTooLarge, ValidationError
from appliance.core.evaluations import CollectedFile
from appliance.core.experiments import Checkpoint, Run
from appliance.core.ids import new_checkpoint_id
from appliance.core.sizes import format_size
from appliance.services.experiments.config import ExperimentLimits
from appliance.services.experiments.recorder import CheckpointFacts
from appliance.store.runs import RunStore

STAGING = ".incoming"
MAX_NAME_CHARS = 255


class CheckpointFiles:
    def __init__(self, root: Path, store: RunStore, limits: ExperimentLimits) -> None:
        self.root = root
        self._store = store
        self._limits = limits

    def run_dir(self, run_id: str) -> Path:
        return self.root / run_id

    def path(self, checkpoint: Checkpoint) -> Path:
        return self.run_dir(checkpoint.run_id) / checkpoint.id

    def staging_dir(self, run_id: str) -> Path:
        return self.run_dir(run_id) / STAGING

    async def remove_run(self, run_id: str) -> None:
        await asyncio.to_thread(shutil.rmtree, self.run_dir(run_id), True)

    async def clear_staging(self, run_id: str) -> None:
        await asyncio.to_thread(shutil.rmtree, self.staging_dir(run_id), True)

    def room(self, run: Run) -> tuple[int, int]:
        """(files, bytes) the run may still add."""
        return (
            max(0, self._limits.run_max_checkpoints - run.checkpoint_count),
            max(0, self._limits.run_checkpoints_max_bytes - run.checkpoint_bytes),
        )

    async def add_collected(
        self, run: Run, files: list[CollectedFile], facts: dict[str, CheckpointFacts]
    ) -> tuple[list[Checkpoint], list[str]]:
        """Turn files copied out of the run's sandbox into checkpoints; returns them and
        a line for each file not kept."""
        latest = await self._store.get(run.id) or run
        count_left, bytes_left = self.room(latest)
        kept: list[Checkpoint] = []
        refused: list[str] = []
        for item in sorted(files, key=lambda f: (f.modified_at, f.name)):  # in the order they were written
            if count_left <= 0 or item.size > bytes_left or item.size > self._limits.checkpoint_max_bytes:
                refused.append(
                    f"[appliance] checkpoint {item.name[:200]} ({format_size(item.size)}) was not kept: past the "
                    f"run's cap of {self._limits.run_max_checkpoints} checkpoints, "
                    f"{format_size(self._limits.run_checkpoints_max_bytes)} in all and "
                    f"{format_size(self._limits.checkpoint_max_bytes)} each"
                )
                continue
            fact = facts.get(item.name, CheckpointFacts(epoch=None, step=None, metrics={}))
            checkpoint = Checkpoint(
                id=new_checkpoint_id(),
                run_id=run.id,
                name=item.name[:MAX_NAME_CHARS],
                size=item.size,
                sha256=item.sha256,
                epoch=fact.epoch,
                step=fact.step,
                metrics=fact.metrics,
                created_at=item.modified_at,
            )
            await asyncio.to_thread(os.replace, item.stored_path, self.path(checkpoint))
            await self._store.add_checkpoint(checkpoint)
            kept.append(checkpoint)
            count_left -= 1
            bytes_left -= item.size
        await self.clear_staging(run.id)
        return kept, refused

    async def upload(
        self, run: Run, name: str, chunks: AsyncIterator[bytes], now: datetime | None = None
    ) -> Checkpoint:
        """Store an uploaded file as a checkpoint of `run`, with the run's latest metrics."""
        name = name.strip().lstrip("/")
        if not name or len(name) > MAX_NAME_CHARS or any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
            raise ValidationError(
                f"checkpoint name must be 1 to {MAX_NAME_CHARS} printable characters",
                details={"field": "name", "reason": "bad name"},
            )
        count_left, bytes_left = self.room(run)
        if count_left <= 0:
            raise PayloadTooLarge(
                f"run {run.id} has {run.checkpoint_count} checkpoints: its cap (experiment_run_max_checkpoints)",
                details={"field": "file", "limit": "experiment_run_max_checkpoints"},
            )
        cap = min(bytes_left, self._limits.checkpoint_max_bytes)
        folder = self.run_dir(run.id)
        await asyncio.to_thread(folder.mkdir, mode=0o700, parents=True, exist_ok=True)
        checkpoint_id = new_checkpoint_id()
        partial = folder / f"{checkpoint_id}.part"
        digest = hashlib.sha256()
        size = 0
        try:
            with open(partial, "xb") as out:
                async for chunk in chunks:
                    size += len(chunk)
                    if size > cap:
                        raise PayloadTooLarge(
                            f"the checkpoint is larger than {format_size(cap)}: the cap for one checkpoint is "
                            f"{format_size(self._limits.checkpoint_max_bytes)} (experiment_checkpoint_max_bytes) "
                            f"and the run may hold {format_size(bytes_left)} more "
                            "(experiment_run_checkpoints_max_bytes)",
                            details={"field": "file", "limit_bytes": cap},
                        )
                    digest.update(chunk)
                    await asyncio.to_thread(out.write, chunk)
            checkpoint = Checkpoint(
                id=checkpoint_id,
                run_id=run.id,
                name=name,
                size=size,
                sha256=digest.hexdigest(),
                epoch=_epoch(run),
                step=run.step,
                metrics=dict(run.metrics),
                created_at=now or utc_now(),
            )
            await asyncio.to_thread(os.replace, partial, self.path(checkpoint))
        finally:
            await asyncio.to_thread(_unlink, partial)
        await self._store.add_checkpoint(checkpoint)
        return checkpoint


def _epoch(run: Run) -> int | None:
    epoch = run.metrics.get("epoch")
    return int(epoch) if epoch is not None else run.step


def _unlink(path: Path) -> None:
    path.unlink(missing_ok=True)
