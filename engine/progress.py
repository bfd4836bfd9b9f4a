"""Progress bars on a terminal, driven by the executor's event stream."""

from __future__ import annotations

import sys
from types import TracebackType
from typing import Any

from tqdm import tqdm

from engine.events import Event, NodeFinished, NodesCached, NodeStarted, Progress, RunStarted


class TerminalProgress:
    """One bar for the nodes of a run and one for the steps of the node running now."""

    def __init__(self) -> None:
        self._nodes: tqdm[Any] | None = None
        self._steps: tqdm[Any] | None = None
        self._names: dict[str, str] = {}
        self._cached: set[str] = set()

    def on_event(self, event: Event) -> None:
        """Update the bars from one executor event."""
        if isinstance(event, RunStarted):
            self._total = len(event.nodes)
        elif isinstance(event, NodesCached):
            cached = len(event.nodes)
            self._cached = set(event.nodes)
            self._nodes = tqdm(
                total=self._total - cached, desc="nodes", unit="node", file=sys.stderr
            )
            if cached:
                self._nodes.write(f"{cached} node(s) cached: {', '.join(event.nodes)}")
        elif isinstance(event, NodeStarted):
            self._names[event.node_id] = event.node_type
            if self._nodes is not None:
                self._nodes.set_postfix_str(f"{event.node_id} ({event.node_type})")
        elif isinstance(event, Progress):
            if self._steps is None or self._steps.total != event.max:
                self._close_steps()
                self._steps = tqdm(
                    total=event.max,
                    desc=f"  {event.node_id}",
                    unit="step",
                    file=sys.stderr,
                    leave=False,
                )
            self._steps.n = event.value
            self._steps.refresh()
        elif isinstance(event, NodeFinished) and (
            not event.cached or event.node_id not in self._cached
        ):
            # A cached finish outside the cached list is a duplicate served by this very run.
            self._close_steps()
            if self._nodes is not None:
                self._nodes.update(1)

    def _close_steps(self) -> None:
        if self._steps is not None:
            self._steps.close()
            self._steps = None

    def __enter__(self) -> TerminalProgress:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the bars and leave the terminal on a clean line (also before a hard stop)."""
        self._close_steps()
        if self._nodes is not None:
            self._nodes.close()
            self._nodes = None
