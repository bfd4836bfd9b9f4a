"""The seam between the job queue and whatever runs graphs: in this process, or on Ray workers.

The job service keeps the queue, the event log and the output folder; a backend only runs one
job on one of its workers, streams the engine events back through `JobRun.on_event`, and writes
files through `JobRun.outputs`, an output store the server owns.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from engine.context import CancelToken
from engine.events import EventSink
from engine.outputs import OutputStore
from server.schemas import WorkerInfo


class WorkerLost(Exception):
    """The worker running a job died (its process was killed, its machine left the cluster)."""

    def __init__(self, worker_id: str, detail: str) -> None:
        self.worker_id = worker_id
        super().__init__(f"worker {worker_id} was lost: {detail}")


class WorkerCrash(Exception):
    """The executor on a remote worker raised outside any node; carries the remote traceback."""

    def __init__(self, exception_type: str, message: str, traceback: list[str]) -> None:
        self.exception_type, self.remote_traceback = exception_type, traceback
        super().__init__(f"{exception_type}: {message}")


@dataclass
class JobRun:
    """One attempt at running a job, as a backend sees it."""

    job_id: str
    graph: dict[str, Any]
    cancel: CancelToken
    # Called with each engine event, in order, from a thread of the backend's (never the loop).
    on_event: EventSink
    outputs: OutputStore
    # The planned nodes' lineage keys, for routing; empty when the server could not plan it.
    keys: dict[str, str] = field(default_factory=dict)
    # Node ids of the model loaders, whose keys matter most when routing.
    loaders: list[str] = field(default_factory=list)
    # Workers this job must not go to (one it was lost on, before its retry).
    avoid: frozenset[str] = frozenset()
    # The graph as validated on submission, when nothing ran since that could change its
    # validity; only a backend in this process uses it (it saves validating the graph again).
    validated: Any = None


class Backend(Protocol):
    """Runs jobs on workers; the job service asks for an idle one, then runs a job on it."""

    # Whether `claim` uses JobRun.keys; the job service plans jobs for it only then.
    routes_by_cache: bool
    # "in_process" or "ray", as GET /api/v1/system reports it.
    kind: str

    async def start(self, wake: Callable[[], None]) -> None:
        """Bring the workers up; call `wake` (on the event loop) whenever a worker becomes idle."""
        ...

    async def stop(self) -> None:
        """Stop the workers (the running jobs were interrupted before this is called)."""
        ...

    def has_idle(self) -> bool:
        """Whether some worker could take a job now."""
        ...

    def claim(self, run: JobRun, upcoming: list[JobRun]) -> str | None:
        """Pick an idle worker for `run` and mark it busy; None if none fits now.

        `upcoming` are the jobs queued behind it, so routing can keep a warm worker for them.
        """
        ...

    async def run(self, worker_id: str, run: JobRun) -> None:
        """Run the job on the claimed worker until its terminal engine event; frees the worker.

        Raises GraphValidationError if the graph no longer validates there, WorkerLost if the
        worker died, and any other exception if the executor itself crashed.
        """
        ...

    def workers(self) -> list[WorkerInfo]:
        """Each worker: its device, what it runs, and what its cache holds."""
        ...
