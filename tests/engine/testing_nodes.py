"""Small nodes registered only in tests: arithmetic, strings, slow, failing and volatile nodes."""

from __future__ import annotations

import hashlib
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Literal

from engine.config import Paths
from engine.context import RunContext
from engine.node import Input, Node, Outputs, node
from engine.registry import Registry

# How many times each node type ran, so tests can tell executions from cache hits.
RUNS: Counter[str] = Counter()
# Set by SlowSteps at its first step, so a test can interrupt it mid-node.
STEP_REACHED = threading.Event()


class IntOut(Outputs):
    value: int


class FloatOut(Outputs):
    value: float


class TextOut(Outputs):
    text: str


@node("Constant", category="test/math")
class Constant(Node):
    """An integer constant."""

    value: int = Input(0, ge=-1000, le=1000)

    def run(self, ctx: RunContext) -> IntOut:
        RUNS["Constant"] += 1
        return IntOut(value=self.value)


@node("Add", category="test/math")
class Add(Node):
    """a + b."""

    a: int = Input(0)
    b: int = Input(0)

    def run(self, ctx: RunContext) -> IntOut:
        RUNS["Add"] += 1
        return IntOut(value=self.a + self.b)


@node("Scale", category="test/math")
class Scale(Node):
    """x · factor, as a float."""

    x: float = Input(link_only=True)
    factor: float = Input(1.0, ge=0.0, le=10.0)

    def run(self, ctx: RunContext) -> FloatOut:
        RUNS["Scale"] += 1
        return FloatOut(value=self.x * self.factor)


@node("Format", category="test/text")
class Format(Node):
    """Formats a number as text, in a chosen style."""

    value: float = Input(link_only=True)
    style: Literal["plain", "fixed"] = "plain"
    loud: bool = False

    def run(self, ctx: RunContext) -> TextOut:
        RUNS["Format"] += 1
        text = f"{self.value:.2f}" if self.style == "fixed" else str(self.value)
        return TextOut(text=text.upper() if self.loud else text)


@node("Show", category="test/output", output_node=True)
class Show(Node):
    """An output node: records the text it was given as its UI result."""

    text: str = Input(link_only=True)

    def run(self, ctx: RunContext) -> Outputs:
        RUNS["Show"] += 1
        return Outputs(ui={"text": [self.text]})


@node("ShowInt", category="test/output", output_node=True)
class ShowInt(Node):
    """An output node for integers."""

    value: int = Input(link_only=True)

    def run(self, ctx: RunContext) -> IntOut:
        RUNS["ShowInt"] += 1
        return IntOut(value=self.value, ui={"value": [self.value]})


@node("SlowSteps", category="test/slow")
class SlowSteps(Node):
    """Counts to `steps`, reporting progress at each step (and so checking for cancellation)."""

    x: int = Input(link_only=True)
    steps: int = Input(5, ge=1, le=1000)
    delay: float = Input(0.01, ge=0.0, le=5.0)

    def run(self, ctx: RunContext) -> IntOut:
        RUNS["SlowSteps"] += 1
        for step in range(self.steps):
            ctx.progress(step, self.steps)
            STEP_REACHED.set()
            time.sleep(self.delay)
        ctx.progress(self.steps, self.steps)
        return IntOut(value=self.x + self.steps)


@node("Fail", category="test/fail")
class Fail(Node):
    """Raises, to test error handling."""

    x: int = Input(link_only=True)
    message: str = "boom"

    def run(self, ctx: RunContext) -> IntOut:
        RUNS["Fail"] += 1
        raise RuntimeError(self.message)


@node("ReadFile", category="test/io", volatile=True)
class ReadFile(Node):
    """Reads a text file; volatile, fingerprinted by the file's content hash."""

    path: str = Input(link_only=False)

    def fingerprint(self, paths: Paths) -> str:
        return hashlib.sha256(Path(self.path).read_bytes()).hexdigest()

    def run(self, ctx: RunContext) -> TextOut:
        RUNS["ReadFile"] += 1
        return TextOut(text=Path(self.path).read_text())


@node("Random", category="test/io", volatile=True)
class Random(Node):
    """Volatile with no fingerprint of its own: it re-runs every time."""

    def run(self, ctx: RunContext) -> IntOut:
        RUNS["Random"] += 1
        return IntOut(value=RUNS["Random"])


@node("UnreadableFingerprint", category="test/io", volatile=True)
class UnreadableFingerprint(Node):
    """Volatile, and its fingerprint always raises: the executor must run it every time."""

    value: int = Input(0)

    def fingerprint(self, paths: Paths) -> str:
        raise OSError("the source cannot be read")

    def run(self, ctx: RunContext) -> IntOut:
        RUNS["UnreadableFingerprint"] += 1
        return IntOut(value=self.value)


# Set by Block when it starts its one long call.
BLOCK_STARTED = threading.Event()


@node("Block", category="test/slow")
class Block(Node):
    """Sleeps in one call that never checks for cancellation, like a model load or a huge step."""

    x: int = Input(link_only=True)
    seconds: float = Input(1.0, ge=0.0, le=600.0)

    def run(self, ctx: RunContext) -> IntOut:
        RUNS["Block"] += 1
        BLOCK_STARTED.set()
        time.sleep(self.seconds)
        return IntOut(value=self.x)


def testing_registry() -> Registry:
    """A registry of only the test nodes."""
    import sys

    registry = Registry()
    registry.add_module(sys.modules[__name__])
    return registry
