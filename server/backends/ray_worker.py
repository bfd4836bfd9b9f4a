"""The graph worker that runs inside one Ray actor: its own executor, its own cache.

Plain Python, so it imports without Ray; `ray_backend` wraps it with `ray.remote`. A job's run
is a generator the server iterates over Ray (a streaming generator): engine events, requests to
write files, and last an end record with the worker's cache state. Files are never written here:
the server's output store writes them and answers with their names (`deliver`), so workers need
no shared disk.
"""

from __future__ import annotations

import logging
import os
import queue
import socket
import threading
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.config import ComputeOptions, Paths
from engine.context import CancelToken
from engine.errors import GraphValidationError
from engine.events import Event, Progress
from engine.executor import Executor
from server.previews import encode_preview

log = logging.getLogger(__name__)

# How long a job waits for the server to write its files before it fails.
FILE_REPLY_TIMEOUT_S = 300.0
Item = tuple[Any, ...]


@dataclass(frozen=True)
class WorkerConfig:
    """What a worker needs to start: its id, the folders, and how many torch threads to use."""

    worker_id: str
    models: str
    input: str
    output: str
    threads: int | None = None
    compute: ComputeOptions = field(default_factory=ComputeOptions)


class GraphWorker:
    """Runs one job at a time (plus `cancel`, `deliver` and `describe` calls beside it)."""

    def __init__(self, config: WorkerConfig) -> None:
        import torch

        if config.threads:
            torch.set_num_threads(config.threads)
        self.config = config
        paths = Paths(Path(config.models), Path(config.input), Path(config.output))
        self.executor = Executor(paths=paths, compute=config.compute)
        self.jobs_run = 0
        self._lock = threading.Lock()
        self._tokens: dict[str, CancelToken] = {}
        self._cancelled_early: set[str] = set()
        self._replies: dict[tuple[str, int], queue.Queue[list[str] | str]] = {}

    def run(self, job_id: str, graph: dict[str, Any]) -> Iterator[Item]:
        """Run a graph, yielding ("event", e), ("files", ...) and last ("end", error, state)."""
        token = CancelToken()
        with self._lock:
            self._tokens[job_id] = token
            if job_id in self._cancelled_early:
                self._cancelled_early.discard(job_id)
                token.cancel()
        items: queue.Queue[Item] = queue.Queue()
        outputs = _StreamedOutputs(self, job_id, items, token)
        thread = threading.Thread(
            target=self._execute, args=(job_id, graph, token, items, outputs), daemon=True
        )
        thread.start()
        try:
            while True:
                item = items.get()
                yield item
                if item[0] == "end":
                    return
        finally:
            with self._lock:
                self._tokens.pop(job_id, None)

    def cancel(self, job_id: str) -> None:
        """Interrupt a job at its next step (or before it starts, if it has not yet)."""
        with self._lock:
            token = self._tokens.get(job_id)
            if token is None:
                self._cancelled_early.add(job_id)
                return
        token.cancel()

    def deliver(self, job_id: str, request: int, names: list[str] | str) -> None:
        """The server's answer to a file request: the names written, or an error message."""
        with self._lock:
            reply = self._replies.get((job_id, request))
        if reply is not None:
            reply.put(names)

    def describe(self) -> dict[str, Any]:
        """Where this worker runs, its devices and threads, and what its cache holds."""
        import torch

        cache = self.executor.cache
        devices: list[dict[str, Any]] = [{"name": "cpu", "type": "cpu"}]
        if torch.cuda.is_available():
            for index in range(torch.cuda.device_count()):
                free, total = torch.cuda.mem_get_info(index)
                devices.append(
                    {
                        "name": torch.cuda.get_device_name(index),
                        "type": "cuda",
                        "index": index,
                        "memory_total": total,
                        "memory_free": free,
                    }
                )
        return {
            "worker_id": self.config.worker_id,
            "pid": os.getpid(),
            "node": socket.gethostname(),
            "devices": devices,
            "threads": torch.get_num_threads(),
            "jobs_run": self.jobs_run,
            "cache": {"entries": len(cache), "usage": cache.usage(), "keys": cache.keys()},
        }

    def _execute(
        self,
        job_id: str,
        graph: dict[str, Any],
        token: CancelToken,
        items: queue.Queue[Item],
        outputs: _StreamedOutputs,
    ) -> None:
        error: dict[str, Any] | None = None
        keys: dict[str, str] = {}
        try:
            keys = self.executor.plan(graph).keys
            self.executor.run(
                graph,
                on_event=lambda event: items.put(("event", _portable(event))),
                cancel=token,
                run_id=job_id,
                outputs=outputs,
            )
        except GraphValidationError as exc:
            error = {
                "kind": "invalid_graph",
                "errors": [e.model_dump(mode="json") for e in exc.errors],
            }
        except BaseException as exc:
            log.exception("job %s crashed the executor", job_id)
            error = {
                "kind": "crash",
                "type": type(exc).__qualname__,
                "message": str(exc),
                "traceback": traceback.format_exception(exc),
            }
        self.jobs_run += 1
        items.put(("end", error, {"keys": keys, **self.describe()}))

    def _await_reply(self, job_id: str, request: int, token: CancelToken) -> list[str] | str:
        with self._lock:
            reply = self._replies[(job_id, request)]
        try:
            return reply.get(timeout=FILE_REPLY_TIMEOUT_S)
        except queue.Empty:
            return "the server did not write the files in time"
        finally:
            with self._lock:
                self._replies.pop((job_id, request), None)

    def _expect_reply(self, job_id: str, request: int) -> None:
        with self._lock:
            self._replies[(job_id, request)] = queue.Queue(maxsize=1)


class _StreamedOutputs:
    """An output store that hands files to the server through the job's stream."""

    def __init__(
        self, worker: GraphWorker, job_id: str, items: queue.Queue[Item], token: CancelToken
    ) -> None:
        self._worker, self._job_id, self._items, self._token = worker, job_id, items, token
        self._requests = 0

    def save_numbered(
        self, subfolder: str, stem: str, suffix: str, files: list[bytes]
    ) -> list[str]:
        self._requests += 1
        request = self._requests
        self._worker._expect_reply(self._job_id, request)
        self._items.put(("files", request, subfolder, stem, suffix, files))
        names = self._worker._await_reply(self._job_id, request, self._token)
        if isinstance(names, str):
            raise OSError(f"the server could not write the output files: {names}")
        return names


def _portable(event: Event) -> Event:
    """The event as it can cross to the server: a preview becomes JPEG bytes here."""
    if isinstance(event, Progress) and event.preview is not None:
        return event.model_copy(update={"preview": encode_preview(event.preview)})
    return event
