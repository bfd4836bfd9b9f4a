"""The worker thread: runs one job at a time off the event loop and reports back to it."""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class WorkerThread:
    """One long-lived daemon thread that runs submitted functions in order.

    A daemon, so that a node that never checks its cancel token cannot keep the process alive.
    """

    def __init__(self, name: str = "latentgraph-worker") -> None:
        self._name = name
        self._inbox: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def submit(self, function: Callable[[], None]) -> asyncio.Future[None]:
        """Run `function` on the thread; the future resolves on the calling loop when it returns."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()

        def task() -> None:
            error: BaseException | None = None
            try:
                function()
            except BaseException as exc:
                error = exc
            try:
                loop.call_soon_threadsafe(_settle, future, error)
            except RuntimeError:
                log.warning("the event loop closed before a job finished")

        if self._thread is None:
            self._thread = threading.Thread(target=self._serve, name=self._name, daemon=True)
            self._thread.start()
        self._inbox.put(task)
        return future

    def stop(self) -> None:
        """Let the thread exit after what it is running now."""
        if self._thread is not None:
            self._inbox.put(None)
            self._thread = None

    def _serve(self) -> None:
        while (task := self._inbox.get()) is not None:
            task()


def _settle(future: asyncio.Future[None], error: BaseException | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)
