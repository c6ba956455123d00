"""Evaluations: submit, read, list and kill; the queue itself lives in `eval_queue`."""

from __future__ import annotations

import math

import msgspec

from appliance.core.clock import utc_now
from appliance.core.errors import NotFound, Unavailable, ValidationError
from appliance.core.evaluations import KIND_EVALUATION, EvalStatus, Evaluation
from appliance.core.files import MAX_FILES, file_name_problem
from appliance.core.identity import EXECUTE, READ, Identity
from appliance.core.ids import new_batch_id, new_eval_id
from appliance.core.languages import find_language, supported_names
from appliance.core.paging import MAX_OFFSET
from appliance.services.access.auth import require_permission
from appliance.services.engines.readiness import EngineReadiness
from appliance.services.evaluation.backpressure import Backpressure
from appliance.services.evaluation.completions import Completions, until_done
from appliance.services.evaluation.queue import EvaluationQueue, RunningEvaluation
from appliance.store.evaluations import EvaluationStore

# The most evaluations one page of the history holds (`limit`).
MAX_PAGE = 1000


class EvalRequest(msgspec.Struct, kw_only=True):
    """One submission as the client sent it; every field is checked in `_validate`."""

    code: str | None = None
    language: str | None = "python"
    # None: the appliance's default engine ("docker", or "gvisor" when it is mandatory)
    engine: str | None = None
    timeout: float | None = None
    # Extension: text files placed in the work dir before the run, name -> content.
    files: dict[str, str] | None = None


class EvalLimits(msgspec.Struct, frozen=True, kw_only=True):
    default_timeout: float
    max_timeout: float
    max_code_bytes: int
    max_batch_size: int
    max_queue_length: int
    max_files_bytes: int = 1024 * 1024
    engines: tuple[str, ...]
    known_engines: tuple[str, ...] = ("docker", "gvisor")
    # Every evaluation runs under gVisor: engine "docker" is refused, and it is the default.
    require_gvisor: bool = False


class LogsView(msgspec.Struct, kw_only=True):
    evaluation: Evaluation
    output: str
    error: str
    is_running: bool


class QueueStats(msgspec.Struct, frozen=True, kw_only=True):
    queued: int  # waiting for a worker
    processing: int  # running now
    total: int  # every stored evaluation and execution, whatever its status
    by_status: dict[EvalStatus, int]  # of `total`; a status none has is left out


