"""The job queue and its worker: submit, cancel, reorder and run jobs through one shared Executor.

Queue decisions are made on the event loop, against the active jobs held in memory, so they
cannot race one another; every change is written to the store before it is announced. Each job
owns its cancel token, so cancelling by id can only ever stop that job.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any, Literal

from engine.errors import GraphValidationError
from engine.executor import Executor
from engine.outputs import FolderOutputStore, OutputStore
from server.active_job import ActiveJob
from server.backends.base import Backend, JobRun, WorkerCrash, WorkerLost
from server.backends.local import InProcessBackend
from server.hub import EventHub
from server.job_errors import JobNotFound, JobStateConflict, attempt_error
from server.job_rows import fail_orphans, from_stored, to_stored
from server.messages import (
    JobCancelled,
    JobCancelledData,
    JobEvent,
    JobQueued,
    JobQueuedData,
    QueueStatus,
    QueueStatusData,
    job_event,
)
from server.recorder import JobRecorder
from server.schemas import JobCreated, JobError, JobSummary
from server.store import JobRow, StoredEvent, StoreThread

log = logging.getLogger(__name__)

CancelOutcome = Literal["cancelled", "interrupting"]
# How many queued jobs behind the first the router looks at, to keep warm workers for them.
ROUTING_LOOKAHEAD = 8
# Nodes of this category load models; their lineage keys weigh most when routing.
LOADER_CATEGORY = "loaders"


class JobService:
    """Owns the queue, the job history and the output store; a backend runs the jobs."""

    def __init__(
        self,
        executor: Executor,
        store: StoreThread,
        hub: EventHub,
        backend: Backend | None = None,
        outputs: OutputStore | None = None,
        *,
        history_max_jobs: int = 10_000,
        history_max_age_s: float | None = None,
    ) -> None:
        self.executor = executor
        self._history = (history_max_jobs, history_max_age_s)
        self.backend: Backend = backend if backend is not None else InProcessBackend(executor)
        # Every file a job writes goes through this store, whichever backend ran the job.
        self.outputs = outputs if outputs is not None else FolderOutputStore(executor.paths.output)
        self._store = store
        self._hub = hub
        self._jobs: dict[str, ActiveJob] = {}  # pending and running jobs, until their last event
        self._pending: dict[str, ActiveJob] = {}
        self._running: dict[str, ActiveJob] = {}
        self._runs: set[asyncio.Task[None]] = set()
        self._back = 0.0  # positions: new jobs go after _back, front jobs before _front
        self._front = 0.0
        self._wake = asyncio.Event()
        self._stopping = False
        self._status_scheduled = False
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # --- Lifecycle. ---

    async def start(self) -> None:
        """Recover from the last process, reload the pending jobs, and start the worker."""
        self._loop = asyncio.get_running_loop()
        await fail_orphans(self._store)
        for row, events in await self._store.call(lambda s: s.pending()):
            job = ActiveJob(row.job_id, row.client_id, row.graph, row.created_at, row.position)
            job.log = [from_stored(row.job_id, row.client_id, e) for e in events]
            self._jobs[job.job_id] = self._pending[job.job_id] = job
        self._back = await self._store.call(lambda s: s.last_position())
        self._front = min([0.0, *(j.position for j in self._pending.values())])
        if self._pending:
            log.info("%d pending job(s) kept from the last run", len(self._pending))
        await self.prune_history()
        await self.backend.start(self._wake.set)
        self._task = asyncio.create_task(self._work(), name="latentgraph-jobs")

    async def stop(self, grace: float) -> None:
        """Stop taking jobs and interrupt the running one; wait up to `grace` seconds for it."""
        self._stopping = True
        self._wake.set()
        for running in self._running.values():
            running.interrupt_reason = "server_shutdown"
            running.cancel.cancel()
        if self._task is not None:
            tasks = {self._task, *self._runs}
            _, left = await asyncio.wait(tasks, timeout=grace)
            if left:
                log.warning("the running job did not stop within %.0f s; it is left running", grace)
                for task in left:
                    task.cancel()
                await asyncio.gather(*left, return_exceptions=True)
        await self.backend.stop()

    # --- Requests. ---

    async def submit(
        self, graph: Any, client_id: str | None, front: bool, retry: bool = False
    ) -> JobCreated:
        """Validate and queue a graph; raises GraphValidationError, and then queues nothing."""
        validated = await asyncio.to_thread(self.executor.validate, graph)
        keys, loaders = await self._routing(validated)
        job_id, now = uuid.uuid4().hex, time.time()
        if front:
            self._front -= 1
            position = self._front
        else:
            self._back += 1
            position = self._back
        job = ActiveJob(job_id, client_id, validated.document, now, position, retry=retry)
        job.keys, job.loaders = keys, loaders
        if not self._running:
            job.validated = validated
        ahead = sum(1 for other in self._pending.values() if other.position < position)
        queued = job_event(
            JobQueued(data=JobQueuedData(job_id=job_id, seq=1, time=now, position=ahead)),
            client_id,
        )
        stored = to_stored(queued)
        await self._store.call(
            lambda s: s.insert_job(job_id, client_id, job.graph, now, position, stored)
        )
        self._jobs[job_id] = self._pending[job_id] = job
        self._on_published(queued)
        self._wake.set()
        self._queue_changed()
        return JobCreated(**job.summary().model_dump(), position=ahead)

    async def cancel(self, job_id: str) -> CancelOutcome:
        """Cancel a pending job or interrupt the running one; cancelling twice is harmless."""
        job = self._jobs.get(job_id)
        if job is not None and job.status == "pending":
            await self._cancel_pending([job])
            return "cancelled"
        if job is not None and job.status == "running":
            job.interrupt_reason = "requested"
            job.cancel.cancel()
            return "interrupting"
        row = await self.get(job_id)
        if row is None:
            raise JobNotFound(job_id)
        if row.status == "cancelled":
            return "cancelled"
        raise JobStateConflict(job_id, row.status, "cancel")

    async def clear(self) -> list[str]:
        """Cancel every pending job; returns their ids."""
        jobs = sorted(self._pending.values(), key=lambda j: j.position)
        await self._cancel_pending(jobs)
        return [job.job_id for job in jobs]

    async def move_to_front(self, job_id: str) -> JobSummary:
        """Make a pending job the next to run."""
        job = self._pending.get(job_id)
        if job is None:
            row = await self.get(job_id)
            if row is None:
                raise JobNotFound(job_id)
            raise JobStateConflict(job_id, row.status, "move")
        self._front -= 1
        job.position = position = self._front
        await self._store.call(lambda s: s.set_position(job_id, position))
        self._queue_changed()
        return job.summary()

    async def delete(self, job_id: str) -> JobRow:
        """Forget a finished job; raises JobNotFound, or JobStateConflict while it is active."""
        job = self._jobs.get(job_id)
        if job is not None:
            raise JobStateConflict(job_id, job.status, "delete")
        row = await self._store.call(lambda s: s.delete_job(job_id))
        if row is None:
            raise JobNotFound(job_id)
        if row.status in ("pending", "running"):
            raise JobStateConflict(job_id, row.status, "delete")
        return row

    async def prune_history(self) -> None:
        """Apply the history limits (count and age) to finished jobs."""
        max_jobs, max_age = self._history
        try:
            forgotten = await self._store.call(lambda s: s.prune(max_jobs, max_age, time.time()))
        except Exception:
            log.exception("pruning the job history failed")
            return
        if forgotten:
            log.info("forgot %d old job(s) from the history", forgotten)

    async def get(self, job_id: str) -> JobRow | None:
        """A job from the store, whatever its state."""
        return await self._store.call(lambda s: s.get(job_id))

    async def page(
        self, statuses: list[str] | None, client_id: str | None, limit: int, offset: int
    ) -> tuple[list[JobRow], int]:
        """A page of jobs, newest first, and the number that match."""
        return await self._store.call(lambda s: s.page(statuses, client_id, limit, offset))

    async def stored_events(
        self, job_id: str, after_seq: int, limit: int | None
    ) -> tuple[JobRow, list[JobEvent]] | None:
        """A job and its logged events after `after_seq`, from the store; None if unknown."""

        def read(s: Any) -> tuple[JobRow, list[StoredEvent]] | None:
            row = s.get(job_id)
            return None if row is None else (row, s.events(job_id, after_seq, limit))

        found = await self._store.call(read)
        if found is None:
            return None
        row, events = found
        return row, [from_stored(job_id, row.client_id, e) for e in events]

    def active(self, job_id: str) -> ActiveJob | None:
        """A pending or running job, whose log holds every event published so far."""
        return self._jobs.get(job_id)

    def queue(self) -> tuple[ActiveJob | None, list[ActiveJob]]:
        """The running job (the first started, when workers run several) and the pending ones."""
        running = self.running_jobs()
        pending = sorted(self._pending.values(), key=lambda j: j.position)
        return (running[0] if running else None), pending

    def running_jobs(self) -> list[ActiveJob]:
        """Every running job, first started first."""
        return sorted(self._running.values(), key=lambda j: j.started_at or 0.0)

    def queue_status(self) -> QueueStatus:
        """The queue counts message."""
        return QueueStatus(
            data=QueueStatusData(pending=len(self._pending), running=len(self._running))
        )

    # --- Dispatch. ---

    async def _work(self) -> None:
        """Hand the first pending job to a worker the backend picks, whenever one is idle."""
        while not self._stopping:
            queued = sorted(self._pending.values(), key=lambda j: j.position)
            worker = None
            if queued and self.backend.has_idle():
                upcoming = [self._job_run(j) for j in queued[1:ROUTING_LOOKAHEAD]]
                run = self._job_run(queued[0])
                worker = self.backend.claim(run, upcoming)
            if worker is None:
                self._wake.clear()
                await self._wake.wait()
                continue
            job = queued[0]
            del self._pending[job.job_id]
            for waiting in self._pending.values():
                waiting.validated = None  # they will run after this job: validate them again
            job.status, job.started_at = "running", time.time()
            job.attempts += 1
            self._running[job.job_id] = job
            self._queue_changed()
            task = asyncio.create_task(self._run(job, worker, run), name=f"job-{job.job_id}")
            self._runs.add(task)
            task.add_done_callback(self._runs.discard)

    def _job_run(self, job: ActiveJob) -> JobRun:
        return JobRun(
            job.job_id,
            job.graph,
            job.cancel,
            on_event=lambda _event: None,
            outputs=self.outputs,
            keys=job.keys,
            loaders=job.loaders,
            avoid=job.avoid,
        )

    async def _run(self, job: ActiveJob, worker: str, run: JobRun) -> None:
        """Run one job on its worker and make sure it ends with exactly one terminal event."""
        requeued = False
        try:
            # The start is stored with the job's first events, in their transaction.
            recorder = self._recorder(job)
            run.on_event = recorder.on_event
            run.validated, job.validated = job.validated, None
            error = await self._attempt(job, worker, run)
            if error is not None and recorder.finished:
                # Its terminal event is stored and was sent: the job is over, whatever came after
                # (a Ray worker dying between its last event and its end record).
                log.warning("job %s ended, then its run raised: %s", job.job_id, error)
                error = None
            if isinstance(error, WorkerLost) and self._retry(job, error):
                requeued = True
                return
            if error is not None:
                await asyncio.to_thread(recorder.fail, attempt_error(error))
            if not recorder.finished:
                message = "the run ended without a result"
                await asyncio.to_thread(
                    recorder.fail, JobError(code="internal_error", message=message)
                )
        except Exception:
            log.exception("job %s could not be run", job.job_id)
        finally:
            self._running.pop(job.job_id, None)
            if not requeued and self._jobs.pop(job.job_id, None) is not None:
                log.error("job %s ended without a recorded outcome", job.job_id)
            self._queue_changed()
            self._wake.set()
        if not requeued:
            await self.prune_history()

    async def _attempt(self, job: ActiveJob, worker: str, run: JobRun) -> Exception | None:
        """Run the job once; the exception that ended it without a terminal event, if any."""
        try:
            await self.backend.run(worker, run)
        except Exception as exc:
            if not isinstance(exc, (GraphValidationError, WorkerLost, WorkerCrash)):
                log.exception("job %s crashed the executor", job.job_id)
            return exc
        return None

    def _retry(self, job: ActiveJob, lost: WorkerLost) -> bool:
        """Queue a job again, at its old place, if it asked for one retry and has not had it."""
        if not job.retry or job.attempts > 1 or job.cancel.cancelled or self._stopping:
            return False
        log.warning("job %s lost worker %s; retrying it once elsewhere", job.job_id, lost.worker_id)
        job.status, job.avoid = "pending", job.avoid | {lost.worker_id}
        self._pending[job.job_id] = job
        return True

    def _recorder(self, job: ActiveJob) -> JobRecorder:
        loop = self._loop
        assert loop is not None
        return JobRecorder(
            job.job_id,
            job.client_id,
            job.last_seq,
            self._store,
            lambda event: _call_soon(loop, self._on_published, event),
            lambda: job.interrupt_reason,
            started_at=job.started_at,
        )

    async def _routing(self, validated: Any) -> tuple[dict[str, str], list[str]]:
        """The lineage keys and model loaders of a graph, if the backend routes by cache."""
        if not getattr(self.backend, "routes_by_cache", False):
            return {}, []
        try:
            plan = await asyncio.to_thread(self.executor.plan, validated)
        except Exception:
            log.warning("could not plan a job for routing; it goes to any worker", exc_info=True)
            return {}, []
        loaders = [n for n in plan.order if validated.nodes[n].cls.spec.category == LOADER_CATEGORY]
        return plan.keys, loaders

    # --- Events. ---

    def _on_published(self, event: JobEvent) -> None:
        """Append a committed event to its job's log and fan it out (on the event loop)."""
        job = self._jobs.get(event.job_id)
        if job is not None:
            job.log.append(event)
            if event.terminal:
                del self._jobs[event.job_id]
        self._hub.publish(event)

    async def _cancel_pending(self, jobs: list[ActiveJob]) -> None:
        if not jobs:
            return
        now = time.time()
        events = []
        for job in jobs:
            self._pending.pop(job.job_id, None)
            job.status = "cancelled"
            job.cancel.cancel()
            message = JobCancelled(
                data=JobCancelledData(job_id=job.job_id, seq=job.last_seq + 1, time=now)
            )
            events.append(job_event(message, job.client_id))
        self._queue_changed()
        stored = [(e.job_id, to_stored(e)) for e in events]
        await self._store.call(lambda s: s.cancel(stored, now))
        for event in events:
            self._on_published(event)

    def _queue_changed(self) -> None:
        # Coalesce: one queue message per loop iteration, however many changes it saw.
        if not self._status_scheduled and self._loop is not None:
            self._status_scheduled = True
            self._loop.call_soon(self._send_queue_status)

    def _send_queue_status(self) -> None:
        self._status_scheduled = False
        self._hub.broadcast(self.queue_status())


def _call_soon(loop: asyncio.AbstractEventLoop, callback: Any, event: JobEvent) -> None:
    try:
        loop.call_soon_threadsafe(callback, event)
    except RuntimeError:
        log.warning(
            "event %d of job %s arrived after the event loop closed", event.seq, event.job_id
        )
