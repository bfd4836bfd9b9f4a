"""Cache-affinity routing: which idle worker should run a job.

A job goes to an idle worker whose cache holds all its model loaders' lineage keys, and of
those to the one holding the most of its other keys; with none warm, to the least-loaded idle
worker, preferring one that is not the only warm worker for a job queued behind it. A job never
waits for a busy warm worker, so routing cannot hold up the queue or leave a worker idle while
jobs wait.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from server.backends.base import JobRun


@dataclass
class WorkerView:
    """What routing knows of a worker: whether it is free, its load, and the keys it caches."""

    worker_id: str
    idle: bool
    jobs_run: int = 0
    # Lineage keys in this worker's cache, as the server computes them for a job's nodes.
    keys: set[str] = field(default_factory=set)

    def warm_for(self, run: JobRun) -> bool:
        """Whether every model loader of the job is cached here."""
        loader_keys = [run.keys[n] for n in run.loaders if n in run.keys]
        return bool(loader_keys) and all(k in self.keys for k in loader_keys)

    def shared_keys(self, run: JobRun) -> int:
        """How many of the job's lineage keys are cached here."""
        return sum(1 for key in run.keys.values() if key in self.keys)


def choose_worker(
    run: JobRun, upcoming: Sequence[JobRun], workers: Sequence[WorkerView]
) -> str | None:
    """The id of the idle worker that should run `run`, or None if no worker is idle."""
    candidates = [w for w in workers if w.idle and w.worker_id not in run.avoid]
    if not candidates and run.avoid:
        # Better another try on the worker it was lost on (a replacement) than none.
        candidates = [w for w in workers if w.idle]
    if not candidates:
        return None

    def kept_for_later(worker: WorkerView) -> bool:
        # Cold for this job but warm for one queued behind it: keep it for that one.
        return not worker.warm_for(run) and any(worker.warm_for(later) for later in upcoming)

    best = min(
        enumerate(candidates),
        key=lambda item: (
            not item[1].warm_for(run),
            kept_for_later(item[1]),
            -item[1].shared_keys(run),
            item[1].jobs_run,
            item[0],
        ),
    )
    return best[1].worker_id