class EvaluationService:
    def __init__(
        self,
        store: EvaluationStore,
        queue: EvaluationQueue,
        limits: EvalLimits,
        readiness: EngineReadiness,
        completions: Completions | None = None,
        backpressure: Backpressure | None = None,
    ) -> None:
        self._store = store
        self._completions = completions or Completions(max_wait=0.0)
        self._backpressure = backpressure or Backpressure(threshold=0, workers=1)
        self._queue = queue
        self._limits = limits
        self._readiness = readiness

    # --- submitting -------------------------------------------------------------------

    def _validate(self, request: EvalRequest, owner: str, where: str = "") -> Evaluation:
        prefix = f"{where}: " if where else ""
        if request.code is None:
            raise ValidationError(f"{prefix}Code field is required")
        if not request.code.strip():
            raise ValidationError(f"{prefix}Code field is empty: send the program to run")
        if len(request.code.encode()) > self._limits.max_code_bytes:
            raise ValidationError(
                f"{prefix}code is {len(request.code.encode())} bytes; the limit is {self._limits.max_code_bytes} bytes"
            )
        language = find_language(request.language or "python")
        if language is None:
            raise ValidationError(
                f"{prefix}unknown language {request.language!r}; supported: {', '.join(supported_names())}"
            )
        engine = (request.engine or self._readiness.policy.default).strip().lower()
        if self._limits.require_gvisor and engine != "gvisor" and engine in self._limits.known_engines:
            raise ValidationError(
                f"{prefix}engine {engine!r} is refused: gVisor is mandatory on this appliance "
                f'(setting require_gvisor); send engine "gvisor" or leave engine out'
            )
        if engine not in self._limits.engines:
            if engine in self._limits.known_engines:
                raise ValidationError(
                    f"{prefix}engine {engine!r} is not enabled on this appliance; "
                    f"enabled: {', '.join(self._limits.engines)}"
                )
            raise ValidationError(
                f"{prefix}unknown engine {request.engine!r}; enabled: {', '.join(self._limits.engines)}"
            )
        timeout = self._limits.default_timeout if request.timeout is None else request.timeout
        if not math.isfinite(timeout) or timeout <= 0 or timeout > self._limits.max_timeout:
            raise ValidationError(
                f"{prefix}timeout must be more than 0 and at most {self._limits.max_timeout:g} seconds"
            )
        files = self._validate_files(request.files or {}, language.source_file, prefix)
        return Evaluation(
            eval_id=new_eval_id(),
            owner=owner,
            language=language.name,
            engine=engine,
            code=request.code,
            timeout=float(timeout),
            created_at=utc_now(),
            files=files,
        )

    def validate(self, request: EvalRequest, owner: str) -> Evaluation:
        """The checks an execution of the sandbox API shares (POST /api/execute)."""
        return self._validate(request, owner)

    async def check_capacity(self, language: str, engine: str) -> None:
        """503 when the runtime image or engine cannot run now, or the queue is full."""
        await self._check_capacity(1, {language}, {engine})

    def _validate_files(self, files: dict[str, str], source_file: str, prefix: str) -> dict[str, str]:
        if len(files) > MAX_FILES:
            raise ValidationError(f"{prefix}{len(files)} files; at most {MAX_FILES} per evaluation")
        for name in files:
            problem = file_name_problem(name)
            if problem:
                raise ValidationError(f"{prefix}files: {problem}")
            if name == source_file:
                raise ValidationError(f"{prefix}files: {name!r} is where the code goes; rename the file")
        size = sum(len(text.encode()) for text in files.values())
        if size > self._limits.max_files_bytes:
            raise ValidationError(f"{prefix}files hold {size} bytes; the limit is {self._limits.max_files_bytes} bytes")
        return dict(files)

    async def _check_capacity(self, count: int, languages: set[str], engines: set[str]) -> None:
        for language in sorted(languages):
            problem = await self._readiness.image_problem(language)
            if problem:
                raise Unavailable(problem)
        for engine in sorted(engines):
            problem = await self._readiness.engine_problem(engine)
            if problem:
                raise Unavailable(problem)
        self._backpressure.check(self._queue.queued_count, self._queue.running_count)
        if self._queue.queued_count + count > self._limits.max_queue_length:
            raise Unavailable(f"the queue is full ({self._queue.queued_count} waiting); retry with backoff")

    async def submit(self, identity: Identity, request: EvalRequest) -> tuple[Evaluation, int]:
        """Stored before this returns; the int is its 1-based place in the queue."""
        require_permission(identity, EXECUTE)
        evaluation = self._validate(request, identity.owner)
        await self._check_capacity(1, {evaluation.language}, {evaluation.engine})
        await self._store.insert_many([evaluation])
        return evaluation, self._queue.enqueue(evaluation)

    async def submit_batch(self, identity: Identity, requests: list[EvalRequest]) -> list[Evaluation]:
        """All valid or none stored: a bad item rejects the whole batch with its index."""
        require_permission(identity, EXECUTE)
        if not requests:
            raise ValidationError("evaluations is empty: send at least one evaluation")
        if len(requests) > self._limits.max_batch_size:
            raise ValidationError(
                f"{len(requests)} evaluations in one batch; the limit is {self._limits.max_batch_size}"
            )
        batch_id = new_batch_id()
        evaluations = [
            msgspec.structs.replace(self._validate(r, identity.owner, f"evaluations[{i}]"), batch_id=batch_id)
            for i, r in enumerate(requests)
        ]
        await self._check_capacity(len(evaluations), {e.language for e in evaluations}, {e.engine for e in evaluations})
        await self._store.insert_many(evaluations)
        for evaluation in evaluations:
            self._queue.enqueue(evaluation)
        return evaluations

    async def submit_batches(self, identity: Identity, groups: list[list[EvalRequest]]) -> list[list[Evaluation]]:
        """Several batches at once, all stored or none, their items queued in turn (the
        first of each batch, then the second of each, ...): the batch lane then runs the
        batches side by side, one sandbox each, instead of one after another. For bulk
        grading (services/llm/sandboxed.py)."""
        require_permission(identity, EXECUTE)
        if not groups or not all(groups):
            raise ValidationError("each batch needs at least one evaluation")
        batches: list[list[Evaluation]] = []
        for number, requests in enumerate(groups):
            if len(requests) > self._limits.max_batch_size:
                raise ValidationError(
                    f"{len(requests)} evaluations in one batch; the limit is {self._limits.max_batch_size}"
                )
            batch_id = new_batch_id()
            batches.append(
                [
                    msgspec.structs.replace(
                        self._validate(r, identity.owner, f"batches[{number}][{i}]"), batch_id=batch_id
                    )
                    for i, r in enumerate(requests)
                ]
            )
        every = [e for batch in batches for e in batch]
        await self._check_capacity(len(every), {e.language for e in every}, {e.engine for e in every})
        await self._store.insert_many(every)
        for place in range(max(len(batch) for batch in batches)):
            for batch in batches:
                if place < len(batch):
                    self._queue.enqueue(batch[place])
        return batches

    # --- reading ----------------------------------------------------------------------

    def authorize_events(self, identity: Identity) -> None:
        """Whether `identity` may follow evaluation events live (/ws); which events it
        then sees is `identity.may_see`'s answer, event by event."""
        require_permission(identity, READ)

    async def get(self, identity: Identity, eval_id: str, wait: float | None = None) -> Evaluation:
        """With `wait` (seconds): answered when it ends, or when the wait is over."""
        require_permission(identity, READ)
        seconds = self._completions.check_wait(wait)
        with self._completions.watch(eval_id) as ended:
            evaluation = await self._visible(identity, eval_id)
            if evaluation.status.is_terminal or not seconds:
                return evaluation
            await until_done(ended, seconds)
        return await self._visible(identity, eval_id)

    async def _visible(self, identity: Identity, eval_id: str) -> Evaluation:
        """The evaluation if this caller may see it; another owner's is as missing as none."""
        running = self._queue.running(eval_id)
        evaluation = running.evaluation if running else await self._store.get(eval_id)
        # Executions of the sandbox API share the table; they are not this API's.
        if evaluation is None or evaluation.kind != KIND_EVALUATION or not identity.may_see(evaluation.owner):
            raise NotFound(f"Evaluation {eval_id} not found")
        if running is not None:
            return msgspec.structs.replace(evaluation, output=running.stdout_text(), error=running.stderr_text())
        return evaluation

    async def logs(self, identity: Identity, eval_id: str) -> LogsView:
        evaluation = await self.get(identity, eval_id)
        return LogsView(
            evaluation=evaluation,
            output=evaluation.output,
            error=evaluation.error,
            is_running=evaluation.status is EvalStatus.RUNNING,
        )

    async def list(
        self, identity: Identity, *, limit: int, offset: int, status: str | None
    ) -> tuple[list[Evaluation], int]:
        require_permission(identity, READ)
        if not 1 <= limit <= MAX_PAGE:
            raise ValidationError(f"limit must be between 1 and {MAX_PAGE}")
        if not 0 <= offset <= MAX_OFFSET:
            raise ValidationError(f"offset must be between 0 and {MAX_OFFSET}")
        wanted = None
        if status:
            try:
                wanted = EvalStatus(status)
            except ValueError:
                raise ValidationError(
                    f"unknown status {status!r}; one of {', '.join(s.value for s in EvalStatus)}"
                ) from None
        owner = None if identity.is_admin else identity.owner
        return await self._store.list(owner=owner, status=wanted, limit=limit, offset=offset)

    # --- killing ----------------------------------------------------------------------

    async def kill(self, identity: Identity, eval_id: str) -> tuple[bool, str]:
        # Killing needs `execute` alone (as documented), not `read` too.
        require_permission(identity, EXECUTE)
        evaluation = await self._visible(identity, eval_id)
        if evaluation.status.is_terminal:
            return False, f"Evaluation already finished with status {evaluation.status.value}"
        killed = await self._queue.kill(eval_id)
        if killed:
            return True, "Evaluation terminated successfully"
        return False, "Evaluation finished before it could be terminated"

    async def queue_stats(self) -> QueueStats:
        counts = await self._store.count_by_status()
        return QueueStats(
            queued=self._queue.queued_count,
            processing=self._queue.running_count,
            total=sum(counts.values()),
            by_status=counts,
        )


__all__ = ["EvalRequest", "EvalLimits", "EvaluationService", "LogsView", "QueueStats", "RunningEvaluation"]
