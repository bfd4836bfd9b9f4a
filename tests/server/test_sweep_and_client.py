"""The Python client against a real server: a plain job, a sweep as one job, an invalid graph."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
import pytest

from engine.builder import Graph
from engine.client import Client
from engine.errors import GraphValidationError
from engine.subgraph import SUBGRAPHS_ENV
from tests.server.harness import API, RunningServer, graph
from tests.server.nodes import server_registry


def test_a_server_sweep_is_one_job_with_a_gap_free_log_and_an_output_per_combination(
    server: RunningServer, tmp_path: Path
) -> None:
    seen: list[dict] = []
    result = Client(server.url).run(
        graph(value=1, steps=2), sweep={"a.value": [1, 2, 3]}, out=tmp_path, on_event=seen.append
    )
    assert result.status == "finished" and seen == result.events
    seqs = [e["data"]["seq"] for e in result.events]
    assert seqs == list(range(1, len(seqs) + 1))
    kinds = [e["type"] for e in result.events]
    assert kinds.count("job_started") == 1 and kinds[-1] == "job_finished"
    assert sorted(result.outputs) == ["out-1", "out-2", "out-3"]
    # The file names carry the combination; each image is its own value + steps.
    names = sorted(item["filename"] for o in result.outputs.values() for item in o["images"])
    assert names == ["test_value1_3.png", "test_value2_4.png", "test_value3_5.png"]
    assert sorted(f.name for f in result.files) == names
    colours = sorted(images[0].getpixel((0, 0))[0] for images in result.images.values())
    assert colours == [3, 4, 5]
    # One job: the server's job list holds exactly it, with the sweep in its stored graph.
    jobs = server.call(lambda: server.services.jobs.page(None, None, 10, 0))[0]
    assert len(jobs) == 1 and jobs[0].graph["sweep"]["values"] == {"a.value": [1, 2, 3]}


def test_the_client_submits_a_built_graph_and_reports_graph_errors(server: RunningServer) -> None:
    g = Graph(server_registry())
    a = g.add("Constant", node_id="a", value=4)
    slow = g.add("SlowSteps", node_id="slow", x=a.value, steps=1, delay=0.0)
    g.add("ShowInt", node_id="out", value=slow.value)
    result = Client(server.url).run(g)
    assert result.outputs == {"out": {"value": [5]}}
    bad = graph()
    bad["nodes"]["slow"]["inputs"]["steps"] = 0
    with pytest.raises(GraphValidationError) as invalid:
        Client(server.url).run(bad)
    assert [(e.node_id, e.input, e.code) for e in invalid.value.errors] == [
        ("slow", "steps", "value_out_of_range")
    ]


SLOW = {
    "interface": {
        "inputs": {"x": {"type": "INT"}, "steps": {"type": "INT", "default": 2}},
        "outputs": {"value": {"type": "INT", "source": "slow.value"}},
    },
    "nodes": {
        "slow": {
            "type": "SlowSteps",
            "inputs": {"delay": 0.0},
            "links": {"x": "inputs.x", "steps": "inputs.steps"},
        }
    },
}


def test_the_server_lists_subgraphs_and_reports_their_progress_under_the_outer_node(
    server: RunningServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "subgraphs"
    folder.mkdir()
    (folder / "slow.json").write_text(json.dumps(SLOW))
    monkeypatch.setenv(SUBGRAPHS_ENV, str(folder))

    async def catalog() -> dict:
        async with aiohttp.ClientSession() as http, http.get(f"{server.url}{API}/nodes") as r:
            return await r.json()

    listed = asyncio.run(catalog())["subgraphs"]["slow.json"]
    assert [i["name"] for i in listed["inputs"]] == ["x", "steps"]
    document = {
        "nodes": {
            "a": {"type": "Constant", "inputs": {"value": 1}},
            "work": {"type": "Subgraph", "subgraph": "slow.json", "links": {"x": "a.value"}},
            "out": {"type": "ShowInt", "links": {"value": "work.value"}},
        }
    }
    result = Client(server.url).run(document)
    assert result.outputs == {"out": {"value": [3]}}
    progress = [e["data"] for e in result.events if e["type"] == "progress"]
    assert {p["node_id"] for p in progress} == {"work/slow"} and len(progress) == 3
    started = [e["data"]["node_id"] for e in result.events if e["type"] == "node_started"]
    assert started == ["a", "work/slow", "out"]
