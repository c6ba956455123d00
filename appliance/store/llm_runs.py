"""Rows of `llm_runs` and `llm_transcripts`: suite runs and evaluate calls, and the
transcript of every case and trial."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import aiosqlite
import msgspec

from appliance.core.clock import iso_z, parse_iso, parse_iso_required
from appliance.core.llm.runs import EvaluationResult, Progress, RunStatus, SuiteResult, SuiteRun, Transcript
from appliance.store.database import Database

_SUITE_RESULT = msgspec.json.Decoder(SuiteResult)
_EVALUATION = msgspec.json.Decoder(EvaluationResult)
_TRANSCRIPT = msgspec.json.Decoder(Transcript)


def _from_row(row: aiosqlite.Row) -> SuiteRun:
    result = row["result"]
    suite_result = _SUITE_RESULT.decode(result) if result and row["kind"] == "suite" else None
    evaluation = _EVALUATION.decode(result) if result and row["kind"] == "evaluate" else None
    return SuiteRun(
        id=row["run_id"],
        kind=row["kind"],
        owner=row["owner"],
        status=row["status"],
        prompt=row["prompt"],
        suite=row["suite"],
        model=row["model"],
        created_at=parse_iso_required(row["created_at"]),
        finished_at=parse_iso(row["finished_at"]),
        progress=Progress(done=row["done"], total=row["total"]),
        error=row["error"],
        suite_result=suite_result,
        evaluation=evaluation,
    )


class LlmRunStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def insert(self, run: SuiteRun) -> None:
        await self._db.write_one(
            "INSERT INTO llm_runs (run_id, kind, owner, status, prompt, suite, model, created_at, done, total) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                run.id,
                run.kind,
                run.owner,
                run.status,
                run.prompt,
                run.suite,
                run.model,
                iso_z(run.created_at),
                run.progress.done,
                run.progress.total,
            ),
        )

    async def progress(self, run_id: str, done: int) -> None:
        await self._db.write_one(
            "UPDATE llm_runs SET done = ? WHERE run_id = ? AND status = ?", (done, run_id, "running")
        )

    async def add_transcripts(self, run_id: str, rows: Sequence[tuple[int, Transcript]]) -> None:
        """`rows`: (the case's place in the suite, its transcript of one trial)."""
        if not rows:
            return
        async with self._db.write() as conn:
            await conn.executemany(
                "INSERT OR REPLACE INTO llm_transcripts (run_id, case_index, trial, case_id, transcript) "
                "VALUES (?, ?, ?, ?, ?)",
                [(run_id, index, t.trial, t.case_id, msgspec.json.encode(t).decode()) for index, t in rows],
            )

    async def finish(
        self,
        run_id: str,
        status: RunStatus,
        finished_at: datetime,
        done: int,
        result: SuiteResult | EvaluationResult | None,
        error: str | None = None,
    ) -> None:
        await self._db.write_one(
            "UPDATE llm_runs SET status = ?, finished_at = ?, done = ?, result = ?, error = ? WHERE run_id = ?",
            (
                status.value,
                iso_z(finished_at),
                done,
                None if result is None else msgspec.json.encode(result).decode(),
                error,
                run_id,
            ),
        )

    async def fail_interrupted(self, reason: str, now: datetime) -> int:
        """Runs a stopped process left `running`: failed, with `reason`."""
        changed, _ = await self._db.write_one(
            "UPDATE llm_runs SET status = ?, finished_at = ?, error = ? WHERE status = ?",
            (RunStatus.FAILED.value, iso_z(now), reason, RunStatus.RUNNING.value),
        )
        return changed

    async def get(self, run_id: str) -> SuiteRun | None:
        row = await self._db.fetch_one("SELECT * FROM llm_runs WHERE run_id = ?", (run_id,))
        return None if row is None else _from_row(row)

    async def list_runs(self, owner: str | None, limit: int, offset: int) -> tuple[list[SuiteRun], int]:
        where, params = ("WHERE owner = ?", [owner]) if owner is not None else ("", [])
        rows = await self._db.fetch_all(
            f"SELECT * FROM llm_runs {where} ORDER BY created_at DESC, run_id DESC LIMIT ? OFFSET ?",
            (*params, limit, offset),
        )
        total = await self._db.fetch_count(f"SELECT count(*) FROM llm_runs {where}", params)
        return [_from_row(row) for row in rows], total

    async def transcripts(
        self, run_id: str, case_id: str | None, limit: int, offset: int
    ) -> tuple[list[Transcript], int]:
        where, params = "WHERE run_id = ?", [run_id]
        if case_id is not None:
            where, params = where + " AND case_id = ?", [*params, case_id]
        rows = await self._db.fetch_all(
            f"SELECT transcript FROM llm_transcripts {where} ORDER BY case_index, trial LIMIT ? OFFSET ?",
            (*params, limit, offset),
        )
        total = await self._db.fetch_count(f"SELECT count(*) FROM llm_transcripts {where}", params)
        return [_TRANSCRIPT.decode(row["transcript"]) for row in rows], total
