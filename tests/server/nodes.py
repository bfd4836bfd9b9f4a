"""Nodes registered only in the server tests: one that saves a PNG, one with previews, a gate."""

from __future__ import annotations

import threading

from PIL import Image

from engine.config import Paths
from engine.context import RunContext
from engine.node import Input, Node, Outputs, node
from engine.registry import Registry
from tests.engine import testing_nodes

# Gates a test opens to let a Gate node finish; keyed by the node's `name` input.
GATES: dict[str, threading.Event] = {}
# Set when a Gate node starts waiting, so a test knows the job is running.
GATE_REACHED: dict[str, threading.Event] = {}


class IntOut(Outputs):
    value: int


@node("SaveTestImage", category="test/output", output_node=True)
class SaveTestImage(Node):
    """Writes a small PNG whose colour comes from `value`; reports it as SaveImage does."""

    value: int = Input(link_only=True)
    prefix: str = "test"

    def run(self, ctx: RunContext) -> Outputs:
        folder = ctx.paths.output / "tests"
        folder.mkdir(parents=True, exist_ok=True)
        name = f"{self.prefix}_{self.value}.png"
        Image.new("RGB", (8, 8), (self.value % 256, 0, 0)).save(folder / name)
        return Outputs(ui={"images": [{"filename": name, "subfolder": "tests", "type": "output"}]})


@node("PreviewSteps", category="test/slow")
class PreviewSteps(Node):
    """Reports `steps` steps, each with a PIL preview image."""

    x: int = Input(link_only=True)
    steps: int = Input(3, ge=1, le=100)

    def run(self, ctx: RunContext) -> IntOut:
        for step in range(1, self.steps + 1):
            ctx.progress(step, self.steps, preview=Image.new("RGB", (16, 16), (0, step * 20, 0)))
        return IntOut(value=self.x)


@node("Gate", category="test/slow", volatile=True)
class Gate(Node):
    """Waits until the test opens gate `name` (checking for cancellation), then passes x on.

    Volatile with the default fingerprint (a fresh value), so that it runs, and waits, every
    time: a gate served from the cache would let its job finish before the test opens it.
    """

    x: int = Input(link_only=True)
    name: str = "gate"

    def run(self, ctx: RunContext) -> IntOut:
        GATE_REACHED.setdefault(self.name, threading.Event()).set()
        gate = GATES.setdefault(self.name, threading.Event())
        while not gate.wait(0.01):
            ctx.check_cancelled()
        return IntOut(value=self.x)


def _input_files(paths: Paths) -> list[str]:
    return sorted(p.name for p in paths.input.iterdir()) if paths.input.is_dir() else []


@node("PickInput", category="test/io")
class PickInput(Node):
    """Names a file in the input folder; valid only while that file exists."""

    name: str = Input(choices=_input_files)

    def run(self, ctx: RunContext) -> IntOut:
        return IntOut(value=len(self.name))


def server_registry() -> Registry:
    """The engine's test nodes, the built-in primitives (graphs/hello.json) and these."""
    import sys

    from nodes import primitives

    registry = testing_nodes.testing_registry()
    registry.add_module(primitives)
    registry.add_module(sys.modules[__name__])
    return registry
