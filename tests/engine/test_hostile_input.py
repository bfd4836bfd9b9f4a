"""Malformed graph files, `--set` values and config files get a structured error and exit 2."""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from latentgraph_cli.main import main

GRAPH = {
    "nodes": {
        "greeting": {"type": "Text", "inputs": {"text": "hello"}},
        "show": {"type": "ShowText", "links": {"text": "greeting.text"}},
    }
}


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LATENTGRAPH_CONFIG", raising=False)
    term = signal.getsignal(signal.SIGTERM)
    yield
    signal.signal(signal.SIGTERM, term)


def cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def errors_of(out: str) -> list[dict]:
    return json.loads(out)["errors"]


DEEP = "[" * 1000 + "]" * 1000
GRAPH_TEXT = json.dumps(GRAPH)
MALFORMED: dict[str, bytes] = {
    "latin-1": GRAPH_TEXT.replace("hello", "caf\u00e9").encode("latin-1"),
    "utf-16 with BOM": GRAPH_TEXT.encode("utf-16"),
    "utf-16 without BOM": GRAPH_TEXT.encode("utf-16-le"),
    "png": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)),
    "deep nesting": ('{"nodes": {}, "editor": ' + DEEP + "}").encode(),
    "nesting past the depth limit": (
        '{"nodes": {}, "editor": ' + "[" * 80 + "]" * 80 + "}"
    ).encode(),
    "huge integer": GRAPH_TEXT.replace('"hello"', "9" * 5000).encode(),
    "huge float": GRAPH_TEXT.replace('"hello"', "1e400").encode(),
    "duplicate keys": b'{"nodes": {}, "nodes": {"a": {"type": "Text"}}}',
    "NaN": GRAPH_TEXT.replace('"hello"', "NaN").encode(),
    "lone surrogate": GRAPH_TEXT.replace("hello", "\\ud800").encode(),
    "empty": b"",
}


