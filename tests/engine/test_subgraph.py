"""Subgraphs: used as nodes by file or embedded, checked like nodes, inlined, shared, and listed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from engine.builder import Graph, GraphBuildError
from engine.errors import ErrorCode, GraphValidationError
from engine.executor import Executor
from engine.registry import Registry
from engine.subgraph import SUBGRAPHS_ENV, list_subgraphs
from tests.engine import testing_nodes
from tests.engine.test_cli import cli, write

RUNS = testing_nodes.RUNS

SCALED_TEXT: dict[str, Any] = {
    "interface": {
        "description": "x · factor, formatted with two decimals.",
        "inputs": {"x": {"type": "FLOAT"}, "factor": {"type": "FLOAT", "default": 2.0}},
        "outputs": {
            "text": {"type": "STRING", "source": "fmt.text"},
            "value": {"type": "FLOAT", "source": "scale.value"},
        },
    },
    "nodes": {
        "scale": {"type": "Scale", "links": {"x": "inputs.x", "factor": "inputs.factor"}},
        "fmt": {"type": "Format", "inputs": {"style": "fixed"}, "links": {"value": "scale.value"}},
    },
}


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A subgraphs folder holding scaled_text.json."""
    folder = tmp_path / "subgraphs"
    folder.mkdir()
    (folder / "scaled_text.json").write_text(json.dumps(SCALED_TEXT))
    monkeypatch.setenv(SUBGRAPHS_ENV, str(folder))
    return folder


def uses(*entries: tuple[str, dict[str, Any]], value: int = 3) -> dict[str, Any]:
    nodes: dict[str, Any] = {"a": {"type": "Constant", "inputs": {"value": value}}}
    for node_id, entry in entries:
        nodes[node_id] = entry
    return {"nodes": nodes}


def use(reference: Any = "scaled_text.json", **fields: Any) -> dict[str, Any]:
    return {"type": "Subgraph", "subgraph": reference, "links": {"x": "a.value"}, **fields}


def show(link: str) -> dict[str, Any]:
    return {"type": "Show", "links": {"text": link}}


def test_a_subgraph_used_twice_with_the_same_inputs_runs_its_nodes_once(
    executor: Executor, folder: Path
) -> None:
    graph = uses(
        ("one", use()),
        ("two", use()),
        ("three", use(inputs={"factor": 3.0})),
        ("show1", show("one.text")),
        ("show2", show("two.text")),
        ("show3", show("three.text")),
    )
    result = executor.run(graph)
    assert result.status == "finished", result.error
    assert result.ui == {
        "show1": {"text": ["6.00"]},
        "show2": {"text": ["6.00"]},
        "show3": {"text": ["9.00"]},
    }
    # Counted in the nodes themselves: `two` shares every inner node of `one`.
    assert RUNS == {"Constant": 1, "Scale": 2, "Format": 2, "Show": 2}
    assert "one/scale" in result.executed and "two/scale" not in result.executed


def test_embedded_and_nested_subgraphs(executor: Executor, folder: Path) -> None:
    twice = {
        "interface": {
            "inputs": {"x": {"type": "FLOAT"}},
            "outputs": {"text": {"type": "STRING", "source": "second.text"}},
        },
        "nodes": {
            "first": {
                "type": "Subgraph",
                "subgraph": "scaled_text.json",
                "links": {"x": "inputs.x"},
            },
            "second": {
                "type": "Subgraph",
                "subgraph": "scaled_text.json",
                "links": {"x": "first.value"},
            },
        },
    }
    result = executor.run(uses(("quad", use(twice)), ("out", show("quad.text"))))
    assert result.ui == {"out": {"text": ["12.00"]}}
    assert result.executed == [
        "a",
        "quad/first/scale",
        "quad/second/scale",
        "quad/second/fmt",
        "out",
    ]


