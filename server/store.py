"""Durable jobs: the queue, the history and every job's event log, in one SQLite file.

The file lives in the output folder (`.latentgraph/jobs.sqlite3`, hidden from the view route).
WAL mode with synchronous=NORMAL: a committed job or event survives the process being killed.
Every call runs on one thread (`StoreThread`), so writes land in the order they were made.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

SCHEMA_VERSION = 1
DB_FOLDER = ".latentgraph"
DB_NAME = "jobs.sqlite3"
T = TypeVar("T")

_SCHEMA = """
CREATE TABLE jobs (
    number INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    client_id TEXT,
    status TEXT NOT NULL,
    position REAL NOT NULL,
    graph TEXT NOT NULL,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    executed TEXT NOT NULL DEFAULT '[]',
    cached TEXT NOT NULL DEFAULT '[]',
    outputs TEXT NOT NULL DEFAULT '{}',
    error TEXT,
    interrupted TEXT
);
CREATE INDEX jobs_by_status ON jobs (status, position);
CREATE INDEX jobs_by_client ON jobs (client_id, number);
CREATE TABLE events (
    job_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    type TEXT NOT NULL,
    message TEXT NOT NULL,
    PRIMARY KEY (job_id, seq)
) WITHOUT ROWID;
CREATE TABLE uploads (
    subfolder TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    name TEXT NOT NULL,
    PRIMARY KEY (subfolder, sha256)
) WITHOUT ROWID;
"""
_JOB_COLUMNS = (
    "id, number, status, client_id, position, graph, created_at, started_at, finished_at, "
    "executed, cached, outputs, error, interrupted, "
    "(SELECT COALESCE(MAX(seq), 0) FROM events WHERE events.job_id = jobs.id) AS last_seq"
)


def database_path(output: Path) -> Path:
    """Where the job database of an output folder lives."""
    return output / DB_FOLDER / DB_NAME


@dataclass(frozen=True)
class JobRow:
    """One stored job."""

    job_id: str
    number: int
    status: str
    client_id: str | None
    position: float
    graph: dict[str, Any]
    created_at: float
    started_at: float | None
    finished_at: float | None
    executed: list[str]
    cached: list[str]
    outputs: dict[str, Any]
    error: dict[str, Any] | None
    interrupted: dict[str, Any] | None
    last_seq: int


@dataclass(frozen=True)
class StoredEvent:
    """One entry of a job's event log: the JSON message exactly as it was sent."""

    seq: int
    type: str
    message: str


@dataclass(frozen=True)
class JobOutcome:
    """How a job ended, written together with its terminal event."""

    status: str
    finished_at: float
    executed: list[str]
    cached: list[str]
    outputs: dict[str, Any]
    error: dict[str, Any] | None = None
    interrupted: dict[str, Any] | None = None


