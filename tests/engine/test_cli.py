"""The `latentgraph` command, run as a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "LATENTGRAPH_NODE_MODULES": "tests.engine.testing_nodes",
    }
    return subprocess.run(
        [sys.executable, "-m", "latentgraph_cli", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def write(tmp_path: Path, document: dict) -> str:
    path = tmp_path / "graph.json"
    path.write_text(json.dumps(document))
    return str(path)


GRAPH = {
    "nodes": {
        "a": {"type": "Constant", "inputs": {"value": 2}},
        "slow": {
            "type": "SlowSteps",
            "inputs": {"steps": 3, "delay": 0.0},
            "links": {"x": "a.value"},
        },
        "out": {"type": "ShowInt", "links": {"value": "slow.value"}},
    }
}


def test_validate_ok(tmp_path: Path) -> None:
    done = cli("validate", write(tmp_path, GRAPH), cwd=tmp_path)
    assert (done.returncode, done.stdout.strip()) == (0, "ok")


def test_validate_names_the_nodes_of_a_cycle(tmp_path: Path) -> None:
    cyclic = {
        "nodes": {
            "p": {"type": "Add", "links": {"a": "q.value"}},
            "q": {"type": "Add", "links": {"a": "p.value"}},
            "out": {"type": "ShowInt", "links": {"value": "q.value"}},
        }
    }
    done = cli("validate", write(tmp_path, cyclic), cwd=tmp_path)
    assert done.returncode == 2
    assert "p → q → p" in done.stderr and "[cycle]" in done.stderr


def test_validate_lists_every_error_with_node_and_input(tmp_path: Path) -> None:
    bad = {
        "nodes": {
            "a": {"type": "Constant", "inputs": {"value": "2"}},
            "out": {"type": "ShowInt", "links": {"value": "b.value"}},
        }
    }
    done = cli("validate", "--json", write(tmp_path, bad), cwd=tmp_path)
    assert done.returncode == 2
    errors = json.loads(done.stdout)["errors"]
    assert {(e["code"], e["node_id"], e["input"]) for e in errors} == {
        ("invalid_type", "a", "value"),
        ("link_to_missing_node", "out", "value"),
    }


def test_validate_reports_bad_json_and_missing_files(tmp_path: Path) -> None:
    (tmp_path / "broken.json").write_text('{"nodes": {')
    done = cli("validate", str(tmp_path / "broken.json"), cwd=tmp_path)
    assert done.returncode == 2 and "not valid JSON" in done.stderr
    done = cli("validate", str(tmp_path / "absent.json"), cwd=tmp_path)
    assert done.returncode == 2 and "cannot read" in done.stderr


def test_run_json_prints_one_event_per_line(tmp_path: Path) -> None:
    done = cli("run", write(tmp_path, GRAPH), "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines()]
    assert [e["type"] for e in events][:3] == ["run_started", "nodes_cached", "node_started"]
    assert events[-1]["type"] == "run_finished"
    assert events[-1]["outputs"] == {"out": {"value": [5]}}
    assert [e["value"] for e in events if e["type"] == "progress"] == [0, 1, 2, 3]


def test_run_with_set_overrides_and_prints_outputs(tmp_path: Path) -> None:
    done = cli(
        "run", write(tmp_path, GRAPH), "--set", "a.value=10", "--set", "slow.steps=1", cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert "out: value = 11" in done.stdout


def test_run_rejects_a_bad_override(tmp_path: Path) -> None:
    done = cli("run", write(tmp_path, GRAPH), "--set", "a.value=oops", cwd=tmp_path)
    assert done.returncode == 2
    assert "a.value: expects INT but got str 'oops'" in done.stderr
    done = cli("run", write(tmp_path, GRAPH), "--set", "nobody.value=1", cwd=tmp_path)
    assert done.returncode == 2 and "no node 'nobody'" in done.stderr


def test_run_failure_exits_non_zero_naming_the_node(tmp_path: Path) -> None:
    failing = {
        "nodes": {
            "a": {"type": "Constant", "inputs": {"value": 2}},
            "bad": {"type": "Fail", "links": {"x": "a.value"}},
            "out": {"type": "ShowInt", "links": {"value": "bad.value"}},
        }
    }
    done = cli("run", write(tmp_path, failing), cwd=tmp_path)
    assert done.returncode == 1
    assert "node bad (Fail) failed: RuntimeError: boom" in done.stderr


def test_nodes_and_schema(tmp_path: Path) -> None:
    listing = cli("nodes", cwd=tmp_path)
    assert listing.returncode == 0 and "SlowSteps" in listing.stdout and "Int" in listing.stdout
    # Each line is "category type (inputs) -> outputs": look the types up by column, since
    # "Int" is also part of "ShowInt" and of the port type "INT".
    columns = {line.split()[1]: line.split()[0] for line in listing.stdout.splitlines() if line}
    assert columns["Int"] == "primitives" and columns["SlowSteps"] == "test/slow"
    catalog = json.loads(cli("nodes", "--json", cwd=tmp_path).stdout)
    assert "Constant" in catalog["nodes"]
    schema = json.loads(cli("schema", cwd=tmp_path).stdout)
    assert schema["title"] == "Latentgraph graph"


@pytest.mark.parametrize("argv", [["--help"], ["run", "--help"]])
def test_help_imports_neither_torch_nor_pydantic(argv: list[str]) -> None:
    probe = (
        "import sys\n"
        "from latentgraph_cli.main import main\n"
        f"try:\n    main({argv!r})\nexcept SystemExit:\n    pass\n"
        "heavy = sorted(m for m in ('torch', 'pydantic', 'diffusers', 'networkx') if m in sys.modules)\n"
        "print(heavy)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, cwd=ROOT
    )
    assert done.stdout.strip().splitlines()[-1] == "[]"
