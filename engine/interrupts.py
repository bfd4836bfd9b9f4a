"""Stopping a command-line run: Ctrl-C asks the run to stop at its next step; a second Ctrl-C, or
SIGTERM after a one-second grace, stops the process at once with a clear line.

The run goes on a worker thread so that the main thread stays free to handle signals even while
a single torch call (one huge convolution, say) runs for minutes: torch releases the GIL, Python
runs signal handlers only on the main thread, and a node cannot be stopped halfway through one
C call any other way than by ending the process.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from engine.context import CancelToken
from engine.events import Event, EventSink, NodeFinished, NodeStarted, TerminalEvent

T = TypeVar("T")
EXIT_STOPPED = 1
TERM_GRACE_S = 1.0
POLL_S = 0.05


class RunInThread:
    """Runs `work(cancel)` on a thread; signals cancel it, and stop the process if it lingers."""

    def __init__(self) -> None:
        self.cancel = CancelToken()
        self.on_stop: Callable[[], None] | None = None  # tidies the terminal before a hard stop
        self._running: dict[str, str] = {}  # node id → node type, of nodes started, not finished
        self._signals = 0
        self._deadline: float | None = None

    def watching(self, sink: EventSink) -> EventSink:
        """An event sink that also tracks the running node, then passes events on to `sink`."""

        def watch(event: Event) -> None:
            if isinstance(event, NodeStarted):
                self._running = {event.node_id: event.node_type}
            elif isinstance(event, NodeFinished | TerminalEvent):
                self._running = {}
            sink(event)

        return watch

    def where(self, node_id: str | None) -> str:
        """ "in node (Type)" for the node the run stopped in, or "between nodes"."""
        if node_id is None:
            return "between nodes"
        kind = self._running.get(node_id)
        return f"in {node_id} ({kind})" if kind else f"in {node_id}"

    def run(self, work: Callable[[CancelToken], T]) -> T:
        """The result of `work`; installs SIGINT/SIGTERM handlers for the time it runs."""
        results: list[T] = []
        errors: list[BaseException] = []

        def target() -> None:
            try:
                results.append(work(self.cancel))
            except BaseException as exc:
                errors.append(exc)

        thread = threading.Thread(target=target, name="latentgraph-run", daemon=True)
        previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
        for signum in previous:
            signal.signal(signum, self._on_signal)
        try:
            thread.start()
            while thread.is_alive():
                thread.join(POLL_S)
                if self._deadline is not None and time.monotonic() >= self._deadline:
                    self._stop_now()
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        if errors:
            raise errors[0]
        return results[0]

    def _on_signal(self, signum: int, _frame: Any) -> None:
        self._signals += 1
        self.cancel.cancel()
        now = time.monotonic()
        if signum == signal.SIGTERM:
            self._deadline = min(self._deadline or now + TERM_GRACE_S, now + TERM_GRACE_S)
        elif self._signals > 1:
            self._deadline = now
        else:
            running = next(iter(self._running), None)
            where = f" ({self.where(running)})" if running else ""
            _say(f"interrupting{where}: stopping at the next step; press Ctrl-C again to stop now")

    def _stop_now(self) -> None:
        if self.on_stop is not None:
            try:
                self.on_stop()
            except Exception:
                pass
        running = next(iter(self._running), None)
        _say(f"stopped {self.where(running)} without waiting for it to finish")
        try:
            sys.stdout.flush()
        except (OSError, ValueError):
            pass
        os._exit(EXIT_STOPPED)


def _say(line: str) -> None:
    try:
        sys.stderr.write(f"\n{line}\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
