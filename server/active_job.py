"""A pending or running job as the queue holds it in memory, with its log and cancel token."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engine.context import CancelToken
from engine.validate import ValidatedGraph
from server.messages import JobEvent
from server.schemas import InterruptReason, JobStatus, JobSummary


@dataclass
class ActiveJob:
    """A pending or running job, with every event published for it so far."""

    job_id: str
    client_id: str | None
    graph: dict[str, Any]
    created_at: float
    position: float
    status: JobStatus = "pending"
    started_at: float | None = None
    log: list[JobEvent] = field(default_factory=list)
    cancel: CancelToken = field(default_factory=CancelToken)
    interrupt_reason: InterruptReason = "requested"
    # The graph as validated on submission, while nothing has run since that could change its
    # validity (a job that waits behind another is validated again when it starts).
    validated: ValidatedGraph | None = None
    # Run it once more on another worker if its worker dies (the Ray backend's workers can).
    retry: bool = False
    attempts: int = 0
    avoid: frozenset[str] = frozenset()
    # Lineage keys of the planned nodes and the ids of the model loaders, for routing.
    keys: dict[str, str] = field(default_factory=dict)
    loaders: list[str] = field(default_factory=list)

    @property
    def last_seq(self) -> int:
        return self.log[-1].seq if self.log else 0

    def summary(self) -> JobSummary:
        return JobSummary(
            job_id=self.job_id,
            status=self.status,
            client_id=self.client_id,
            created_at=self.created_at,
            started_at=self.started_at,
            last_seq=self.last_seq,
        )
