"""The in-process backend: one worker thread running jobs through the server's own executor."""

from __future__ import annotations

from collections.abc import Callable

from engine.executor import Executor
from server.backends.base import JobRun
from server.schemas import WorkerInfo
from server.worker import WorkerThread

LOCAL_WORKER = "local"


class InProcessBackend:
    """One job at a time on one thread, sharing the server's executor and so its cache."""

    routes_by_cache = False
    kind = "in_process"

    def __init__(self, executor: Executor) -> None:
        self.executor = executor
        self._thread = WorkerThread()
        self._busy = False

    async def start(self, wake: Callable[[], None]) -> None:
        """Nothing to start: the thread starts with the first job."""

    async def stop(self) -> None:
        """Let the thread exit after what it runs now."""
        self._thread.stop()

    def has_idle(self) -> bool:
        """Whether the thread is free."""
        return not self._busy

    def claim(self, run: JobRun, upcoming: list[JobRun]) -> str | None:
        """The one worker, if it is free."""
        if self._busy:
            return None
        self._busy = True
        return LOCAL_WORKER

    async def run(self, worker_id: str, run: JobRun) -> None:
        """Run the job on the worker thread; exceptions of the executor propagate."""

        def execute() -> None:
            self.executor.run(
                run.validated if run.validated is not None else run.graph,
                on_event=run.on_event,
                cancel=run.cancel,
                run_id=run.job_id,
                outputs=run.outputs,
            )

        try:
            await self._thread.submit(execute)
        finally:
            self._busy = False

    def workers(self) -> list[WorkerInfo]:
        """None listed: the server's own devices and cache are the worker's (see /system)."""
        return []
