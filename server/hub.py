"""Who hears which job: subscriptions by client id and by job id, cursors, replay and fan-out.

Every job event goes to the connections opened with the job's client id and to those subscribed
to the job by id; to no one else. Each connection keeps a cursor per job (the range of sequence
numbers it was sent), so a replay after a reconnect sends exactly the missing events, once,
however it overlaps with live delivery. The hub runs on the event loop and never blocks.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from pydantic import BaseModel

from server.codec import Codec
from server.messages import Frame, JobEvent

MAX_SUBSCRIPTIONS = 1000
MAX_CURSORS = 4096


class Subscriber(Protocol):
    """A connection as the hub sees it: a client id, a codec and a non-blocking send."""

    client_id: str | None
    codec: Codec

    def send(self, frames: list[Frame], live: bool = False) -> None:
        """Queue frames without blocking; `live` marks a job's events, live or replayed, which
        count against the connection's backlog (connection messages do not)."""
        ...


@dataclass
class Cursor:
    """The events of one job that one connection was sent: `lo`..`hi`, or none yet (`lo` None).

    With `lo` None, `hi` is the point to resume after: events up to it are not wanted.
    """

    lo: int | None = None
    hi: int = 0
    muted: bool = False
    by_id: bool = False


class EventHub:
    """Routes job events and connection messages to websocket connections."""

    def __init__(self) -> None:
        self._cursors: dict[Subscriber, OrderedDict[str, Cursor]] = {}
        self._by_client: dict[str, set[Subscriber]] = {}
        self._by_job: dict[str, set[Subscriber]] = {}

    @property
    def connections(self) -> list[Subscriber]:
        """Every attached connection."""
        return list(self._cursors)

    def attach(self, conn: Subscriber) -> None:
        """Start routing the jobs of `conn.client_id` to `conn`, from their next event on."""
        self._cursors[conn] = OrderedDict()
        if conn.client_id is not None:
            self._by_client.setdefault(conn.client_id, set()).add(conn)

    def detach(self, conn: Subscriber) -> None:
        """Forget a closed connection."""
        self._cursors.pop(conn, None)
        if conn.client_id is not None:
            peers = self._by_client.get(conn.client_id, set())
            peers.discard(conn)
            if not peers:
                self._by_client.pop(conn.client_id, None)
        for job_id in [j for j, subs in self._by_job.items() if conn in subs]:
            self._unlink(conn, job_id)

    def publish(self, event: JobEvent) -> None:
        """Send a live job event to its client's connections and the job's subscribers."""
        targets = set(self._by_job.get(event.job_id, ()))
        if event.client_id is not None:
            targets.update(self._by_client.get(event.client_id, ()))
        for conn in targets:
            cursor = self._cursor(conn, event.job_id, event.seq - 1)
            if cursor.muted or event.seq <= cursor.hi:
                continue
            if cursor.lo is None:
                cursor.lo = event.seq
            cursor.hi = event.seq
            conn.send(event.frames(conn.codec), live=True)
        if event.terminal:
            self._by_job.pop(event.job_id, None)

    def subscribe(
        self, conn: Subscriber, job_id: str, after_seq: int, log: Iterable[JobEvent], live: bool
    ) -> int:
        """Send the events of `log` after `after_seq` that `conn` was not sent yet; returns how many.

        With `live`, the job is still active and its later events follow. Call this with the
        job's complete log so far, with no await between reading the log and this call.
        """
        cursor = self._cursor(conn, job_id, after_seq)
        cursor.muted = False
        cursor.by_id = True
        newest, sent = None, 0
        for event in log:
            if event.seq <= after_seq:
                continue
            newest = event.seq
            if cursor.lo is not None and cursor.lo <= event.seq <= cursor.hi:
                continue
            conn.send(event.frames(conn.codec), live=True)  # a replay counts as job events do
            sent += 1
        if newest is not None:
            cursor.lo = after_seq + 1 if cursor.lo is None else min(cursor.lo, after_seq + 1)
            cursor.hi = max(cursor.hi, newest)
        elif cursor.lo is None:
            cursor.hi = max(cursor.hi, after_seq)
        if live:
            self._by_job.setdefault(job_id, set()).add(conn)
        return sent

    def unsubscribe(self, conn: Subscriber, job_id: str) -> None:
        """Stop sending a job's events to `conn`, whether it came by id or by client id."""
        self._cursor(conn, job_id, 0).muted = True
        self._unlink(conn, job_id)

    def subscriptions(self, conn: Subscriber) -> int:
        """How many jobs `conn` subscribed to by id."""
        return sum(1 for c in self._cursors.get(conn, {}).values() if c.by_id and not c.muted)

    def send(self, conn: Subscriber, message: BaseModel) -> None:
        """Send a connection message (hello, subscribed, error, ...) to one connection."""
        conn.send(conn.codec.message(message))

    def broadcast(self, message: BaseModel) -> None:
        """Send a message to every connection, encoding it once per codec."""
        encoded: dict[str, list[Frame]] = {}
        for conn in list(self._cursors):
            frames = encoded.get(conn.codec.name)
            if frames is None:
                frames = encoded[conn.codec.name] = conn.codec.message(message)
            conn.send(frames)

    def _cursor(self, conn: Subscriber, job_id: str, resume_after: int) -> Cursor:
        cursors = self._cursors.setdefault(conn, OrderedDict())
        cursor = cursors.get(job_id)
        if cursor is None:
            cursor = cursors[job_id] = Cursor(hi=resume_after)
            if len(cursors) > MAX_CURSORS:
                # The oldest cursors belong to long-finished jobs; forgetting one only means a
                # much later replay of that job may repeat events this connection already had.
                oldest = next(iter(cursors))
                del cursors[oldest]
                self._unlink(conn, oldest)
        return cursor

    def _unlink(self, conn: Subscriber, job_id: str) -> None:
        subs = self._by_job.get(job_id)
        if subs is not None:
            subs.discard(conn)
            if not subs:
                del self._by_job[job_id]