class JobStore:
    """Synchronous access to the job database; use it from one thread (see StoreThread)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=5000")
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version == 0:
            self._db.executescript(
                f"BEGIN IMMEDIATE; {_SCHEMA} PRAGMA user_version={SCHEMA_VERSION}; COMMIT;"
            )
        elif version != SCHEMA_VERSION:
            raise RuntimeError(f"{path}: job database version {version} is not supported")

    def close(self) -> None:
        """Close the connection."""
        self._db.close()

    def insert_job(
        self,
        job_id: str,
        client_id: str | None,
        graph: dict[str, Any],
        created_at: float,
        position: float,
        first_event: StoredEvent,
    ) -> None:
        """Queue a job, with its first event, in one transaction."""
        with self._transaction():
            self._db.execute(
                "INSERT INTO jobs (id, client_id, status, position, graph, created_at) "
                "VALUES (?, ?, 'pending', ?, ?, ?)",
                (job_id, client_id, position, json.dumps(graph), created_at),
            )
            self._insert_event(job_id, first_event)

    def mark_running(self, job_id: str, started_at: float) -> None:
        """Record that the worker took the job."""
        self._db.execute(
            "UPDATE jobs SET status = 'running', started_at = ? WHERE id = ?", (started_at, job_id)
        )

    def append_event(self, job_id: str, event: StoredEvent, outcome: JobOutcome | None) -> None:
        """Log an event; a terminal event also records the job's outcome, atomically."""
        self.append_events(job_id, [event], outcome)

    def append_events(
        self,
        job_id: str,
        events: list[StoredEvent],
        outcome: JobOutcome | None,
        started_at: float | None = None,
    ) -> None:
        """Log events, in one transaction with the job's start (if given) and outcome (if ended)."""
        with self._transaction():
            if started_at is not None:
                self.mark_running(job_id, started_at)
            for event in events:
                self._insert_event(job_id, event)
            if outcome is not None:
                self._db.execute(
                    "UPDATE jobs SET status = ?, finished_at = ?, executed = ?, cached = ?, "
                    "outputs = ?, error = ?, interrupted = ? WHERE id = ?",
                    (
                        outcome.status,
                        outcome.finished_at,
                        json.dumps(outcome.executed),
                        json.dumps(outcome.cached),
                        json.dumps(outcome.outputs),
                        _json_or_none(outcome.error),
                        _json_or_none(outcome.interrupted),
                        job_id,
                    ),
                )

    def cancel(self, cancelled: Iterable[tuple[str, StoredEvent]], now: float) -> None:
        """Mark pending jobs cancelled, each with its `job_cancelled` event, in one transaction."""
        with self._transaction():
            for job_id, event in cancelled:
                self._db.execute(
                    "UPDATE jobs SET status = 'cancelled', finished_at = ? WHERE id = ?",
                    (now, job_id),
                )
                self._insert_event(job_id, event)

    def set_position(self, job_id: str, position: float) -> None:
        """Move a pending job in the queue order."""
        self._db.execute("UPDATE jobs SET position = ? WHERE id = ?", (position, job_id))

    def get(self, job_id: str) -> JobRow | None:
        """One job, or None."""
        row = self._db.execute(
            f"SELECT {_JOB_COLUMNS} FROM jobs WHERE id = ?", (job_id,)
        ).fetchone()
        return _job_row(row) if row else None

    def page(
        self, statuses: list[str] | None, client_id: str | None, limit: int, offset: int
    ) -> tuple[list[JobRow], int]:
        """A page of jobs, newest first, and how many match in all."""
        where, params = [], []
        if statuses:
            where.append(f"status IN ({', '.join('?' * len(statuses))})")
            params.extend(statuses)
        if client_id is not None:
            where.append("client_id = ?")
            params.append(client_id)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        total = self._db.execute(f"SELECT COUNT(*) FROM jobs {clause}", params).fetchone()[0]
        rows = self._db.execute(
            f"SELECT {_JOB_COLUMNS} FROM jobs {clause} ORDER BY number DESC LIMIT ? OFFSET ?",
            [*params, limit, offset],
        ).fetchall()
        return [_job_row(r) for r in rows], total

    def pending(self) -> list[tuple[JobRow, list[StoredEvent]]]:
        """Pending jobs in queue order, each with its event log."""
        rows = self._db.execute(
            f"SELECT {_JOB_COLUMNS} FROM jobs WHERE status = 'pending' ORDER BY position, number"
        ).fetchall()
        return [(job, self.events(job.job_id, 0, None)) for job in map(_job_row, rows)]

    def running(self) -> list[JobRow]:
        """Jobs recorded as running: after a restart, the ones the previous process was running."""
        rows = self._db.execute(
            f"SELECT {_JOB_COLUMNS} FROM jobs WHERE status = 'running' ORDER BY number"
        ).fetchall()
        return [_job_row(r) for r in rows]

    def events(self, job_id: str, after_seq: int, limit: int | None) -> list[StoredEvent]:
        """A job's events after `after_seq`, in order."""
        rows = self._db.execute(
            "SELECT seq, type, message FROM events WHERE job_id = ? AND seq > ? "
            "ORDER BY seq LIMIT ?",
            (job_id, after_seq, -1 if limit is None else limit),
        ).fetchall()
        return [StoredEvent(*r) for r in rows]

    def last_position(self) -> float:
        """The largest queue position ever given, so new jobs go after it."""
        value = self._db.execute("SELECT MAX(position) FROM jobs").fetchone()[0]
        return float(value or 0.0)

    def delete_job(self, job_id: str) -> JobRow | None:
        """Forget a finished job and its event log; returns the row as it was, or None."""
        with self._transaction():
            row = self.get(job_id)
            if row is None or row.status in ("pending", "running"):
                return row
            self._db.execute("DELETE FROM events WHERE job_id = ?", (job_id,))
            self._db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
        return row

    def prune(self, max_jobs: int, max_age_s: float | None, now: float) -> int:
        """Forget finished jobs beyond the newest `max_jobs` or older than `max_age_s`."""
        done = "status NOT IN ('pending', 'running')"
        with self._transaction():
            doomed = [
                r[0]
                for r in self._db.execute(
                    f"SELECT id FROM jobs WHERE {done} ORDER BY number DESC LIMIT -1 OFFSET ?",
                    (max_jobs,),
                )
            ]
            if max_age_s is not None:
                doomed += [
                    r[0]
                    for r in self._db.execute(
                        f"SELECT id FROM jobs WHERE {done} AND finished_at < ?",
                        (now - max_age_s,),
                    )
                ]
            for job_id in set(doomed):
                self._db.execute("DELETE FROM events WHERE job_id = ?", (job_id,))
                self._db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
        return len(set(doomed))

    def find_upload(self, subfolder: str, sha256: str) -> str | None:
        """The name an upload with this content was stored under, if any."""
        row = self._db.execute(
            "SELECT name FROM uploads WHERE subfolder = ? AND sha256 = ?", (subfolder, sha256)
        ).fetchone()
        return row[0] if row else None

    def record_upload(self, subfolder: str, sha256: str, name: str) -> None:
        """Remember where an upload's content is stored."""
        self._db.execute(
            "INSERT OR REPLACE INTO uploads (subfolder, sha256, name) VALUES (?, ?, ?)",
            (subfolder, sha256, name),
        )

    def _insert_event(self, job_id: str, event: StoredEvent) -> None:
        self._db.execute(
            "INSERT INTO events (job_id, seq, type, message) VALUES (?, ?, ?, ?)",
            (job_id, event.seq, event.type, event.message),
        )

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on error (the connection is in autocommit mode)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        self._db.execute("COMMIT" if kind is None else "ROLLBACK")


