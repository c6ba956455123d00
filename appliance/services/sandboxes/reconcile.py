"""Keeping the persistent sandboxes' containers in line with their rows.

Run at start (after the warm pool's leftovers are removed, which never touches these
containers: they carry a different label) and then every sandbox_reconcile_seconds
by the scheduler. For each sandbox that is not in "error":

* its container runs: nothing to do (the status is set back to "running" if needed);
* paused (an archive was being written when the appliance stopped): unpaused;
* stopped (exited, or never started): started again, as it is;
* missing (removed by hand, the engine's state lost, a crash while it was being made):
  a new container is made from the row, with the kept files.

A sandbox with `allowed_hosts` (and its network on) also needs its internal network and
its egress proxy (runtime/egress.py): a proxy found stopped or gone counts as the
container being down, and healing makes them again (a container whose network was lost
is remade). A proxy or network whose sandbox is gone, or no longer filters, is removed.

A container with this installation's label but no row (the appliance stopped midway
through a delete), or not the one the row names, is removed. At start only, files
directories without a row are removed too. Stopping the appliance leaves the
sandboxes running.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from appliance.core.sandboxes import CREATING, ERROR, RUNNING, STOPPED, SandboxRecord
from appliance.runtime import confined_files, egress, persistent_sandbox
from appliance.runtime.engine import EngineError
from appliance.services.sandboxes.sandboxes import SandboxService

log = logging.getLogger(__name__)


class SandboxReconciler:
    def __init__(self, service: SandboxService) -> None:
        self._service = service

    async def at_start(self) -> None:
        rows = {r.sandbox_id for r in await self._service.store.all()}
        folder = self._service.paths.sandboxes
        if folder.is_dir():
            for entry in folder.iterdir():
                if entry.name.startswith("sb_") and entry.name not in rows:
                    log.info("removing the files of deleted sandbox %s", entry.name)
                    await asyncio.to_thread(confined_files.remove_tree, entry)
                elif entry.name in rows:
                    await asyncio.to_thread(_finish_restore, entry)
        await self.run(wait=False)

    async def run(self, wait: bool = True) -> None:
        """One pass. `wait=False` leaves the slow work (starting and making containers)
        to background tasks, so the appliance starts serving at once; the statuses are
        already true ("stopped" or "creating") when this returns."""
        service = self._service
        engine = service.engine
        try:
            if not await engine.call(engine.ping):
                return
            containers = await engine.call(persistent_sandbox.list_containers, engine)
            egress_parts = await engine.call(egress.list_parts, engine)
        except EngineError as exc:
            log.warning("sandbox reconcile skipped: %s", exc)
            return
        rows = {r.sandbox_id: r for r in await service.store.all()}
        states: dict[str, str] = {}
        for info in containers:
            row = rows.get(info.sandbox_id)
            if service.lock(info.sandbox_id).locked():
                continue  # being made or changed right now
            if row is None or row.container_id != info.container_id:
                log.info("removing stray sandbox container %s (%s)", info.container_id[:12], info.sandbox_id)
                await engine.call(engine.remove, info.container_id)
            else:
                states[info.sandbox_id] = info.state
        proxies = await self._egress_in_line(rows, egress_parts)
        healing = []
        for row in rows.values():
            if row.status == ERROR or service.lock(row.sandbox_id).locked():
                continue
            state = states.get(row.sandbox_id)
            if state == "running" and row.filters_egress and proxies.get(row.sandbox_id) != "running":
                state = f"running, but its egress proxy is {proxies.get(row.sandbox_id) or 'gone'}"
            if state == "running":
                if row.status != RUNNING:
                    await service.store.set_status(row.sandbox_id, RUNNING)
                continue
            if state is None and row.status != CREATING:
                await service.store.set_status(
                    row.sandbox_id, CREATING, "the container is gone; making a new one with the kept files"
                )
            elif state is not None and row.status != STOPPED:
                await service.store.set_status(row.sandbox_id, STOPPED, f"the container is {state}; starting it")
            healing.append(self._heal(row.sandbox_id))
        if not healing:
            return
        if wait:
            await asyncio.gather(*healing)
        else:
            for coro in healing:
                service.spawn(coro)

    async def _heal(self, sandbox_id: str) -> None:
        service = self._service
        engine = service.engine
        async with service.lock(sandbox_id):
            record = await service.store.get(sandbox_id)
            if record is None or record.status == ERROR:
                return
            state = None
            if record.container_id:
                state = await engine.call(persistent_sandbox.state, engine, record.container_id)
            try:
                # A new network leaves the container attached to none: it is remade.
                if (
                    record.filters_egress
                    and state is not None
                    and await engine.call(egress.prepare, engine, service.egress_spec(record))
                ):
                    state = None
                if state == "paused":
                    await engine.call(persistent_sandbox.unpause, engine, record.container_id)
                    state = "running"
                elif state in ("exited", "created"):
                    await engine.call(persistent_sandbox.start, engine, record.container_id)
                    state = "running"
            except EngineError as exc:
                log.warning("sandbox %s: could not restart its container (%s); making a new one", sandbox_id, exc)
                state = None
            if state == "running":
                await service.store.set_status(sandbox_id, RUNNING)
                log.info("sandbox %s: container running again", sandbox_id)
                return
            outcome = await service.replace_container(record)
            log.info("sandbox %s: new container from the kept files: %s", sandbox_id, outcome)

    async def _egress_in_line(self, rows: dict[str, SandboxRecord], parts: list[egress.EgressPart]) -> dict[str, str]:
        """Remove the proxies and networks no sandbox needs; the state of each needed proxy."""
        service = self._service
        engine = service.engine
        proxies: dict[str, str] = {}
        strays: set[str] = set()
        for part in parts:
            row = rows.get(part.sandbox_id)
            if service.lock(part.sandbox_id).locked():
                continue
            if row is None or not row.filters_egress:
                strays.add(part.sandbox_id)
            elif part.kind == "proxy":
                proxies[part.sandbox_id] = part.state
        for sandbox_id in sorted(strays):
            log.info("removing the egress proxy and network of %s (no sandbox needs them)", sandbox_id)
            await engine.call(egress.remove, engine, sandbox_id)
        return proxies


def _finish_restore(sandbox_dir: Path) -> None:
    """A restore swaps files/ for files.restore-* by way of files.old-*. Cut short
    between the two renames, files/ is missing: the old files go back (the restore is
    lost, not the files). Leftover staging or old directories are removed."""
    files = sandbox_dir / "files"
    leftovers = sorted(p for p in sandbox_dir.iterdir() if p.name.startswith(("files.restore-", "files.old-")))
    if not files.exists():
        old = [p for p in leftovers if p.name.startswith("files.old-")]
        if old:
            log.warning("%s: a restore was cut short; putting the previous files back", sandbox_dir.name)
            old[0].rename(files)
            leftovers.remove(old[0])
    for path in leftovers:
        confined_files.remove_tree(path)
