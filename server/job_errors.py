"""What goes wrong with jobs: requests that name no job or the wrong state, and the JobError of
a run that ended without a terminal event."""

from __future__ import annotations

import traceback

from engine.errors import GraphValidationError
from server.backends.base import WorkerCrash, WorkerLost
from server.schemas import JobError


class JobNotFound(LookupError):
    """No job has this id."""


class JobStateConflict(Exception):
    """The job is not in a state that allows the request (moving a finished job, say)."""

    def __init__(self, job_id: str, status: str, action: str) -> None:
        self.job_id, self.status = job_id, status
        super().__init__(f"job {job_id} is {status}; cannot {action} it")


def attempt_error(error: Exception) -> JobError:
    """The JobError of an attempt that ended without a terminal engine event."""
    if isinstance(error, GraphValidationError):
        # The graph was valid when queued; the models folder or the nodes changed since.
        return JobError(
            code="invalid_graph",
            message=f"the graph is no longer valid ({len(error.errors)} error(s))",
            errors=error.errors,
        )
    if isinstance(error, WorkerLost):
        return JobError(code="worker_lost", message=str(error))
    if isinstance(error, WorkerCrash):
        return JobError(
            code="internal_error",
            message=str(error),
            exception_type=error.exception_type,
            traceback=error.remote_traceback,
        )
    return JobError(
        code="internal_error",
        message=f"{type(error).__name__}: {error}",
        exception_type=type(error).__qualname__,
        traceback=traceback.format_exception(error),
    )
