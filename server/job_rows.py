"""Between the store's rows and events and what the queue and the API hold: summaries, log
entries, and the failure a restart records for a job the last process was running."""

from __future__ import annotations

import json
import logging
import time
from functools import partial

from server.files import with_view_urls
from server.messages import JobEvent, job_event, job_failed
from server.schemas import InterruptInfo, JobError, JobSummary
from server.store import JobOutcome, JobRow, JobStore, StoredEvent, StoreThread

log = logging.getLogger(__name__)


def summary_from_row(row: JobRow) -> JobSummary:
    """A stored job as the API shows it, with view URLs in its outputs."""
    return JobSummary(
        job_id=row.job_id,
        status=row.status,  # type: ignore[arg-type]
        client_id=row.client_id,
        created_at=row.created_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        last_seq=row.last_seq,
        executed=row.executed,
        cached=row.cached,
        outputs={node: with_view_urls(ui) for node, ui in row.outputs.items()},
        error=JobError.model_validate(row.error) if row.error else None,
        interrupted=InterruptInfo.model_validate(row.interrupted) if row.interrupted else None,
    )


def to_stored(event: JobEvent) -> StoredEvent:
    """A job event as its log stores it."""
    return StoredEvent(event.seq, event.type, event.text)


def from_stored(job_id: str, client_id: str | None, event: StoredEvent) -> JobEvent:
    """A logged event as it is sent again."""
    return JobEvent(job_id, event.seq, event.type, event.message, client_id)


async def fail_orphans(store: StoreThread) -> None:
    """Jobs the last process was running when it died: record them as failed."""
    now = time.time()
    for row in await store.call(lambda s: s.running()):
        events = await store.call(
            partial(JobStore.events, job_id=row.job_id, after_seq=0, limit=None)
        )
        executed = _executed_from_log(events)
        error = JobError(
            code="server_stopped",
            message="the server stopped while this job was running, so it did not finish",
        )
        message = job_failed(row.job_id, row.last_seq + 1, error, executed)
        event = to_stored(job_event(message, row.client_id))
        outcome = JobOutcome("failed", now, executed, [], {}, error=error.model_dump(mode="json"))
        await store.call(
            partial(JobStore.append_event, job_id=row.job_id, event=event, outcome=outcome)
        )
        log.warning("job %s was running when the server stopped; marked failed", row.job_id)


def _executed_from_log(events: list[StoredEvent]) -> list[str]:
    executed = []
    for event in events:
        if event.type == "node_finished":
            data = json.loads(event.message)["data"]
            if not data["cached"]:
                executed.append(data["node_id"])
    return executed
