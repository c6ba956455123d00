"""Persistent sandboxes: create, list, inspect, change and delete them.

A sandbox is a row (store/sandboxes.py), a files directory under the data dir
(DATA_DIR/sandboxes/<id>/files, bind-mounted at /sandbox) and a container
(runtime/persistent_sandbox.py). Creating answers at once with status "creating"; the
container comes up in the background and the status becomes "running", or "error" with
the reason. Every change to one sandbox (bring-up, update, restore, snapshot, delete,
upload) holds that sandbox's lock, so they never interleave. Keeping the containers in
line with the rows across restarts is sandbox_reconcile.py's job.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

import msgspec

from appliance.core.clock import utc_now
from appliance.core.environment import check_environment
from appliance.core.errors import Conflict, NotFound, ValidationError
from appliance.core.identity import SANDBOX_READ, SANDBOX_WRITE, Identity
from appliance.core.ids import new_sandbox_id
from appliance.core.paging import MAX_OFFSET
from appliance.core.sandboxes import CREATING, ERROR, RUNNING, SANDBOX_STATUSES, STOPPED, SandboxRecord
from appliance.core.sizes import format_size
from appliance.runtime import confined_files, persistent_sandbox, sandbox_usage
from appliance.runtime import egress as egress_runtime
from appliance.runtime.engine import ContainerNotFound, DockerEngine, EngineError, ImageMissing
from appliance.services.access.auth import require_permission
from appliance.services.engines.readiness import EngineReadiness
from appliance.services.sandboxes.requests import (
    SandboxCreate,
    SandboxPolicy,
    SandboxUpdate,
    canonical_runtime,
    check_name,
    check_network,
    choose_engine,
    engine_unavailable,
    resolve_resources,
)
from appliance.services.sandboxes.templates import resolve_template
from appliance.store.sandboxes import SandboxStore

log = logging.getLogger(__name__)

MAX_PAGE = 1000
FILES_SHOWN = 100  # files listed in GET /api/sandboxes/{id}


class SandboxUsage(msgspec.Struct, kw_only=True):
    memory_used: int | None = None  # bytes, None when the container is not running
    cpu_used: float | None = None  # cores
    disk_used: int = 0  # bytes of the files in /sandbox
    file_count: int = 0


class SandboxDetails(msgspec.Struct, kw_only=True):
    sandbox: SandboxRecord
    usage: SandboxUsage
    files: list[confined_files.FileEntry]  # at the top of /sandbox
    files_truncated: bool = False


class SandboxPaths:
    """Where a sandbox's files and a snapshot's archive live under the data dir."""

    def __init__(self, data_path: Path) -> None:
        self.sandboxes = data_path / "sandboxes"
        self.snapshots = data_path / "snapshots"

    def all(self) -> list[Path]:
        return [self.sandboxes, self.snapshots]

    def sandbox_dir(self, sandbox_id: str) -> Path:
        return self.sandboxes / sandbox_id

    def files_dir(self, sandbox_id: str) -> Path:
        return self.sandboxes / sandbox_id / "files"

    def snapshot_dir(self, snapshot_id: str) -> Path:
        return self.snapshots / snapshot_id


class SandboxService:
    def __init__(
        self,
        store: SandboxStore,
        engine: DockerEngine,
        paths: SandboxPaths,
        policy: SandboxPolicy,
        readiness: EngineReadiness,
    ) -> None:
        self.store = store
        self.engine = engine
        self.paths = paths
        self.policy = policy
        self._readiness = readiness
        self._locks: dict[str, asyncio.Lock] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        # Called with a sandbox id before its row goes (the snapshot service deletes its snapshots).
        self.on_delete: list[Callable[[str], Awaitable[None]]] = []

    # --- lookups ----------------------------------------------------------------------

    def lock(self, sandbox_id: str) -> asyncio.Lock:
        return self._locks.setdefault(sandbox_id, asyncio.Lock())

    async def owned(self, identity: Identity, sandbox_id: str) -> SandboxRecord:
        """The sandbox if this caller may see it; another owner's is as missing as none."""
        record = await self.store.get(sandbox_id)
        if record is None or not identity.may_see(record.owner):
            raise NotFound(
                f"no sandbox {sandbox_id[:80]}: check the id (GET /api/sandboxes lists yours)",
                details={"sandbox_id": sandbox_id[:80]},
            )
        return record

    async def list(
        self, identity: Identity, *, status: str | None, runtime: str | None, limit: int, offset: int
    ) -> tuple[list[SandboxRecord], int]:
        require_permission(identity, SANDBOX_READ)
        if status is not None and status not in SANDBOX_STATUSES:
            raise ValidationError(
                f"status: {status[:40]!r} is not a sandbox status; use one of {', '.join(SANDBOX_STATUSES)}",
                details={"field": "status"},
            )
        if runtime is not None:
            runtime = canonical_runtime(runtime)
        if not 1 <= limit <= MAX_PAGE:
            raise ValidationError(f"limit must be between 1 and {MAX_PAGE}", details={"field": "limit"})
        if not 0 <= offset <= MAX_OFFSET:
            raise ValidationError(f"offset must be between 0 and {MAX_OFFSET}", details={"field": "offset"})
        owner = None if identity.is_admin else identity.owner
        return await self.store.list(owner=owner, status=status, runtime=runtime, limit=limit, offset=offset)

    # --- create -----------------------------------------------------------------------

    async def create(self, identity: Identity, request: SandboxCreate) -> SandboxRecord:
        """Check everything, store the row ("creating") and bring the container up in the
        background. Nothing is stored when a check fails."""
        require_permission(identity, SANDBOX_WRITE)
        sandbox_id = new_sandbox_id()
        name = check_name(request.name, sandbox_id)
        # The template catalogue (services/templates.py) decides the language, image
        # and the image's own environment; "basic" or none means the runtime's.
        template = resolve_template(request.template, request.runtime)
        runtime = template.language
        engine = choose_engine(request.engine, self.policy)
        network = check_network(request.network, engine, self.policy)
        resources = resolve_resources(request.resources, None, self.policy)
        environment = check_environment(request.environment)
        image = template.image
        await self._check_can_run(engine, image, egress=network.filters_egress)
        if await self.store.count() >= self.policy.max_count:
            raise Conflict(
                f"this appliance already holds {self.policy.max_count} sandboxes (setting "
                "sandbox_max_count): delete one first",
                details={"limit": self.policy.max_count},
            )
        now = utc_now()
        record = SandboxRecord(
            sandbox_id=sandbox_id,
            owner=identity.owner,
            name=name,
            runtime=runtime,
            template=request.template or template.template_id,
            engine=engine,
            image=image,
            status=CREATING,
            resources=resources,
            network_enabled=network.enabled,
            allowed_hosts=network.allowed_hosts,
            environment=environment,
            template_environment=dict(template.environment),
            created_at=now,
            last_activity=now,
        )
        await self.store.insert(record)
        try:
            await asyncio.to_thread(confined_files.make_root, self.paths.files_dir(sandbox_id))
        except OSError as exc:
            await self.store.set_status(sandbox_id, ERROR, f"could not create the files directory: {exc}")
            raise
        self.spawn(self._bring_up(sandbox_id))
        return record

    async def _check_can_run(self, engine: str, image: str, *, egress: bool = False) -> None:
        if not await self.engine.call(self.engine.ping):
            raise engine_unavailable("the Docker engine is not reachable")
        problem = await self._readiness.engine_problem(engine)
        if problem:
            raise engine_unavailable(problem)
        # The egress proxy runs on the python image.
        for needed in (image, egress_runtime.PROXY_IMAGE) if egress else (image,):
            if not await self.engine.call(self.engine.image_present, needed):
                raise engine_unavailable(
                    f"the runtime image {needed} is missing: run `appliance images build` (or `images import FILE`)"
                )
        uplink = self.policy.egress_network
        if egress and not await self.engine.call(egress_runtime.network_exists, self.engine, uplink):
            raise engine_unavailable(
                f"the Docker network {uplink!r} that egress proxies reach out on (setting "
                "sandbox_egress_network) does not exist"
            )

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _bring_up(self, sandbox_id: str) -> None:
        async with self.lock(sandbox_id):
            record = await self.store.get(sandbox_id)
            if record is None or record.status != CREATING:
                return
            await self.replace_container(record)

    def egress_spec(self, record: SandboxRecord) -> egress_runtime.EgressSpec:
        return egress_runtime.EgressSpec(
            sandbox_id=record.sandbox_id,
            allowed_hosts=tuple(record.allowed_hosts),
            uplink=self.policy.egress_network,
        )

    def container_spec(self, record: SandboxRecord) -> persistent_sandbox.PersistentSpec:
        limits = msgspec.structs.replace(
            self.policy.base_limits,
            memory_mb=max(1, record.resources.memory_limit // (1024 * 1024)),
            cpus=record.resources.cpu_limit,
            network=record.network_enabled,
        )
        return persistent_sandbox.PersistentSpec(
            sandbox_id=record.sandbox_id,
            image=record.image,
            engine=record.engine,
            limits=limits,
            environment=record.full_environment,
            files_dir=str(self.paths.files_dir(record.sandbox_id)),
            internal_network=egress_runtime.network_name(record.sandbox_id) if record.filters_egress else None,
        )

    async def replace_container(self, record: SandboxRecord) -> str:
        """Remove the sandbox's container (if any) and start a new one from the record,
        keeping the files; with allowed_hosts, its network and proxy are made first (or
        kept, when they match), and without, any it had are removed. Stores the outcome:
        running, or error with the reason. The caller holds the sandbox's lock."""
        if record.container_id:
            await self.engine.call(self.engine.remove, record.container_id)
        try:
            await asyncio.to_thread(confined_files.make_root, self.paths.files_dir(record.sandbox_id))
            if record.filters_egress:
                await self.engine.call(egress_runtime.prepare, self.engine, self.egress_spec(record))
            else:
                await self.engine.call(egress_runtime.remove, self.engine, record.sandbox_id)
            container_id = await self.engine.call(persistent_sandbox.create, self.engine, self.container_spec(record))
        except (EngineError, OSError) as exc:
            reason = _engine_reason(exc)
            log.warning("sandbox %s: container could not start: %s", record.sandbox_id, reason)
            await self.store.set_container(record.sandbox_id, ERROR, None, reason)
            return ERROR
        await self.store.set_container(record.sandbox_id, RUNNING, container_id)
        return RUNNING

    # --- inspect ----------------------------------------------------------------------

    async def details(self, identity: Identity, sandbox_id: str) -> SandboxDetails:
        require_permission(identity, SANDBOX_READ)
        return await self._details(identity, sandbox_id)

    async def _details(self, identity: Identity, sandbox_id: str) -> SandboxDetails:
        record = await self.owned(identity, sandbox_id)
        usage = SandboxUsage()
        if record.container_id and record.status in (RUNNING, STOPPED):
            state = await self.engine.call(persistent_sandbox.state, self.engine, record.container_id)
            if state == "running":
                live = await asyncio.to_thread(sandbox_usage.read, record.container_id)
                usage.memory_used, usage.cpu_used = live.memory_bytes, live.cpu_cores
                if record.status != RUNNING and not self.lock(sandbox_id).locked():
                    await self.store.set_status(sandbox_id, RUNNING)
                    record.status, record.status_reason = RUNNING, None
            elif record.status == RUNNING and not self.lock(sandbox_id).locked():
                # Gone or stopped behind the appliance's back: the reconciler brings it back.
                reason = f"the container is {state or 'gone'}; the appliance restarts it shortly"
                await self.store.set_status(sandbox_id, STOPPED, reason)
                record.status, record.status_reason = STOPPED, reason
        files: list[confined_files.FileEntry] = []
        truncated = False
        try:
            usage.disk_used, usage.file_count = await asyncio.to_thread(
                confined_files.usage, self.paths.files_dir(sandbox_id)
            )
            top = await asyncio.to_thread(
                confined_files.listing, self.paths.files_dir(sandbox_id), [], recursive=False, limit=FILES_SHOWN
            )
            files, truncated = top.entries, top.truncated
        except NotFound:
            pass  # being deleted
        return SandboxDetails(sandbox=record, usage=usage, files=files, files_truncated=truncated)

    # --- update -----------------------------------------------------------------------

    async def update(self, identity: Identity, sandbox_id: str, change: SandboxUpdate) -> SandboxDetails:
        """New memory and CPU limits are applied to the running container (`docker
        update`) under runc; a new environment, or new limits under gVisor (runsc has no
        update), recreate the container with the same files. disk_limit is checked
        against the files already there. It answers with the details, as a reader would
        see them: changing a sandbox needs only sandbox_write."""
        require_permission(identity, SANDBOX_WRITE)
        record = await self.owned(identity, sandbox_id)
        resources = resolve_resources(change.resources, record.resources, self.policy)
        environment = check_environment(change.environment) if change.environment is not None else record.environment
        async with self.lock(sandbox_id):
            record = await self.owned(identity, sandbox_id)
            used, _ = await asyncio.to_thread(confined_files.usage, self.paths.files_dir(sandbox_id))
            if resources.disk_limit < used:
                raise ValidationError(
                    f"resources.disk_limit: {format_size(resources.disk_limit)} is less than the "
                    f"{format_size(used)} the sandbox's files already take; delete files first",
                    details={"field": "resources.disk_limit", "disk_used": used},
                )
            limits_changed = (resources.memory_limit, resources.cpu_limit) != (
                record.resources.memory_limit,
                record.resources.cpu_limit,
            )
            new = msgspec.structs.replace(record, resources=resources, environment=environment)
            recreate = (
                environment != record.environment
                or record.status in (ERROR, STOPPED)
                or (limits_changed and record.engine == "gvisor")
            )
            if not recreate and limits_changed and record.container_id and record.status == RUNNING:
                try:
                    await self.engine.call(
                        self.engine.update_resources, record.container_id, resources.memory_limit, resources.cpu_limit
                    )
                except ContainerNotFound:
                    recreate = True
                except EngineError as exc:
                    raise Conflict(
                        f"the engine refused the new limits: {_engine_reason(exc)}", details={"field": "resources"}
                    ) from None
            await self.store.update_config(
                sandbox_id, resources, environment, record.network_enabled, record.allowed_hosts, utc_now()
            )
            if recreate and record.status != CREATING:
                await self.replace_container(new)
        return await self._details(identity, sandbox_id)

    # --- delete -----------------------------------------------------------------------

    async def delete(self, identity: Identity, sandbox_id: str, *, force: bool) -> SandboxRecord:
        require_permission(identity, SANDBOX_WRITE)
        record = await self.owned(identity, sandbox_id)
        if record.status in (RUNNING, CREATING) and not force:
            raise Conflict(
                f"sandbox {sandbox_id} is {record.status}; pass force=true to delete it anyway "
                "(DELETE /api/sandboxes/{id}?force=true)",
                details={"sandbox_id": sandbox_id, "status": record.status},
            )
        async with self.lock(sandbox_id):
            record = await self.owned(identity, sandbox_id)
            if record.container_id:
                await self.engine.call(self.engine.remove, record.container_id)
            await self.engine.call(egress_runtime.remove, self.engine, sandbox_id)
            for hook in self.on_delete:
                await hook(sandbox_id)
            await self.store.delete(sandbox_id)
            await asyncio.to_thread(confined_files.remove_tree, self.paths.sandbox_dir(sandbox_id))
        self._locks.pop(sandbox_id, None)
        return record

    async def touch(self, sandbox_id: str) -> None:
        await self.store.touch(sandbox_id, utc_now())

    async def close(self, grace_seconds: float = 10.0) -> None:
        """Wait briefly for containers being brought up; the reconciler finishes any
        that are cut short at the next start. Running sandboxes are left running."""
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=grace_seconds)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)


def _engine_reason(exc: BaseException) -> str:
    if isinstance(exc, ImageMissing):
        return "the runtime image is missing: run `appliance images build` (or `images import FILE`)"
    return str(exc)[:500] or type(exc).__name__
