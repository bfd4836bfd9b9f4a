"""A node for the Ray tests that runs until the test lets it finish, across processes."""

from __future__ import annotations

import time
from pathlib import Path

from engine.context import RunContext
from engine.node import Node, Outputs, node


@node("WaitForFile", category="test/slow", output_node=True, volatile=True)
class WaitForFile(Node):
    """Reports a first step, then waits (checking for cancellation) until `path` exists.

    A Ray worker is another process, so the gate is a file: a job on it is surely still running
    when the test kills its worker, and finishes as soon as the test creates the file.
    """

    path: str = ""

    def run(self, ctx: RunContext) -> Outputs:
        ctx.progress(0, 1)
        while not Path(self.path).exists():
            ctx.check_cancelled()
            time.sleep(0.02)
        ctx.progress(1, 1)
        return Outputs(ui={"text": [self.path]})
