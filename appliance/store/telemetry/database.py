"""DATA_DIR/telemetry.db: its own writer thread and its own readers, off appliance.db's.

The writer is one thread with one connection. Ingest batches queue up for it; each time
it wakes it takes every batch waiting (group commit), writes them and their rollups in
one transaction, commits, and only then answers all of them: a 202 means committed, and
many concurrent requests cost one commit. Other writes (deletes, retention, export job
state) are jobs on the same thread, each its own transaction.

Readers are a small pool of threads, each with its own read-only connection (query_only,
as appliance.db's reader: a mode=ro connection was seen to miss fresh commits there), so
a long aggregate or export holds one reader while the others answer. sqlite3 releases
the GIL while SQLite works, so the writer, the readers and the event loop overlap.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

from appliance.core.telemetry import IngestBatch
from appliance.store.data_dir import create_private_file
from appliance.store.telemetry import rollups

log = logging.getLogger(__name__)

T = TypeVar("T")

PRAGMAS = (
    # Before anything is created (a no-op later): rows of a few hundred bytes sit well
    # in the time-ordered table's 16 KiB pages.
    "PRAGMA page_size=16384",
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA busy_timeout=10000",
    # A bigger page cache for the writer: the indexes' hot pages stay in memory.
    "PRAGMA cache_size=-65536",
)
# The writer never checkpoints (its commits do no fsync: WAL, synchronous=NORMAL); a
# thread of its own copies the WAL into the file this often (PASSIVE: alongside the
# writer and the readers, waiting for neither).
CHECKPOINT_SECONDS = 1.0
# The most events one group commit takes: bounds how long one transaction holds readers'
# checkpoints back and how late the first batch of a large group is answered.
GROUP_MAX_EVENTS = 50_000


def _migrations() -> list[tuple[int, str]]:
    folder = resources.files("appliance.store.telemetry") / "migrations"
    found = [(int(e.name.split("_", 1)[0]), e.read_text()) for e in folder.iterdir() if e.name.endswith(".sql")]
    return sorted(found)


def telemetry_schema_version() -> int:
    return _migrations()[-1][0]


def connect_writer(path: Path) -> sqlite3.Connection:
    """A connection that writes telemetry.db, its schema brought up to date (also for the
    benchmark's bulk load)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    create_private_file(path)  # 0600 before SQLite makes it; its -wal and -shm follow
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    for pragma in PRAGMAS:
        conn.execute(pragma)
    current = conn.execute("PRAGMA user_version").fetchone()[0]
    for version, script in _migrations():
        if version <= current:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _statements(script):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version={version}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return conn


def connect_reader(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout=10000")
    conn.execute("PRAGMA cache_size=-32768")
    conn.execute("PRAGMA query_only=ON")
    return conn


def _statements(script: str) -> list[str]:
    lines = [line for line in script.splitlines() if not line.strip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


class _Insert:
    __slots__ = ("batch", "future", "loop")

    def __init__(self, batch: IngestBatch, future: asyncio.Future[int], loop: asyncio.AbstractEventLoop) -> None:
        self.batch, self.future, self.loop = batch, future, loop


class _Job:
    __slots__ = ("function", "future", "loop")

    def __init__(
        self,
        function: Callable[[sqlite3.Connection], Any],
        future: asyncio.Future[Any],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.function, self.future, self.loop = function, future, loop


_STOP = object()


def _answer(future: asyncio.Future[Any], result: Any = None, error: BaseException | None = None) -> None:
    if future.done():  # the request went away (cancelled) meanwhile
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class TelemetryDatabase:
    def __init__(self, path: Path, readers: int = 2) -> None:
        self.path = path
        self._checkpointer: threading.Thread | None = None
        self._stopping = threading.Event()
        self._reader_count = max(1, readers)
        self._jobs: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._readers: ThreadPoolExecutor | None = None
        self._local = threading.local()
        self._reader_connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()

    # --- lifecycle ------------------------------------------------------------------------

    async def open(self) -> None:
        conn = await asyncio.to_thread(connect_writer, self.path)
        conn.execute("PRAGMA wal_autocheckpoint=0")
        self._stopping.clear()
        self._writer = threading.Thread(target=self._write_loop, args=(conn,), name="telemetry-writer", daemon=True)
        self._writer.start()
        self._checkpointer = threading.Thread(target=self._checkpoint_loop, name="telemetry-checkpoint", daemon=True)
        self._checkpointer.start()
        self._readers = ThreadPoolExecutor(self._reader_count, thread_name_prefix="telemetry-reader")

    async def close(self) -> None:
        self._stopping.set()
        if self._checkpointer is not None:
            await asyncio.to_thread(self._checkpointer.join)
            self._checkpointer = None
        if self._writer is not None:
            self._jobs.put(_STOP)
            await asyncio.to_thread(self._writer.join)
            self._writer = None
        if self._readers is not None:
            self._readers.shutdown(wait=True)
            self._readers = None
        with self._connections_lock:
            for conn in self._reader_connections:
                conn.close()
            self._reader_connections.clear()
        self._local = threading.local()

    @property
    def is_open(self) -> bool:
        return self._writer is not None

    def _checkpoint_loop(self) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout=10000")
        try:
            while not self._stopping.wait(CHECKPOINT_SECONDS):
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error as exc:  # busy now: the next round catches up
                    log.debug("telemetry checkpoint: %s", exc)
        finally:
            conn.close()

    # --- writes -----------------------------------------------------------------------------

    async def insert(self, batch: IngestBatch) -> int:
        """Store `batch`; returns once it is committed (with whatever else was waiting)."""
        if not batch.rows:
            return 0
        loop = asyncio.get_running_loop()
        future: asyncio.Future[int] = loop.create_future()
        self._require_writer()
        self._jobs.put(_Insert(batch, future, loop))
        return await future

    async def write(self, function: Callable[[sqlite3.Connection], T]) -> T:
        """Run `function(conn)` on the writer in its own transaction (committed when it
        returns, rolled back when it raises)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._require_writer()
        self._jobs.put(_Job(function, future, loop))
        return await future

    def _require_writer(self) -> None:
        if self._writer is None:
            raise RuntimeError("the telemetry database is not open")

    def _write_loop(self, conn: sqlite3.Connection) -> None:
        names = rollups.NameCache()
        try:
            while True:
                job = self._jobs.get()
                if job is _STOP:
                    return
                held: object | None = None
                if isinstance(job, _Insert):
                    group = [job]
                    count = len(job.batch.rows)
                    while count < GROUP_MAX_EVENTS:
                        try:
                            more = self._jobs.get_nowait()
                        except queue.Empty:
                            break
                        if not isinstance(more, _Insert):
                            held = more  # runs right after this group
                            break
                        group.append(more)
                        count += len(more.batch.rows)
                    self._commit_group(conn, names, group)
                else:
                    held = job
                if held is _STOP:
                    return
                if isinstance(held, _Job):
                    self._run_job(conn, names, held)
        finally:
            conn.close()

    def _commit_group(self, conn: sqlite3.Connection, names: rollups.NameCache, group: list[_Insert]) -> None:
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                rollups.insert_events(conn, names, [item.batch for item in group])
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                names.forget()  # ids handed out inside the rolled-back transaction are void
                raise
        except Exception as exc:
            log.exception("telemetry: a group of %d batches could not be stored", len(group))
            for item in group:
                item.loop.call_soon_threadsafe(_answer, item.future, None, exc)
            return
        for item in group:
            item.loop.call_soon_threadsafe(_answer, item.future, len(item.batch.rows))

    def _run_job(self, conn: sqlite3.Connection, names: rollups.NameCache, job: _Job) -> None:
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = job.function(conn)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            finally:
                names.forget()  # a job may have removed names
        except Exception as exc:
            job.loop.call_soon_threadsafe(_answer, job.future, None, exc)
            return
        job.loop.call_soon_threadsafe(_answer, job.future, result)

    # --- reads ------------------------------------------------------------------------------

    async def read(self, function: Callable[[sqlite3.Connection], T]) -> T:
        """Run `function(conn)` on a reader thread, in one read transaction (one snapshot)."""
        if self._readers is None:
            raise RuntimeError("the telemetry database is not open")
        return await asyncio.get_running_loop().run_in_executor(self._readers, self._read_in_thread, function)

    def _read_in_thread(self, function: Callable[[sqlite3.Connection], T]) -> T:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect_reader(self.path)
            self._local.conn = conn
            with self._connections_lock:
                self._reader_connections.append(conn)
        conn.execute("BEGIN")
        try:
            return function(conn)
        finally:
            conn.execute("COMMIT")
