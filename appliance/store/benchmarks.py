"""Rows of `benchmark_results` and `benchmark_items`: one result per benchmark run (a
model's, or an ensemble's) and whether it answered each item right, with the item's
transcript."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import aiosqlite
import msgspec

from appliance.core.clock import iso_z, parse_iso, parse_iso_required
from appliance.core.llm.benchmarks import BenchmarkResult, ItemTranscript
from appliance.store.database import Database

_TRANSCRIPT = msgspec.json.Decoder(ItemTranscript)


def _from_row(row: aiosqlite.Row) -> BenchmarkResult:
    total, correct = row["total"], row["correct"]
    accuracy = correct / total if total else 0.0
    return BenchmarkResult(
        id=row["id"],
        dataset=row["dataset"],
        provider=row["provider"],
        model=row["model"],
        score=accuracy,
        accuracy=accuracy,
        total_time_ms=row["total_time_ms"],
        total_tokens=row["total_tokens"],
        experiment_id=row["experiment_id"],
        run_id=row["run_id"],
        status=row["status"],
        correct=correct,
        total=total,
        errors=row["errors"],
        error=row["error"],
        owner=row["owner"],
        created_at=parse_iso_required(row["created_at"]),
        finished_at=parse_iso(row["finished_at"]),
    )


class BenchmarkStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def begin(
        self,
        *,
        experiment_id: str,
        run_id: str,
        owner: str,
        dataset: str,
        provider: str,
        model: str,
        total: int,
        now: datetime,
    ) -> BenchmarkResult:
        """The run's result, running; a run that starts again (after a pause or a restart)
        starts its result over, under the same id."""
        async with self._db.write() as conn:
            await conn.execute(
                "DELETE FROM benchmark_items WHERE result_id IN (SELECT id FROM benchmark_results WHERE run_id = ?)",
                (run_id,),
            )
            await conn.execute(
                "INSERT INTO benchmark_results (experiment_id, run_id, owner, dataset, provider, model, status, total, "
                "created_at) VALUES (?, ?, ?, ?, ?, ?, 'running', ?, ?) ON CONFLICT (run_id) DO UPDATE SET "
                "status = 'running', total = excluded.total, correct = 0, errors = 0, total_time_ms = 0, "
                "total_tokens = 0, error = NULL, finished_at = NULL, provider = excluded.provider, "
                "model = excluded.model, created_at = excluded.created_at",
                (experiment_id, run_id, owner, dataset, provider, model, total, iso_z(now)),
            )
        result = await self.by_run(run_id)
        assert result is not None
        return result

    async def add_items(self, result_id: int, rows: Sequence[tuple[int, ItemTranscript]]) -> None:
        """`rows`: (the item's place in the dataset, its transcript)."""
        if not rows:
            return
        async with self._db.write() as conn:
            await conn.executemany(
                "INSERT OR REPLACE INTO benchmark_items (result_id, item_id, position, correct, transcript) "
                "VALUES (?, ?, ?, ?, ?)",
                [
                    (result_id, t.item_id, position, int(t.correct), msgspec.json.encode(t).decode())
                    for position, t in rows
                ],
            )

    async def finish(
        self,
        result_id: int,
        *,
        status: str,
        correct: int,
        errors: int,
        total_time_ms: int,
        total_tokens: int,
        now: datetime,
        error: str | None = None,
    ) -> None:
        await self._db.write_one(
            "UPDATE benchmark_results SET status = ?, correct = ?, errors = ?, total_time_ms = ?, total_tokens = ?, "
            "finished_at = ?, error = ? WHERE id = ?",
            (status, correct, errors, total_time_ms, total_tokens, iso_z(now), error, result_id),
        )

    async def fail_running(self, run_ids: Sequence[str], error: str, now: datetime) -> None:
        for run_id in run_ids:
            await self._db.write_one(
                "UPDATE benchmark_results SET status = 'failed', error = ?, finished_at = ? "
                "WHERE run_id = ? AND status = 'running'",
                (error, iso_z(now), run_id),
            )

    async def get(self, result_id: int) -> BenchmarkResult | None:
        row = await self._db.fetch_one("SELECT * FROM benchmark_results WHERE id = ?", (result_id,))
        return None if row is None else _from_row(row)

    async def by_run(self, run_id: str) -> BenchmarkResult | None:
        row = await self._db.fetch_one("SELECT * FROM benchmark_results WHERE run_id = ?", (run_id,))
        return None if row is None else _from_row(row)

    async def of_experiment(self, experiment_id: str) -> list[BenchmarkResult]:
        rows = await self._db.fetch_all(
            "SELECT * FROM benchmark_results WHERE experiment_id = ? ORDER BY id", (experiment_id,)
        )
        return [_from_row(row) for row in rows]

    async def newest(
        self, owner: str | None, dataset: str | None, limit: int, offset: int
    ) -> tuple[list[BenchmarkResult], int]:
        """Results newest first; `owner` None: everyone's, `dataset` None: every dataset's."""
        where, params = [], []
        if owner is not None:
            where.append("owner = ?")
            params.append(owner)
        if dataset is not None:
            where.append("dataset = ?")
            params.append(dataset)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        rows = await self._db.fetch_all(
            f"SELECT * FROM benchmark_results{clause} ORDER BY id DESC LIMIT ? OFFSET ?", (*params, limit, offset)
        )
        total = await self._db.fetch_count(f"SELECT count(*) FROM benchmark_results{clause}", params)
        return [_from_row(row) for row in rows], total

    async def completed(self, dataset: str) -> list[BenchmarkResult]:
        rows = await self._db.fetch_all(
            "SELECT * FROM benchmark_results WHERE dataset = ? AND status = 'completed' ORDER BY id", (dataset,)
        )
        return [_from_row(row) for row in rows]

    async def correctness(self, result_id: int) -> dict[str, bool]:
        """item id -> answered right."""
        rows = await self._db.fetch_all(
            "SELECT item_id, correct FROM benchmark_items WHERE result_id = ?", (result_id,)
        )
        return {row["item_id"]: bool(row["correct"]) for row in rows}

    async def transcripts(self, result_id: int, limit: int, offset: int) -> tuple[list[ItemTranscript], int]:
        rows = await self._db.fetch_all(
            "SELECT transcript FROM benchmark_items WHERE result_id = ? ORDER BY position LIMIT ? OFFSET ?",
            (result_id, limit, offset),
        )
        total = await self._db.fetch_count("SELECT count(*) FROM benchmark_items WHERE result_id = ?", (result_id,))
        return [_TRANSCRIPT.decode(row["transcript"]) for row in rows], total
