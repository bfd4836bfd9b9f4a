"""What a node sees while it runs: progress reporting, cancellation and the run's surroundings."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from engine.config import ComputeOptions, Paths
from engine.events import EventSink, Progress
from engine.outputs import FolderOutputStore, OutputStore

if TYPE_CHECKING:
    from engine.validate import BoundNode


class Interrupted(Exception):
    """Raised inside a run when its cancel token is set."""


class CancelToken:
    """A thread-safe flag that stops a run between nodes, or inside a node at its next step."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        """Ask the run to stop."""
        self._event.set()

    @property
    def cancelled(self) -> bool:
        """Whether `cancel` was called."""
        return self._event.is_set()

    def raise_if_cancelled(self) -> None:
        """Raise `Interrupted` if the run was asked to stop."""
        if self._event.is_set():
            raise Interrupted


@dataclass
class RunContext:
    """Handed to `Node.run`: report progress (which also checks for cancellation) and read paths."""

    run_id: str
    node_id: str
    paths: Paths
    cancel: CancelToken
    emit: EventSink
    # The graph document being run, for nodes that record it (PNG metadata, say).
    graph: dict[str, Any] = field(default_factory=dict)
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("latentgraph.node"))
    # Where files go; None writes straight into `paths.output`.
    outputs: OutputStore | None = None
    # The run's validated nodes (defaults filled in, links resolved), for nodes that describe
    # what lies upstream of them (the generation parameters a saved PNG carries, say).
    nodes: Mapping[str, BoundNode] = field(default_factory=dict)
    # How models run (torch.compile or eager); the executor's, the same for every node.
    compute: ComputeOptions = field(default_factory=ComputeOptions)

    def output_store(self) -> OutputStore:
        """The store that numbers and writes this run's files (SaveImage's PNGs, say)."""
        return self.outputs if self.outputs is not None else FolderOutputStore(self.paths.output)

    def progress(self, value: int, total: int, preview: Any = None) -> None:
        """Report `value` of `total` steps done; raises `Interrupted` if the run was cancelled."""
        self.cancel.raise_if_cancelled()
        self.emit(
            Progress(
                run_id=self.run_id, node_id=self.node_id, value=value, max=total, preview=preview
            )
        )

    def check_cancelled(self) -> None:
        """Raise `Interrupted` if the run was cancelled; long nodes call this at every step."""
        self.cancel.raise_if_cancelled()
