"""The SQLite file: one writer connection, one read-only reader, forward migrations.

As in Datasette, every write goes through a single connection (serialized by a lock,
each in `BEGIN IMMEDIATE`), and reads use a separate read-only connection so a long
read never waits on the writer. WAL mode lets both work at once.

Opening takes the data dir's shared lock (db_files.py) for as long as the database is
open, so `appliance restore` can tell that it is in use. Before migrations change an
existing database, a copy of it as it was goes to DATA_DIR/backups/ (the newest few are
kept): an upgrade that goes wrong can be undone by putting that file back.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import TypeAlias

import aiosqlite

from appliance import __version__
from appliance.core.errors import AppError
from appliance.store import data_dir, db_files

log = logging.getLogger(__name__)

# What SQLite stores and hands back: a statement's parameters and a column's value.
SqlValue: TypeAlias = str | int | float | bytes | None

PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA busy_timeout=5000",
    "PRAGMA foreign_keys=ON",
)


class SchemaTooNew(AppError):
    """The database was written by a newer appliance than this one."""


class PreMigrationCopyFailed(AppError):
    """The copy that must exist before a migration could not be written; nothing changed."""


def _too_new(path: Path, current: int, latest: int) -> SchemaTooNew:
    return SchemaTooNew(
        f"{path} has schema version {current}, newer than this appliance ({__version__}, schema up to "
        f"{latest}) knows: run the newer appliance binary that wrote it, or restore a backup made by this "
        "version (`appliance restore FILE --force`)"
    )


def refuse_newer_schema(path: Path) -> None:
    """Raise SchemaTooNew if the file at `path` was written by a newer appliance.
    Synchronous, for the commands that must refuse before they start anything."""
    current = db_files.database_version(path)
    if current is not None and current > schema_version():
        raise _too_new(path, current, schema_version())


def _migrations() -> list[tuple[int, str]]:
    folder = resources.files("appliance.store") / "migrations"
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            found.append((int(entry.name.split("_", 1)[0]), entry.read_text()))
    return sorted(found)


def schema_version() -> int:
    return _migrations()[-1][0]


class Database:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._dir_lock: int | None = None  # fd holding the data dir's shared lock
        self._write_lock = asyncio.Lock()
        # Reads share one connection. Without this lock, two interleaved reads put both
        # statements in one read transaction, and the second sees the first's older
        # snapshot: a row committed between them is missed (seen as a GET right after a
        # POST answering 404 under load).
        self._read_lock = asyncio.Lock()

    async def open(self) -> None:
        self.path.parent.mkdir(mode=data_dir.DIR_MODE, parents=True, exist_ok=True)
        data_dir.create_private_file(self.path)
        self._dir_lock = db_files.hold_lock(self.path, exclusive=False)
        try:
            self._writer = await aiosqlite.connect(self.path, isolation_level=None)
            self._writer.row_factory = aiosqlite.Row
            for pragma in PRAGMAS:
                await self._writer.execute(pragma)
            await self._migrate()
            # query_only rather than a mode=ro URI: a mode=ro connection maps the WAL index
            # read-only and was seen to miss rows committed a moment before.
            self._reader = await aiosqlite.connect(self.path, isolation_level=None)
            self._reader.row_factory = aiosqlite.Row
            await self._reader.execute("PRAGMA busy_timeout=5000")
            await self._reader.execute("PRAGMA query_only=ON")
        except BaseException:
            await self.close()  # a refused open holds neither connections nor the lock
            raise

    async def close(self) -> None:
        for conn in (self._reader, self._writer):
            if conn is not None:
                await conn.close()
        self._reader = self._writer = None
        if self._dir_lock is not None:
            db_files.release_lock(self._dir_lock)
            self._dir_lock = None

    async def _migrate(self) -> None:
        assert self._writer is not None
        row = await (await self._writer.execute("PRAGMA user_version")).fetchone()
        assert row is not None, "PRAGMA user_version always answers one row"
        current: int = row[0]
        latest = schema_version()
        if current > latest:
            raise _too_new(self.path, current, latest)
        if 0 < current < latest:  # an existing database about to change: copy it first
            await self._copy_before_migrating(current, latest)
        for version, script in _migrations():
            if version <= current:
                continue
            await self._writer.execute("BEGIN IMMEDIATE")
            try:
                for statement in _split_sql(script):
                    await self._writer.execute(statement)
                await self._writer.execute(f"PRAGMA user_version={version}")
                await self._writer.execute("COMMIT")
            except BaseException:
                await self._writer.execute("ROLLBACK")
                raise

    async def _copy_before_migrating(self, current: int, latest: int) -> None:
        try:
            copy = await asyncio.to_thread(db_files.write_pre_migration_copy, self.path, latest)
        except (OSError, db_files.CopyFailed) as exc:
            folder = self.path.parent / db_files.PRE_MIGRATION_DIR
            raise PreMigrationCopyFailed(
                f"before upgrading {self.path} from schema v{current} to v{latest}: {exc}; "
                f"make room or fix permissions in {folder}, then start again; the database was not changed"
            ) from exc
        log.warning(
            "upgrading %s from schema v%d to v%d; a copy of it as it was is in %s", self.path, current, latest, copy
        )

    @asynccontextmanager
    async def write(self) -> AsyncIterator[aiosqlite.Connection]:
        """One write transaction; committed when the block ends without error."""
        assert self._writer is not None, "database is not open"
        async with self._write_lock:
            try:
                # Inside the try: a task cancelled while awaiting BEGIN has still queued
                # it on the writer's thread, which runs it; without the ROLLBACK queued
                # after it, the transaction stayed open and took every later write_one,
                # never committed (readers saw none of them, the next BEGIN failed).
                await self._writer.execute("BEGIN IMMEDIATE")
                yield self._writer
            except BaseException:
                await asyncio.shield(self._rollback())
                raise
            else:
                await self._writer.execute("COMMIT")

    async def _rollback(self) -> None:
        assert self._writer is not None
        try:
            await self._writer.execute("ROLLBACK")
        except sqlite3.OperationalError:
            if self._writer.in_transaction:
                raise  # only "no transaction is active" (BEGIN itself failed) is expected

    async def write_one(self, sql: str, params: Iterable[SqlValue] = ()) -> tuple[int, list[aiosqlite.Row]]:
        """One statement as its own transaction (autocommit): one trip to the writer's
        thread instead of BEGIN, the statement, fetch and COMMIT. Returns the rows it
        changed and any RETURNING rows."""
        assert self._writer is not None, "database is not open"
        async with self._write_lock:
            before = self._writer.total_changes
            rows = await self._writer.execute_fetchall(sql, tuple(params))
            return self._writer.total_changes - before, list(rows)

    async def fetch_all(self, sql: str, params: Iterable[SqlValue] = ()) -> list[aiosqlite.Row]:
        assert self._reader is not None, "database is not open"
        async with self._read_lock, self._reader.execute(sql, tuple(params)) as cursor:
            return list(await cursor.fetchall())

    async def fetch_one(self, sql: str, params: Iterable[SqlValue] = ()) -> aiosqlite.Row | None:
        # fetchall, not fetchone: a statement left unfinished would keep the reader's
        # read transaction, and so its old snapshot, open for the next query.
        rows = await self.fetch_all(sql, params)
        return rows[0] if rows else None

    async def fetch_value(self, sql: str, params: Iterable[SqlValue] = ()) -> SqlValue:
        row = await self.fetch_one(sql, params)
        if row is None:
            return None
        value: SqlValue = row[0]
        return value

    async def fetch_count(self, sql: str, params: Iterable[SqlValue] = ()) -> int:
        """The number a `SELECT count(*) ...` answers."""
        value = await self.fetch_value(sql, params)
        if not isinstance(value, int):
            raise TypeError(f"{sql!r} answered {value!r}, not a count")
        return value


def _split_sql(script: str) -> list[str]:
    """Statements of a migration file; our migrations hold no `;` inside literals."""
    lines = [line for line in script.splitlines() if not line.strip().startswith("--")]
    return [stmt.strip() for stmt in "\n".join(lines).split(";") if stmt.strip()]
