"""The SQLite layer on real files: migrations, the one writer, refusing newer schemas."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest

from appliance.core.clock import utc_now
from appliance.core.evaluations import EvalStatus, Evaluation
from appliance.store.database import Database, SchemaTooNew, schema_version
from appliance.store.evaluations import EvaluationStore


def make_eval(n: int) -> Evaluation:
    return Evaluation(
        eval_id=f"eval_test_{n}",
        owner="alice",
        language="python",
        engine="docker",
        code=f"print({n})",
        timeout=5,
        created_at=utc_now(),
    )


async def test_migrates_an_empty_file_and_uses_wal(tmp_path):
    db = Database(tmp_path / "a.db")
    await db.open()
    try:
        assert await db.fetch_value("PRAGMA user_version") == schema_version()
        assert await db.fetch_value("PRAGMA journal_mode") == "wal"
        tables = {r[0] for r in await db.fetch_all("SELECT name FROM sqlite_master WHERE type='table'")}
        assert {"evaluations", "api_keys", "meta"} <= tables
    finally:
        await db.close()


async def test_reopening_does_not_migrate_again(tmp_path):
    for _ in range(2):
        db = Database(tmp_path / "a.db")
        await db.open()
        await db.close()


async def test_refuses_a_database_from_a_newer_appliance(tmp_path):
    path = tmp_path / "a.db"
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version={schema_version() + 1}")
    db = Database(path)
    with pytest.raises(SchemaTooNew, match="newer"):
        await db.open()
    await db.close()


async def test_batch_insert_is_all_or_nothing(tmp_path):
    db = Database(tmp_path / "a.db")
    await db.open()
    try:
        store = EvaluationStore(db)
        await store.insert_many([make_eval(1)])
        with pytest.raises(sqlite3.IntegrityError):
            await store.insert_many([make_eval(2), make_eval(1)])  # duplicate id second
        _, total = await store.list(owner=None, status=None, limit=10, offset=0)
        assert total == 1
    finally:
        await db.close()


async def test_restart_recovery_fails_running_and_keeps_queued_order(tmp_path):
    db = Database(tmp_path / "a.db")
    await db.open()
    try:
        store = EvaluationStore(db)
        await store.insert_many([make_eval(n) for n in range(3)])
        claimed = await store.claim("eval_test_1", utc_now())
        assert claimed.status is EvalStatus.RUNNING and claimed.code == "print(1)"
        assert await store.claim("eval_test_1", utc_now()) is None
        assert await store.fail_interrupted("appliance_restart", utc_now()) == 1
        failed = await store.get("eval_test_1")
        assert failed.status is EvalStatus.FAILED and failed.reason == "appliance_restart"
        assert "restarted" in failed.error
        assert [e.eval_id for e in await store.queued_in_order()] == ["eval_test_0", "eval_test_2"]
    finally:
        await db.close()


async def test_finish_only_once(tmp_path):
    import msgspec

    db = Database(tmp_path / "a.db")
    await db.open()
    try:
        store = EvaluationStore(db)
        await store.insert_many([make_eval(1)])
        done = msgspec.structs.replace(make_eval(1), status=EvalStatus.COMPLETED, exit_code=0)
        assert await store.finish(done)
        assert not await store.finish(msgspec.structs.replace(done, status=EvalStatus.FAILED))
        assert (await store.get("eval_test_1")).status is EvalStatus.COMPLETED
    finally:
        await db.close()


async def test_a_row_is_readable_right_after_its_insert_while_other_reads_run(tmp_path):
    """Read-your-writes under concurrent reads: interleaved statements on the shared
    reader once shared one snapshot, so a GET right after a POST could miss the row."""
    import asyncio

    db = Database(tmp_path / "a.db")
    await db.open()
    try:
        store = EvaluationStore(db)
        stop = asyncio.Event()

        async def background_reads():
            while not stop.is_set():
                await store.list(owner=None, status=None, limit=50, offset=0)

        async def insert_then_get(n: int):
            await store.insert_many([make_eval(n)])
            return await store.get(f"eval_test_{n}")

        readers = [asyncio.create_task(background_reads()) for _ in range(4)]
        try:
            results = await asyncio.gather(*(insert_then_get(n) for n in range(400)))
        finally:
            stop.set()
            await asyncio.gather(*readers)
        missed = [n for n, found in enumerate(results) if found is None]
        assert missed == []
    finally:
        await db.close()


async def test_a_write_cancelled_at_its_begin_leaves_no_transaction_open(tmp_path):
    """A task cancelled while awaiting BEGIN has still queued it on the writer's thread:
    the transaction it opens is rolled back, so later writes are committed and seen."""
    db = Database(tmp_path / "a.db")
    await db.open()
    try:
        for n in range(20):

            async def write(n: int = n) -> None:
                async with db.write() as conn:
                    await conn.execute("INSERT INTO meta (key, value) VALUES (?, 'cancelled')", (f"c{n}",))

            task = asyncio.create_task(write())
            await asyncio.sleep(0)  # the task is now awaiting its BEGIN
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await db.write_one("INSERT INTO meta (key, value) VALUES (?, 'kept')", (f"k{n}",))
            assert await db.fetch_value("SELECT value FROM meta WHERE key = ?", (f"k{n}",)) == "kept"
        assert await db.fetch_value("SELECT count(*) FROM meta WHERE value = 'cancelled'") == 0
        async with db.write() as conn:  # and a whole transaction still begins
            await conn.execute("INSERT INTO meta (key, value) VALUES ('after', 'x')")
        assert await db.fetch_value("SELECT value FROM meta WHERE key = 'after'") == "x"
    finally:
        await db.close()
