"""The test nodes themselves: a broken override would quietly change what the tests exercise."""

from __future__ import annotations

import inspect
import logging
import threading
from pathlib import Path

import pytest

from engine.config import Paths
from engine.context import RunContext
from engine.executor import Executor
from engine.node import Node, Outputs
from tests.server import nodes
from tests.server.harness import gate_graph


def test_every_fingerprint_override_has_the_signature_the_executor_calls() -> None:
    expected = list(inspect.signature(Node.fingerprint).parameters)
    for cls in nodes.server_registry():
        assert list(inspect.signature(cls.fingerprint).parameters) == expected, cls.spec.type


def test_a_gate_runs_every_time_without_a_fingerprint_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened = nodes.GATES.setdefault("open", threading.Event())
    opened.set()
    runs: list[str] = []
    original = nodes.Gate.run

    def counted(self: nodes.Gate, ctx: RunContext) -> Outputs:
        runs.append(self.name)
        return original(self, ctx)

    monkeypatch.setattr(nodes.Gate, "run", counted)
    executor = Executor(nodes.server_registry(), paths=Paths.resolve(output=tmp_path))
    with caplog.at_level(logging.WARNING):
        results = [executor.run(gate_graph("open")) for _ in range(2)]
    assert [r.executed for r in results] == [["a", "gate", "out"], ["gate", "out"]]
    assert runs == ["open", "open"]
    assert not [r for r in caplog.records if "fingerprint" in r.getMessage()]
