"""Executor overhead per node: a chain of 1,000 trivial nodes, cold and cached.

The baseline is the same node `run` methods called in a plain Python loop in the same process,
so the ratio shows what validation, planning, keying, caching and events cost on top.
Run: .venv/bin/python bench/engine_overhead.py
"""

from __future__ import annotations

import platform
import statistics
import time

from engine.config import Paths
from engine.context import CancelToken, RunContext
from engine.executor import Executor
from engine.node import Input, Node, Outputs, node
from engine.registry import Registry

CHAIN = 1000
REPEATS = 5


class IntOut(Outputs):
    value: int


@node("Inc", category="bench")
class Inc(Node):
    """x + 1."""

    x: int = Input(0)

    def run(self, ctx: RunContext) -> IntOut:
        return IntOut(value=self.x + 1)


@node("Sink", category="bench", output_node=True)
class Sink(Node):
    """Reports the final value."""

    x: int = Input(link_only=True)

    def run(self, ctx: RunContext) -> Outputs:
        return Outputs(ui={"value": [self.x]})


def chain_graph(length: int) -> dict:
    nodes: dict = {"n0": {"type": "Inc", "inputs": {"x": 0}}}
    for i in range(1, length):
        nodes[f"n{i}"] = {"type": "Inc", "links": {"x": f"n{i - 1}.value"}}
    nodes["sink"] = {"type": "Sink", "links": {"x": f"n{length - 1}.value"}}
    return {"nodes": nodes}


def baseline(length: int) -> float:
    """The same work with no engine: instantiate each node and call `run` in a loop."""
    ctx = RunContext("bench", "n", Paths.resolve(), CancelToken(), lambda _e: None)
    started = time.perf_counter()
    value = 0
    for _ in range(length):
        n = Inc()
        n.x = value
        value = n.run(ctx).value
    sink = Sink()
    sink.x = value
    sink.run(ctx)
    return time.perf_counter() - started


def main() -> None:
    registry = Registry([Inc, Sink])
    graph = chain_graph(CHAIN)
    nodes = CHAIN + 1
    cold, cached, validate, base = [], [], [], []
    for _ in range(REPEATS):
        executor = Executor(registry, paths=Paths.resolve())
        started = time.perf_counter()
        executor.validate(graph)
        validate.append(time.perf_counter() - started)
        started = time.perf_counter()
        result = executor.run(graph)
        cold.append(time.perf_counter() - started)
        assert result.executed and result.ui["sink"] == {"value": [CHAIN]}
        started = time.perf_counter()
        result = executor.run(graph)
        cached.append(time.perf_counter() - started)
        assert result.executed == []
        base.append(baseline(CHAIN))
    per_node = {
        name: statistics.median(v) / nodes * 1e6
        for name, v in (
            ("baseline", base),
            ("validate", validate),
            ("cold", cold),
            ("cached", cached),
        )
    }
    print(
        f"machine: {platform.machine()} {platform.processor() or ''} python {platform.python_version()}"
    )
    print(f"chain of {CHAIN} trivial nodes, median of {REPEATS} runs, µs per node:")
    print(f"  baseline (plain loop calling run): {per_node['baseline']:8.2f}")
    print(f"  validate only:                     {per_node['validate']:8.2f}")
    print(
        f"  cold run (validate+plan+execute):  {per_node['cold']:8.2f}  "
        f"ratio to baseline {per_node['cold'] / per_node['baseline']:.0f}x"
    )
    print(
        f"  cached run (0 nodes executed):     {per_node['cached']:8.2f}  "
        f"ratio to baseline {per_node['cached'] / per_node['baseline']:.0f}x"
    )


if __name__ == "__main__":
    main()