def test_errors_inside_a_subgraph_name_the_path(executor: Executor, folder: Path) -> None:
    broken = json.loads(json.dumps(SCALED_TEXT))
    broken["nodes"]["fmt"]["inputs"]["style"] = "bogus"
    with pytest.raises(GraphValidationError) as invalid:
        executor.run(uses(("one", use(broken)), ("out", show("one.text"))))
    (error,) = invalid.value.errors
    assert (error.node_id, error.input, error.code) == ("one/fmt", "style", "value_not_in_choices")
    assert error.render().startswith("one/fmt.style: 'bogus' is not one of")

    # A value given to the outer node is checked as the inner input it reaches.
    with pytest.raises(GraphValidationError) as out_of_range:
        executor.run(uses(("one", use(inputs={"factor": 99.0})), ("out", show("one.text"))))
    assert [e.render() for e in out_of_range.value.errors] == [
        "one/scale.factor: 99.0 is out of range (must be >= 0.0 and <= 10.0) [value_out_of_range]"
    ]

    failing = {
        "interface": {
            "inputs": {"n": {"type": "INT"}},
            "outputs": {"value": {"type": "INT", "source": "fail.value"}},
        },
        "nodes": {"fail": {"type": "Fail", "links": {"x": "inputs.n"}}},
    }
    graph = uses(
        ("use", {"type": "Subgraph", "subgraph": failing, "links": {"n": "a.value"}}),
        ("out", {"type": "ShowInt", "links": {"value": "use.value"}}),
    )
    result = executor.run(graph)
    assert result.status == "failed" and result.error is not None
    assert (result.error.node_id, result.error.node_type) == ("use/fail", "Fail")
    ran = cli("run", write(folder.parent, graph), cwd=folder.parent)
    assert ran.returncode == 1 and "node use/fail (Fail) failed: RuntimeError: boom" in ran.stderr


def test_a_subgraph_with_a_missing_or_mistyped_port_fails_validation(
    executor: Executor, folder: Path
) -> None:
    def errors(graph: dict[str, Any]) -> list[tuple[str | None, str | None, str]]:
        with pytest.raises(GraphValidationError) as invalid:
            executor.run(graph)
        return [(e.node_id, e.input, e.code.value) for e in invalid.value.errors]

    assert errors(uses(("one", use(links={})), ("out", show("one.text")))) == [
        ("one", "x", "missing_input")
    ]
    assert errors(
        uses(("one", use()), ("two", use(links={"x": "one.text"})), ("out", show("two.text")))
    ) == [("two", "x", "type_mismatch")]
    assert errors(uses(("one", use()), ("out", show("one.nope")))) == [
        ("out", "text", "link_to_missing_output")
    ]
    mistyped = json.loads(json.dumps(SCALED_TEXT))
    mistyped["nodes"]["scale"]["links"]["x"] = "inputs.nope"
    assert errors(uses(("one", use(mistyped)), ("out", show("one.text")))) == [
        ("one/scale", "x", "link_to_missing_output")
    ]
    mistyped["nodes"]["scale"]["links"]["x"] = "inputs.x"
    mistyped["interface"]["outputs"]["text"]["type"] = "INT"
    assert errors(uses(("one", use(mistyped)), ("out", show("one.text")))) == [
        ("one", None, "type_mismatch"),  # the declared INT output is fmt.text, a STRING
        ("out", "text", "type_mismatch"),  # and Show takes a STRING, not the declared INT
    ]
    assert errors(uses(("one", use("missing.json")), ("out", show("one.text")))) == [
        ("one", "subgraph", "invalid_graph")
    ]


def test_progress_inside_a_subgraph_is_reported_under_the_outer_node(
    executor: Executor, folder: Path
) -> None:
    slow = {
        "interface": {
            "inputs": {"x": {"type": "INT"}},
            "outputs": {"value": {"type": "INT", "source": "slow.value"}},
        },
        "nodes": {
            "slow": {
                "type": "SlowSteps",
                "inputs": {"steps": 2, "delay": 0.0},
                "links": {"x": "inputs.x"},
            }
        },
    }
    events: list[Any] = []
    graph = uses(
        ("work", {"type": "Subgraph", "subgraph": slow, "links": {"x": "a.value"}}),
        ("out", {"type": "ShowInt", "links": {"value": "work.value"}}),
    )
    executor.run(graph, on_event=events.append)
    progress = {e.node_id for e in events if e.type == "progress"}
    assert progress == {"work/slow"}
    assert events[0].nodes == ["a", "work/slow", "out"]


