from __future__ import annotations

import pytest

from engine.config import Paths
from engine.executor import Executor
from engine.registry import Registry
from tests.engine import testing_nodes


@pytest.fixture
def registry() -> Registry:
    return testing_nodes.testing_registry()


@pytest.fixture
def paths(tmp_path) -> Paths:
    return Paths.resolve(
        models=tmp_path / "models", input=tmp_path / "input", output=tmp_path / "output"
    )


@pytest.fixture
def executor(registry: Registry, paths: Paths) -> Executor:
    testing_nodes.RUNS.clear()
    testing_nodes.STEP_REACHED.clear()
    return Executor(registry, paths=paths)


def chain_graph(value: int = 2, factor: float = 1.5, style: str = "fixed") -> dict:
    """a, b → sum → scale → fmt → show, plus an independent branch c → showc."""
    return {
        "nodes": {
            "a": {"type": "Constant", "inputs": {"value": value}},
            "b": {"type": "Constant", "inputs": {"value": 3}},
            "sum": {"type": "Add", "links": {"a": "a.value", "b": "b.value"}},
            "scale": {"type": "Scale", "inputs": {"factor": factor}, "links": {"x": "sum.value"}},
            "fmt": {
                "type": "Format",
                "inputs": {"style": style},
                "links": {"value": "scale.value"},
            },
            "show": {"type": "Show", "links": {"text": "fmt.text"}},
            "c": {"type": "Constant", "inputs": {"value": 10}},
            "showc": {"type": "ShowInt", "links": {"value": "c.value"}},
        }
    }