@pytest.mark.parametrize("name", list(MALFORMED))
def test_a_malformed_graph_file_is_an_invalid_graph_error(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "graph.json"
    path.write_bytes(MALFORMED[name])
    for command in ("validate", "run"):
        code, out, _ = cli([command, str(path), "--json"], capsys)
        assert code == 2, (command, out)
        errors = errors_of(out)
        assert errors and errors[0]["code"] == "invalid_graph", errors
        assert errors[0]["message"]


def test_a_utf8_byte_order_mark_is_accepted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "graph.json"
    path.write_bytes(b"\xef\xbb\xbf" + GRAPH_TEXT.encode())
    assert cli(["validate", str(path)], capsys)[:2] == (0, "ok\n")


def test_the_error_names_what_is_wrong(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "graph.json"
    path.write_bytes(MALFORMED["png"])
    assert (
        "is a PNG image"
        in errors_of(cli(["validate", str(path), "--json"], capsys)[1])[0]["message"]
    )
    path.write_bytes(MALFORMED["duplicate keys"])
    assert "'nodes' appears twice" in cli(["validate", str(path)], capsys)[2]
    path.write_bytes(MALFORMED["utf-16 with BOM"])
    assert "UTF-16" in cli(["validate", str(path)], capsys)[2]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("9" * 5000, "more than 100 digits"),
        (DEEP, "nested more than"),
        ('{"a": 1, "a": 2}', "appears twice"),
        ("NaN", "not a JSON number"),
        ('"\\udc80"', "lone surrogate"),
    ],
)
def test_a_malformed_set_value_is_reported_with_the_other_errors(
    value: str, expected: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    graph = {"nodes": {**GRAPH["nodes"], "bad": {"type": "NoSuchNode"}}}
    path = tmp_path / "graph.json"
    path.write_text(json.dumps(graph))
    code, out, _ = cli(["run", str(path), "--json", "--set", f"greeting.text={value}"], capsys)
    assert code == 2
    found = {(e["code"], e["node_id"], e["input"]): e["message"] for e in errors_of(out)}
    assert ("unknown_node_type", "bad", None) in found
    messages = [m for (code_, node, name), m in found.items() if node == "greeting"]
    assert messages and expected in messages[0], found


def test_set_errors_do_not_hide_validation_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "graph.json"
    path.write_text(json.dumps({"nodes": {**GRAPH["nodes"], "bad": {"type": "NoSuchNode"}}}))
    code, out, _ = cli(["run", str(path), "--json", "--set", "nobody.x=1", "--set", "oops"], capsys)
    assert code == 2
    codes = [(e["code"], e["node_id"]) for e in errors_of(out)]
    assert ("invalid_graph", "nobody") in codes
    assert ("unknown_node_type", "bad") in codes
    assert len(codes) == 3


def test_one_structural_error_does_not_hide_the_others(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    graph = {
        "nodes": {
            "broken": {"type": "Text", "inputs": 5},
            "bad id!": {"type": "Text"},
            "unknown": {"type": "NoSuchNode"},
            "show": {"type": "ShowText", "links": {"text": "broken.text"}},
            "show2": {"type": "ShowText", "inputs": {"text": "x"}},
        },
        "editor": [],
    }
    path = tmp_path / "graph.json"
    path.write_text(json.dumps(graph))
    code, out, _ = cli(["validate", str(path), "--json"], capsys)
    assert code == 2
    found = {(e["code"], e["node_id"]) for e in errors_of(out)}
    assert ("invalid_graph", "broken") in found
    assert ("invalid_graph", "bad id!") in found
    assert ("invalid_graph", None) in found  # editor
    assert ("unknown_node_type", "unknown") in found
    assert ("link_required", "show2") in found
    # A link to a node whose own structure is broken is not reported a second time.
    assert not any(node == "show" for _, node in found)


def test_an_empty_outputs_list_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "graph.json"
    path.write_text(json.dumps({**GRAPH, "outputs": []}))
    code, out, _ = cli(["run", str(path), "--json"], capsys)
    assert code == 2
    assert errors_of(out)[0]["code"] == "no_output_node"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"{\xff}", "not UTF-8"),
        (b"[1, 2]", "must hold a JSON object"),
        (b'{"models": 5}', "must be a folder path"),
        (b'{"modles": "x"}', "unknown key 'modles'"),
        (b'{"models": "a", "models": "b"}', "appears twice"),
        (b"[" * 2000 + b"]" * 2000, "nested more than"),
    ],
)
def test_a_malformed_config_file_is_a_config_error(
    content: bytes,
    expected: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "latentgraph.json").write_bytes(content)
    (tmp_path / "graph.json").write_text(GRAPH_TEXT)
    code, _, err = cli(["validate", "graph.json"], capsys)
    assert code == 2
    assert err.startswith("config error:") and expected in err, err


def test_a_missing_config_file_named_by_the_environment_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LATENTGRAPH_CONFIG", str(tmp_path / "nowhere.json"))
    (tmp_path / "graph.json").write_text(GRAPH_TEXT)
    code, _, err = cli(["validate", "graph.json"], capsys)
    assert code == 2 and "nowhere.json does not exist" in err


def test_an_output_folder_that_is_a_file_is_refused_before_running(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "graph.json").write_text(GRAPH_TEXT)
    (tmp_path / "out").write_text("not a folder")
    code, _, err = cli(["run", "graph.json", "--out", "out"], capsys)
    assert code == 2 and "is a file" in err


def test_a_config_error_is_json_with_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LATENTGRAPH_CONFIG", str(tmp_path / "nowhere.json"))
    (tmp_path / "graph.json").write_text(GRAPH_TEXT)
    code, out, _ = cli(["validate", "graph.json", "--json"], capsys)
    assert code == 2 and json.loads(out)["type"] == "invalid_config"


def test_a_malformed_limit_variable_is_a_config_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LATENTGRAPH_MAX_PIXELS", "lots")
    (tmp_path / "graph.json").write_text(GRAPH_TEXT)
    code, _, err = cli(["validate", "graph.json"], capsys)
    assert code == 2 and "LATENTGRAPH_MAX_PIXELS" in err