def test_the_catalog_lists_the_subgraphs_folder(folder: Path, registry: Registry) -> None:
    (folder / "not_a_subgraph.json").write_text(json.dumps({"nodes": {}}))
    listed = list_subgraphs(registry, folder)
    assert list(listed) == ["scaled_text.json"]
    entry = listed["scaled_text.json"]
    assert (entry["type"], entry["subgraph"], entry["category"]) == (
        "Subgraph",
        "scaled_text.json",
        "subgraphs",
    )
    assert [(i["name"], i["type"], i["required"]) for i in entry["inputs"]] == [
        ("x", "FLOAT", True),
        ("factor", "FLOAT", False),
    ]
    assert [(o["name"], o["type"]) for o in entry["outputs"]] == [
        ("text", "STRING"),
        ("value", "FLOAT"),
    ]
    listing = cli("nodes", cwd=folder.parent)
    assert (
        "scaled_text.json" in listing.stdout and "-> text: STRING, value: FLOAT" in listing.stdout
    )
    catalog = json.loads(cli("nodes", "--json", cwd=folder.parent).stdout)
    assert catalog["subgraphs"]["scaled_text.json"]["outputs"] == entry["outputs"]


def test_a_subgraph_file_next_to_the_graph_runs_from_the_cli(tmp_path: Path) -> None:
    (tmp_path / "scaled_text.json").write_text(json.dumps(SCALED_TEXT))
    graph = write(tmp_path, uses(("one", use()), ("out", show("one.text"))))
    ran = cli("run", graph, cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == "out: text = 6.00"
    assert cli("validate", graph, cwd=tmp_path).stdout.strip() == "ok"


def test_python_api_adds_subgraphs_by_file_and_checks_their_ports(
    executor: Executor, folder: Path, registry: Registry
) -> None:
    g = Graph(registry)
    a = g.add("Constant", value=5)
    scaled = g.add_subgraph("scaled_text.json", x=a.value, factor=1.0)
    assert scaled.id == "scaled_text"
    g.add("Show", text=scaled.text)
    results = g.run(executor, fetch=[scaled])
    assert results.value(scaled.value) == 5.0
    assert results.result.ui == {"show": {"text": ["5.00"]}}
    assert Graph.from_dict(g.to_dict(), registry).to_dict() == g.to_dict()
    with pytest.raises(GraphBuildError) as wrong:
        g.add_subgraph("scaled_text.json", x=scaled.text)
    assert wrong.value.errors[0].code == ErrorCode.TYPE_MISMATCH


def test_a_subgraph_declared_in_python_is_embedded_and_shared(
    executor: Executor, registry: Registry
) -> None:
    inner = Graph(registry)
    x = inner.input("x", "FLOAT")
    factor = inner.input("factor", "FLOAT", default=2.0)
    scale = inner.add("Scale", node_id="scale", x=x, factor=factor)
    inner.output("value", scale.value)
    assert inner.to_dict()["interface"] == {
        "inputs": {"x": {"type": "FLOAT"}, "factor": {"type": "FLOAT", "default": 2.0}},
        "outputs": {"value": {"type": "FLOAT", "source": "scale.value"}},
    }
    assert Graph.from_dict(inner.to_dict(), registry).to_dict() == inner.to_dict()
    outer = Graph(registry)
    a = outer.add("Constant", value=4)
    one = outer.add_subgraph(inner, x=a.value)
    two = outer.add_subgraph(inner, x=a.value)
    total = outer.add("Add", a=a.value, b=a.value)
    outer.add("ShowInt", value=total.value)
    results = outer.run(executor, fetch=[one, two])
    assert (one.id, two.id) == ("subgraph", "subgraph_2")
    assert results.value(one.value) == results.value(two.value) == 8.0
    assert RUNS["Scale"] == 1
