"""Property-based fuzzing of `latentgraph validate` and `run`: graph files and `--set` values.

The contract: exit code 0 or 2, never an exception escaping `main`; an exit 2 prints
structured errors (code and message, with the node and input where there is one).
"""

from __future__ import annotations

import contextlib
import io
import json
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.registry import default_registry
from latentgraph_cli.main import main

FUZZ = settings(
    max_examples=500,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
NODE_TYPES = sorted(spec.type for spec in default_registry().specs())
INPUT_NAMES = sorted({i.name for spec in default_registry().specs() for i in spec.inputs})

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
node_ids = st.sampled_from(["a", "b", "c", "show", "save"]) | st.text(max_size=12)
links = st.builds(
    lambda n, o: f"{n}.{o}", node_ids, st.sampled_from(["text", "value", "image", "x"])
) | st.text(max_size=12)
node_entries = st.fixed_dictionaries(
    {"type": st.sampled_from(NODE_TYPES) | st.text(max_size=10)},
    optional={
        "inputs": st.dictionaries(
            st.sampled_from(INPUT_NAMES) | st.text(max_size=8), json_values, max_size=4
        )
        | json_values,
        "links": st.dictionaries(st.sampled_from(INPUT_NAMES), links, max_size=3) | json_values,
        "extra": json_values,
    },
)
graphs = (
    st.fixed_dictionaries(
        {"nodes": st.dictionaries(node_ids, node_entries, max_size=5) | json_values},
        optional={
            "version": st.sampled_from([1, 2, "1", None]),
            "outputs": st.lists(node_ids, max_size=3) | json_values,
            "editor": json_values,
        },
    )
    | json_values
)


def _encodings(text: str) -> st.SearchStrategy[bytes]:
    return st.sampled_from(
        [
            text.encode(),
            text.encode("utf-16"),
            text.encode("utf-16-le"),
            b"\xef\xbb\xbf" + text.encode(),
            text.encode("utf-8")[: max(1, len(text) // 2)],
            text.encode("latin-1", "replace"),
        ]
    )


raw_documents = graphs.flatmap(lambda g: _encodings(json.dumps(g))) | st.binary(max_size=200)


@pytest.fixture(scope="module")
def folder() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="latentgraph-fuzz-") as name:
        yield Path(name)


@pytest.fixture(autouse=True)
def _keep_sigterm() -> Iterator[None]:
    handler = signal.getsignal(signal.SIGTERM)
    yield
    signal.signal(signal.SIGTERM, handler)


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def check_contract(code: int, out: str, err: str) -> None:
    assert "Traceback" not in out + err
    assert code in (0, 2), (code, out, err)
    if code == 2 and out.strip():
        report = json.loads(out)
        assert report["type"] == "invalid_graph" and report["errors"]
        for error in report["errors"]:
            assert error["code"] and error["message"]


def write(folder: Path, data: bytes) -> str:
    path = folder / "graph.json"
    path.write_bytes(data)
    return str(path)


@FUZZ
@given(data=raw_documents)
def test_validate_never_crashes_on_any_bytes(folder: Path, data: bytes) -> None:
    check_contract(*run_cli(["validate", write(folder, data), "--json", "--input", str(folder)]))


@FUZZ
@given(document=graphs)
def test_validate_reports_every_malformed_graph_with_structured_errors(
    folder: Path, document: Any
) -> None:
    path = write(folder, json.dumps(document).encode())
    code, out, err = run_cli(["validate", path, "--json", "--input", str(folder)])
    check_contract(code, out, err)
    nodes = document.get("nodes") if isinstance(document, dict) else None
    if code == 2 and isinstance(nodes, dict):
        for error in json.loads(out)["errors"]:
            # Every error names a node of the graph, or says where else it is.
            if error["node_id"] is not None and error["code"] != "unknown_output_node":
                assert error["node_id"] in nodes, error


RUNNABLE = {
    "nodes": {
        "greeting": {"type": "Text", "inputs": {"text": "hello"}},
        "n": {"type": "Int", "inputs": {"value": 1}},
        "show": {"type": "ShowText", "links": {"text": "greeting.text"}},
    }
}
set_targets = st.sampled_from(
    ["greeting.text", "n.value", "show.text", "greeting", "x.y", ""]
) | st.text(max_size=10)
set_values = (
    st.text(max_size=40)
    | json_values.map(json.dumps)
    | st.sampled_from(
        ["9" * 5000, "[" * 500, '{"a":1,"a":2}', "NaN", "1e999", '"\\ud800"', "\x00", "-0"]
    )
)


@settings(FUZZ, max_examples=250)
@given(overrides=st.lists(st.tuples(set_targets, set_values), max_size=3))
def test_run_with_any_set_values_exits_0_or_2(
    folder: Path, overrides: list[tuple[str, str]]
) -> None:
    path = write(folder, json.dumps(RUNNABLE).encode())
    argv = ["run", path, "--json", "--out", str(folder / "out"), "--input", str(folder)]
    for target, value in overrides:
        argv += ["--set", f"{target}={value}"]
    check_contract(*run_cli(argv))
