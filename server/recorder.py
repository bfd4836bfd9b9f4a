"""Records a running job's engine events: number, encode, persist, then hand to the event loop.

Runs on the worker thread. An event is committed to the store before it is published, so
whatever a client saw can be replayed, also after a restart. Events that the engine always
follows at once with another (a run starting, the cached nodes, a node served from the cache)
wait for that one and share its transaction: a run served wholly from the cache commits once.
Once a terminal event is committed the log is closed: nothing is recorded after it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from engine.events import (
    Event,
    NodeFinished,
    NodesCached,
    Progress,
    RunFailed,
    RunFinished,
    RunStarted,
    TerminalEvent,
)
from server.messages import (
    JobEvent,
    job_event,
    job_failed,
    message_for_engine_event,
    node_failure_error,
    preview_frame,
)
from server.previews import PREVIEW_MIME, encode_preview
from server.schemas import InterruptReason, JobError
from server.store import JobOutcome, StoredEvent, StoreThread

log = logging.getLogger(__name__)


class JobRecorder:
    """The `on_event` sink of one job's run."""

    def __init__(
        self,
        job_id: str,
        client_id: str | None,
        last_seq: int,
        store: StoreThread,
        publish: Callable[[JobEvent], None],
        interrupt_reason: Callable[[], InterruptReason],
        started_at: float | None = None,
    ) -> None:
        self.job_id, self.client_id = job_id, client_id
        self.seq = last_seq
        self.finished = False
        self._started_at = started_at  # recorded with the first commit
        self._deferred: list[JobEvent] = []
        self._store = store
        self._publish = publish
        self._interrupt_reason = interrupt_reason
        self._cached: list[str] = []
        self._executed: list[str] = []

    def on_event(self, event: Event) -> None:
        """Record one executor event; never raises into the executor."""
        if self.finished:
            log.warning("job %s sent %s after its terminal event; dropped", self.job_id, event.type)
            return
        try:
            self._record(event)
        except Exception:
            log.exception("could not record %s of job %s", event.type, self.job_id)

    def fail(self, error: JobError) -> None:
        """End the job as failed for a reason outside any node, unless it has ended already."""
        if self.finished:
            log.warning("job %s failed after its terminal event; its outcome stands", self.job_id)
            return
        message = job_failed(self.job_id, self.seq + 1, error, self._executed)
        outcome = JobOutcome(
            status="failed",
            finished_at=time.time(),
            executed=self._executed,
            cached=self._cached,
            outputs={},
            error=error.model_dump(mode="json"),
        )
        try:
            self._commit(job_event(message, self.client_id), outcome)
        except Exception:
            log.exception("could not record the failure of job %s", self.job_id)

    def _record(self, event: Event) -> None:
        seq = self.seq + 1
        frame = None
        if isinstance(event, Progress) and event.preview is not None:
            jpeg = encode_preview(event.preview)
            if jpeg is not None:
                frame = preview_frame(self.job_id, event.node_id, seq, PREVIEW_MIME, jpeg)
        if isinstance(event, NodesCached):
            self._cached = list(event.nodes)
        elif isinstance(event, NodeFinished) and not event.cached:
            self._executed.append(event.node_id)
        message = message_for_engine_event(
            self.job_id, seq, event, self._interrupt_reason(), preview=frame is not None
        )
        outcome = self._outcome(event) if isinstance(event, TerminalEvent) else None
        published = job_event(message, self.client_id, frame)
        if outcome is None and _followed_at_once(event):
            self._deferred.append(published)
            self.seq = published.seq
            return
        self._commit(published, outcome)

    def _outcome(self, event: TerminalEvent) -> JobOutcome:
        now = time.time()
        if isinstance(event, RunFinished):
            return JobOutcome("finished", now, event.executed, event.cached, event.outputs)
        if isinstance(event, RunFailed):
            error = node_failure_error(event.error).model_dump(mode="json")
            return JobOutcome("failed", now, event.executed, self._cached, {}, error=error)
        interrupted = {"node_id": event.node_id, "reason": self._interrupt_reason()}
        return JobOutcome(
            "interrupted", now, event.executed, self._cached, {}, interrupted=interrupted
        )

    def _commit(self, event: JobEvent, outcome: JobOutcome | None) -> None:
        events = [*self._deferred, event]
        stored = [StoredEvent(e.seq, e.type, e.text) for e in events]
        started_at = self._started_at
        self._store.call_blocking(
            lambda s: s.append_events(self.job_id, stored, outcome, started_at)
        )
        # Only now: a failed commit keeps the deferred events and the start for the next one, so
        # the log stays gap-free, and `event`'s number is given to the next event instead.
        self._deferred, self._started_at = [], None
        self.seq = event.seq
        self.finished = outcome is not None
        for published in events:
            self._publish(published)


def _followed_at_once(event: Event) -> bool:
    """Engine events that another always follows without any work in between."""
    return isinstance(event, RunStarted | NodesCached) or (
        isinstance(event, NodeFinished) and event.cached
    )
