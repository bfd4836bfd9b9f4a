"""Executor behaviour: incremental re-execution, cross-graph caching, volatility, errors, interrupts."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import pytest

from engine.config import Paths
from engine.context import CancelToken, RunContext
from engine.errors import GraphValidationError
from engine.executor import Executor
from engine.node import Input, Node, node
from engine.registry import Registry
from tests.engine import testing_nodes
from tests.engine.conftest import chain_graph
from tests.engine.testing_nodes import IntOut, ShowInt

RUNS = testing_nodes.RUNS


def test_first_run_executes_every_planned_node_in_topological_order(executor: Executor) -> None:
    result = executor.run(chain_graph())
    assert result.status == "finished"
    assert result.executed == ["a", "b", "sum", "scale", "fmt", "show", "c", "showc"]
    assert result.ui == {"show": {"text": ["7.50"]}, "showc": {"value": [10]}}


def test_identical_resubmission_executes_zero_nodes(executor: Executor) -> None:
    executor.run(chain_graph())
    RUNS.clear()
    events: list = []
    result = executor.run(chain_graph(), on_event=events.append)
    assert result.executed == []
    assert sum(RUNS.values()) == 0
    assert set(result.cached) == {"a", "b", "sum", "scale", "fmt", "show", "c", "showc"}
    # Cached output nodes still report their UI result.
    assert result.ui["show"] == {"text": ["7.50"]}
    assert [e.type for e in events if e.type == "node_started"] == []


def test_changed_input_reruns_that_node_and_its_descendants_only(executor: Executor) -> None:
    executor.run(chain_graph(factor=1.5))
    RUNS.clear()
    result = executor.run(chain_graph(factor=2.0))
    assert result.executed == ["scale", "fmt", "show"]
    assert result.ui["show"] == {"text": ["10.00"]}
    # What really ran, counted inside the nodes rather than taken from the executor's own list.
    assert RUNS == {"Scale": 1, "Format": 1, "Show": 1}


def test_two_graphs_alternate_without_losing_each_others_cache(executor: Executor) -> None:
    x = chain_graph(value=2)
    y = {
        "nodes": {
            "k": {"type": "Constant", "inputs": {"value": 7}},
            "out": {"type": "ShowInt", "links": {"value": "k.value"}},
        }
    }
    assert executor.run(x).executed
    RUNS.clear()
    assert executor.run(y).executed == ["k", "out"]
    assert RUNS == {"Constant": 1, "ShowInt": 1}
    RUNS.clear()
    assert executor.run(x).executed == []
    assert executor.run(y).executed == []
    assert sum(RUNS.values()) == 0


def test_node_ids_do_not_matter_only_structure(executor: Executor) -> None:
    executor.run(chain_graph())
    renamed = {
        "nodes": {
            "first": {"type": "Constant", "inputs": {"value": 2}},
            "second": {"type": "Constant", "inputs": {"value": 3}},
            "total": {"type": "Add", "links": {"a": "first.value", "b": "second.value"}},
            "print": {"type": "ShowInt", "links": {"value": "total.value"}},
        }
    }
    # Only the new output node runs: its upstream has the same lineage keys as before.
    RUNS.clear()
    assert executor.run(renamed).executed == ["print"]
    assert RUNS == {"ShowInt": 1}


def test_defaults_and_explicit_defaults_share_a_cache_key(executor: Executor) -> None:
    graph = chain_graph()
    executor.run(graph)
    graph["nodes"]["fmt"]["inputs"]["loud"] = False  # the default, now written out
    RUNS.clear()
    assert executor.run(graph).executed == []
    assert sum(RUNS.values()) == 0


def test_structurally_identical_nodes_compute_once(executor: Executor) -> None:
    graph = {
        "nodes": {
            "a1": {"type": "Constant", "inputs": {"value": 4}},
            "a2": {"type": "Constant", "inputs": {"value": 4}},
            "s": {"type": "Add", "links": {"a": "a1.value", "b": "a2.value"}},
            "out": {"type": "ShowInt", "links": {"value": "s.value"}},
        }
    }
    result = executor.run(graph)
    assert RUNS["Constant"] == 1
    assert result.ui["out"] == {"value": [8]}


def test_only_ancestors_of_requested_outputs_are_planned(executor: Executor) -> None:
    graph = chain_graph()
    graph["outputs"] = ["showc"]
    events: list = []
    result = executor.run(graph, on_event=events.append)
    assert result.executed == ["c", "showc"]
    assert events[0].nodes == ["c", "showc"]


def test_volatile_node_follows_its_fingerprint(executor: Executor, tmp_path: Path) -> None:
    source = tmp_path / "note.txt"
    source.write_text("hello")
    graph = {
        "nodes": {
            "read": {"type": "ReadFile", "inputs": {"path": str(source)}},
            "show": {"type": "Show", "links": {"text": "read.text"}},
        }
    }
    assert executor.run(graph).executed == ["read", "show"]
    RUNS.clear()
    assert executor.run(graph).executed == []  # same content, same fingerprint
    assert sum(RUNS.values()) == 0
    source.write_text("changed")
    result = executor.run(graph)
    assert result.executed == ["read", "show"]
    assert RUNS == {"ReadFile": 1, "Show": 1}
    assert result.ui["show"] == {"text": ["changed"]}


def test_volatile_node_without_fingerprint_reruns_every_time(executor: Executor) -> None:
    graph = {
        "nodes": {
            "r": {"type": "Random"},
            "out": {"type": "ShowInt", "links": {"value": "r.value"}},
        }
    }
    assert executor.run(graph).ui["out"] == {"value": [1]}
    assert executor.run(graph).ui["out"] == {"value": [2]}


def test_failing_fingerprint_reruns_the_node_and_its_run_reports_the_error(
    executor: Executor, tmp_path: Path
) -> None:
    graph = {
        "nodes": {
            "read": {"type": "ReadFile", "inputs": {"path": str(tmp_path / "missing.txt")}},
            "show": {"type": "Show", "links": {"text": "read.text"}},
        }
    }
    RUNS.clear()
    result = executor.run(graph)
    assert result.status == "failed"
    assert result.error is not None and result.error.node_id == "read"
    assert result.error.exception_type == "FileNotFoundError"
    # The error comes from the node's own run, not from its fingerprint; and it runs every time.
    assert RUNS["ReadFile"] == 1
    again = executor.run(graph)
    assert again.status == "failed" and again.error is not None
    assert again.error.exception_type == "FileNotFoundError"
    assert RUNS["ReadFile"] == 2


def test_failing_fingerprint_reruns_the_node_every_time_and_says_why(
    executor: Executor, caplog: pytest.LogCaptureFixture
) -> None:
    graph = {
        "nodes": {
            "src": {"type": "UnreadableFingerprint", "inputs": {"value": 4}},
            "out": {"type": "ShowInt", "links": {"value": "src.value"}},
        }
    }
    with caplog.at_level(logging.WARNING, logger="engine.executor"):
        first, second = executor.run(graph), executor.run(graph)
    assert first.executed == second.executed == ["src", "out"]
    assert RUNS["UnreadableFingerprint"] == 2 and RUNS["ShowInt"] == 2
    assert second.ui["out"] == {"value": [4]}
    warnings = [r for r in caplog.records if "fingerprint of src failed" in r.getMessage()]
    assert len(warnings) >= 2 and warnings[0].exc_info is not None


def test_runtime_error_keeps_executor_usable_and_cache_intact(executor: Executor) -> None:
    graph = {
        "nodes": {
            "a": {"type": "Constant", "inputs": {"value": 1}},
            "b": {"type": "Add", "inputs": {"b": 2}, "links": {"a": "a.value"}},
            "bad": {"type": "Fail", "inputs": {"message": "kaput"}, "links": {"x": "b.value"}},
            "out": {"type": "ShowInt", "links": {"value": "bad.value"}},
        }
    }
    events: list = []
    result = executor.run(graph, on_event=events.append)
    assert result.status == "failed"
    error = result.error
    assert error is not None
    assert (error.node_id, error.node_type, error.exception_type, error.message) == (
        "bad",
        "Fail",
        "RuntimeError",
        "kaput",
    )
    assert any("kaput" in line for line in error.traceback)
    assert events[-1].type == "run_failed" and events[-1].executed == ["a", "b"]
    # The executor still works, and what completed before the failure stays cached.
    fixed = {
        "nodes": {
            **{k: v for k, v in graph["nodes"].items() if k in ("a", "b")},
            "out": {"type": "ShowInt", "links": {"value": "b.value"}},
        }
    }
    RUNS.clear()
    result = executor.run(fixed)
    assert result.status == "finished"
    assert result.executed == ["out"]
    assert RUNS == {"ShowInt": 1}
    assert result.ui["out"] == {"value": [3]}


def test_interrupt_in_the_middle_of_a_node(executor: Executor) -> None:
    graph = {
        "nodes": {
            "a": {"type": "Constant", "inputs": {"value": 1}},
            "slow": {
                "type": "SlowSteps",
                "inputs": {"steps": 500, "delay": 0.01},
                "links": {"x": "a.value"},
            },
            "out": {"type": "ShowInt", "links": {"value": "slow.value"}},
        }
    }
    cancel = CancelToken()
    events: list = []
    outcome: dict = {}
    worker = threading.Thread(
        target=lambda: outcome.update(
            result=executor.run(graph, cancel=cancel, on_event=events.append)
        )
    )
    worker.start()
    assert testing_nodes.STEP_REACHED.wait(10)
    started = time.monotonic()
    cancel.cancel()
    worker.join(10)
    assert time.monotonic() - started < 1.0  # stopped within a step, not after 500 of them
    result = outcome["result"]
    assert result.status == "interrupted"
    assert result.interrupted_at == "slow"
    steps = [e.value for e in events if e.type == "progress"]
    assert 0 < len(steps) < 500
    assert events[-1].type == "run_interrupted" and events[-1].node_id == "slow"
    # The executor is usable afterwards, and the node that completed stays cached.
    graph["nodes"]["slow"]["inputs"]["steps"] = 3
    RUNS.clear()
    result = executor.run(graph)
    assert result.status == "finished"
    assert result.executed == ["slow", "out"]
    assert RUNS == {"SlowSteps": 1, "ShowInt": 1}


def test_cancel_before_start_interrupts_between_nodes(executor: Executor) -> None:
    cancel = CancelToken()
    cancel.cancel()
    result = executor.run(chain_graph(), cancel=cancel)
    assert result.status == "interrupted"
    assert result.executed == []


def test_event_order(executor: Executor) -> None:
    graph = {
        "nodes": {
            "a": {"type": "Constant", "inputs": {"value": 1}},
            "slow": {
                "type": "SlowSteps",
                "inputs": {"steps": 2, "delay": 0.0},
                "links": {"x": "a.value"},
            },
            "out": {"type": "ShowInt", "links": {"value": "slow.value"}},
        }
    }
    events: list = []
    executor.run(graph, on_event=events.append)
    trace = [(e.type, getattr(e, "node_id", None)) for e in events]
    assert trace == [
        ("run_started", None),
        ("nodes_cached", None),
        ("node_started", "a"),
        ("node_finished", "a"),
        ("node_started", "slow"),
        ("progress", "slow"),
        ("progress", "slow"),
        ("progress", "slow"),
        ("node_finished", "slow"),
        ("node_started", "out"),
        ("node_finished", "out"),
        ("run_finished", None),
    ]
    assert {e.run_id for e in events} == {events[0].run_id}
    assert [e.value for e in events if e.type == "progress"] == [0, 1, 2]
    # Second time: started, cached (with every node), the cached output's UI, finished.
    events.clear()
    executor.run(graph, on_event=events.append)
    assert [e.type for e in events] == [
        "run_started",
        "nodes_cached",
        "node_finished",
        "run_finished",
    ]
    assert events[1].nodes == ["a", "slow", "out"]
    assert events[2].cached and events[2].ui == {"value": [3]}


def test_independent_branches_run_in_file_order(executor: Executor) -> None:
    graph = chain_graph()
    reordered = {"nodes": dict(reversed(list(graph["nodes"].items())))}
    first = executor.run(graph).executed
    executor.cache.clear()
    second = executor.run(reordered).executed
    assert first == ["a", "b", "sum", "scale", "fmt", "show", "c", "showc"]
    assert second == ["c", "showc", "b", "a", "sum", "scale", "fmt", "show"]


def test_invalid_graph_runs_no_node(executor: Executor) -> None:
    graph = chain_graph()
    graph["nodes"]["scale"]["inputs"]["factor"] = 99
    with pytest.raises(GraphValidationError):
        executor.run(graph)
    assert sum(RUNS.values()) == 0


def test_release_intermediates_drops_what_no_pending_node_reads(registry, paths) -> None:
    executor = Executor(registry, paths=paths, release_intermediates=True)
    result = executor.run(chain_graph())
    assert result.status == "finished"
    # Only the target (output) nodes' entries survive the run.
    assert len(executor.cache) == 2


def test_a_node_version_bump_changes_its_cache_key_and_its_descendants(paths: Paths) -> None:
    """A new version of a node's code must not be served the old version's cached outputs."""

    def registry_with(version: str) -> Registry:
        @node("Versioned", category="test/math", version=version)
        class Versioned(Node):
            """Returns its input; its code changes between versions."""

            value: int = Input(0)

            def run(self, ctx: RunContext) -> IntOut:
                RUNS[f"Versioned {version}"] += 1
                return IntOut(value=self.value)

        registry = Registry()
        registry.add(Versioned)
        registry.add(ShowInt)
        return registry

    graph = {
        "nodes": {
            "v": {"type": "Versioned", "inputs": {"value": 5}},
            "out": {"type": "ShowInt", "links": {"value": "v.value"}},
        }
    }
    old = Executor(registry_with("1.0.0"), paths=paths)
    new = Executor(registry_with("1.1.0"), paths=paths, cache=old.cache)
    same = Executor(registry_with("1.0.0"), paths=paths, cache=old.cache)
    old_keys, new_keys = old.plan(graph).keys, new.plan(graph).keys
    assert old_keys["v"] != new_keys["v"] and old_keys["out"] != new_keys["out"]
    assert same.plan(graph).keys == old_keys  # the key depends on the version, not the class
    assert old.run(graph).executed == ["v", "out"]
    assert same.run(graph).executed == []
    assert new.run(graph).executed == ["v", "out"]
    assert RUNS["Versioned 1.0.0"] == 1 and RUNS["Versioned 1.1.0"] == 1
