"""Sweeps: combinations, the expanded plan sharing unchanged nodes, the CLI's --sweep and --zip."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.builder import Graph
from engine.errors import GraphValidationError
from engine.executor import Executor
from engine.sweep import combinations, parse_values
from tests.engine import testing_nodes
from tests.engine.conftest import chain_graph
from tests.engine.test_cli import cli, write

RUNS = testing_nodes.RUNS


def test_product_and_zip_give_the_right_combinations() -> None:
    values = {"a.value": [1, 2], "fmt.style": ["plain", "fixed"]}
    assert combinations(values, "product") == [
        {"a.value": 1, "fmt.style": "plain"},
        {"a.value": 1, "fmt.style": "fixed"},
        {"a.value": 2, "fmt.style": "plain"},
        {"a.value": 2, "fmt.style": "fixed"},
    ]
    assert combinations(values, "zip") == [
        {"a.value": 1, "fmt.style": "plain"},
        {"a.value": 2, "fmt.style": "fixed"},
    ]
    with pytest.raises(
        GraphValidationError, match=r"same number of values per input \(a.value: 2, b.x: 3\)"
    ):
        combinations({"a.value": [1, 2], "b.x": [1, 2, 3]}, "zip")
    with pytest.raises(GraphValidationError, match="has 1089 combinations; at most 1024"):
        combinations({"a.value": list(range(33)), "b.x": list(range(33))}, "product")


def test_sweep_values_parse_as_json_or_text_or_lines_of_a_file(tmp_path: Path) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a fox, in snow\n\na cat\n")
    assert parse_values("1,2,3") == [1, 2, 3]
    assert parse_values("euler,heun") == ["euler", "heun"]
    assert parse_values('["a, b", 2]') == ["a, b", 2]
    assert parse_values(f"@{prompts}") == ["a fox, in snow", "a cat"]


def test_a_sweep_runs_only_what_changes_once_per_combination(executor: Executor) -> None:
    graph = chain_graph()
    graph["sweep"] = {"values": {"scale.factor": [1.0, 2.0, 3.0]}}
    result = executor.run(graph)
    assert result.status == "finished"
    # a, b, sum, c, showc are shared; scale → fmt → show runs once per factor.
    assert RUNS == {"Constant": 3, "Add": 1, "Scale": 3, "Format": 3, "Show": 3, "ShowInt": 1}
    assert result.ui == {
        "showc": {"value": [10]},
        "show-1": {"text": ["5.00"]},
        "show-2": {"text": ["10.00"]},
        "show-3": {"text": ["15.00"]},
    }


def test_product_and_zip_sweeps_produce_those_combinations(executor: Executor) -> None:
    graph = chain_graph()
    graph["sweep"] = {"values": {"a.value": [1, 2], "scale.factor": [1.0, 10.0]}}
    product = executor.run(graph).ui
    assert sorted(v["text"][0] for k, v in product.items() if k.startswith("show-")) == sorted(
        ["4.00", "40.00", "5.00", "50.00"]
    )
    graph["sweep"]["mode"] = "zip"
    zipped = executor.run(graph).ui
    assert [v["text"][0] for k, v in zipped.items() if k.startswith("show-")] == ["4.00", "50.00"]


def test_sweeping_a_missing_node_is_a_validation_error(executor: Executor) -> None:
    graph = chain_graph()
    graph["sweep"] = {"values": {"nope.value": [1]}}
    with pytest.raises(GraphValidationError, match=r"sweep 'nope\.value': the graph has no node"):
        executor.run(graph)
    graph["sweep"] = {"values": {"scale.nope": [1]}}
    with pytest.raises(
        GraphValidationError, match=r"Scale has no input 'nope' \(inputs: x, factor\)"
    ):
        executor.run(graph)
    graph["sweep"] = {"values": {"scale.factor": [1.0, 99.0]}}
    with pytest.raises(GraphValidationError) as bad_value:
        executor.run(graph)
    assert bad_value.value.errors[0].node_id == "scale-2"
    assert bad_value.value.errors[0].code == "value_out_of_range"


def test_python_sweep_reads_each_combination(executor: Executor, registry) -> None:  # type: ignore[no-untyped-def]
    g = Graph(registry)
    a = g.add("Constant", value=2)
    b = g.add("Constant", value=3)
    total = g.add("Add", a=a.value, b=b.value)
    g.add("ShowInt", value=total.value)
    g.sweep(a, value=[1, 5])
    g.sweep(b, value=[10, 20])
    g.sweep_mode = "zip"
    results = g.run(executor, fetch=[total])
    assert [(v.sweep_values, v.value(total.value)) for v in results.combinations] == [
        ({"constant.value": 1, "constant_2.value": 10}, 11),
        ({"constant.value": 5, "constant_2.value": 20}, 25),
    ]
    assert json.loads(g.to_json())["sweep"]["mode"] == "zip"


def test_cli_sweep_product_and_zip(tmp_path: Path) -> None:
    graph = write(tmp_path, chain_graph())
    (tmp_path / "styles.txt").write_text("plain\nfixed\n")  # one text value per line
    sweeps = ["--sweep", "a.value=1,2", "--sweep", "fmt.style=@styles.txt"]
    product = cli("run", graph, *sweeps, cwd=tmp_path)
    assert product.returncode == 0, product.stderr
    assert product.stdout.splitlines() == [
        "showc: value = 10",
        "show-1: text = 6.0",
        "show-2: text = 6.00",
        "show-3: text = 7.5",
        "show-4: text = 7.50",
    ]
    zipped = cli("run", graph, *sweeps, "--zip", cwd=tmp_path)
    assert zipped.stdout.splitlines() == [
        "showc: value = 10",
        "show-1: text = 6.0",
        "show-2: text = 7.50",
    ]
    bad = cli("run", graph, "--sweep", "a.value", cwd=tmp_path)
    assert bad.returncode == 2 and "expected NODE.INPUT=V1,V2" in bad.stderr
    missing = cli("run", graph, "--sweep", "fmt.style=@nope.txt", cwd=tmp_path)
    assert missing.returncode == 2 and "No such file" in missing.stderr


def test_the_progress_bar_counts_nodes_a_duplicate_took_from_this_run(executor: Executor) -> None:
    from engine.progress import TerminalProgress

    graph = chain_graph()
    graph["sweep"] = {"values": {"fmt.loud": [False, False]}}  # two identical combinations
    with TerminalProgress() as progress:
        result = executor.run(graph, on_event=progress.on_event)
        assert progress._nodes is not None
        assert progress._nodes.n == progress._nodes.total == 10
    assert result.executed == ["a", "b", "sum", "scale", "c", "showc", "fmt-1", "show-1"]


@pytest.mark.parametrize("mode", ["product", "zip"])
def test_a_sweep_over_no_inputs_is_a_validation_error(executor: Executor, mode: str) -> None:
    # Found by the API fuzzer: an empty `values` crashed the expansion with a ValueError.
    graph = chain_graph()
    graph["sweep"] = {"values": {}, "mode": mode}
    with pytest.raises(GraphValidationError) as empty:
        executor.validate(graph)
    assert empty.value.errors[0].code == "invalid_graph"