class StoreThread:
    """Runs JobStore calls on one dedicated thread, in the order they are made."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="latentgraph-store")
        self._store: JobStore | None = None

    async def open(self) -> None:
        """Open (and if needed create) the database on the store thread."""
        loop = asyncio.get_running_loop()
        self._store = await loop.run_in_executor(self._executor, JobStore, self.path)

    async def call(self, operation: Callable[[JobStore], T]) -> T:
        """Run `operation(store)` on the store thread, from the event loop."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._apply, operation)

    def call_blocking(self, operation: Callable[[JobStore], T]) -> T:
        """Run `operation(store)` on the store thread, from another thread, and wait for it."""
        return self._executor.submit(self._apply, operation).result()

    async def close(self) -> None:
        """Close the database and stop the thread, after every call already made."""
        if self._store is not None:
            await self.call(JobStore.close)
            self._store = None
        self._executor.shutdown(wait=True)

    def _apply(self, operation: Callable[[JobStore], T]) -> T:
        if self._store is None:
            raise RuntimeError("the job store is closed")
        return operation(self._store)


def _json_or_none(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


def _job_row(row: tuple[Any, ...]) -> JobRow:
    (
        job_id,
        number,
        status,
        client_id,
        position,
        graph,
        created_at,
        started_at,
        finished_at,
        executed,
        cached,
        outputs,
        error,
        interrupted,
        last_seq,
    ) = row
    return JobRow(
        job_id=job_id,
        number=number,
        status=status,
        client_id=client_id,
        position=position,
        graph=json.loads(graph),
        created_at=created_at,
        started_at=started_at,
        finished_at=finished_at,
        executed=json.loads(executed),
        cached=json.loads(cached),
        outputs=json.loads(outputs),
        error=json.loads(error) if error else None,
        interrupted=json.loads(interrupted) if interrupted else None,
        last_seq=last_seq,
    )
