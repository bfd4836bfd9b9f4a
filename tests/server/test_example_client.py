"""examples/client.py works against a real server, with graphs/hello.json and with an image graph."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.server.harness import RunningServer, graph

REPO = Path(__file__).resolve().parents[2]
CLIENT = REPO / "examples" / "client.py"


def run_client(server: RunningServer, graph_file: Path, out: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(CLIENT), str(graph_file), "--server", server.url, "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_example_client_runs_hello_and_saves_images(server: RunningServer, tmp_path: Path) -> None:
    hello = run_client(server, REPO / "graphs" / "hello.json", tmp_path / "hello")
    assert hello.returncode == 0, hello.stderr
    assert "show: text = " in hello.stdout  # hello.json ends in a ShowText node
    image_graph = tmp_path / "image.json"
    image_graph.write_text(json.dumps(graph(value=5, steps=2)))
    saved = run_client(server, image_graph, tmp_path / "images")
    assert saved.returncode == 0, saved.stderr
    assert (tmp_path / "images" / "test_7.png").read_bytes() == (
        server.paths.output / "tests" / "test_7.png"
    ).read_bytes()
    bad_graph = tmp_path / "bad.json"
    bad_graph.write_text(json.dumps({"nodes": {"x": {"type": "Nope"}}}))
    rejected = run_client(server, bad_graph, tmp_path / "bad")
    assert rejected.returncode == 2
    assert "x: unknown node type 'Nope' [unknown_node_type]" in rejected.stderr
