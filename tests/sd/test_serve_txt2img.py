"""End to end: `latentgraph serve` runs txt2img on the tiny models for a websocket client."""

from __future__ import annotations

import asyncio
import copy
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from nodes.sd.tiny_models import TinyModels

ROOT = Path(__file__).resolve().parents[2]
STEPS = 3


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def served(tiny_models: TinyModels, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    port = free_port()
    output = tmp_path / "output"
    process = subprocess.Popen(
        [sys.executable, "-m", "latentgraph_cli", "serve", "--port", str(port),
         "--models", str(tiny_models.models_dir), "--input", str(tmp_path / "input"),
         "--output", str(output)],
        cwd=ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1"},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"{url}/api/v1/system", timeout=2).close()
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise AssertionError(
                    process.stderr.read().decode() if process.stderr else "no server"
                ) from None
            time.sleep(0.2)
    try:
        yield url, output
    finally:
        process.terminate()
        process.wait(30)


def small_txt2img() -> dict:
    graph = copy.deepcopy(json.loads((ROOT / "graphs" / "txt2img.json").read_text()))
    graph["nodes"]["latent"]["inputs"].update(width=64, height=64)
    graph["nodes"]["sampler"]["inputs"].update(steps=STEPS)
    return graph


async def follow_job(url: str, graph: dict) -> tuple[list[dict], int, bytes]:
    """Submit over HTTP, follow over the websocket; returns the job's messages, preview count, PNG."""
    messages: list[dict] = []
    previews = 0
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(f"{url}/ws", params={"client_id": "e2e"}) as ws:
            async with http.post(
                f"{url}/api/v1/jobs", json={"graph": graph, "client_id": "e2e"}
            ) as r:
                assert r.status == 201, await r.text()
                job_id = (await r.json())["job_id"]
            async for frame in ws:
                if frame.type == aiohttp.WSMsgType.BINARY:
                    previews += 1
                    continue
                message = frame.json()
                if message["data"].get("job_id") != job_id:
                    continue
                messages.append(message)
                if message["type"] in ("job_finished", "job_failed", "job_interrupted"):
                    break
        saved = next(
            m for m in messages if m["type"] == "node_finished" and m["data"]["node_id"] == "save"
        )
        image = saved["data"]["output"]["images"][0]
        async with http.get(
            f"{url}{image['url']}" if image["url"].startswith("/") else image["url"]
        ) as r:
            assert r.status == 200
            png = await r.read()
    return messages, previews, png


def test_txt2img_over_the_websocket(served: tuple[str, Path], tmp_path: Path) -> None:
    url, output = served
    messages, previews, png = asyncio.run(follow_job(url, small_txt2img()))
    kinds = [m["type"] for m in messages]
    assert kinds[-1] == "job_finished", messages[-1]
    assert kinds.index("job_started") < kinds.index("node_started") < kinds.index("job_finished")
    steps = [m["data"]["value"] for m in messages if m["type"] == "progress"]
    assert steps == list(range(1, STEPS + 1))
    assert previews >= 1  # latent previews arrive as binary frames
    seqs = [m["data"]["seq"] for m in messages]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert png == (output / "txt2img_00001.png").read_bytes()

    # The same graph again: everything is cached and nothing runs.
    messages, _, _ = asyncio.run(follow_job(url, small_txt2img()))
    assert [m for m in messages if m["type"] == "node_started"] == []

    # The example client submits the graph, follows it and saves the image.
    graph_file = tmp_path / "t2i.json"
    graph = small_txt2img()
    graph["nodes"]["sampler"]["inputs"]["seed"] = 99
    graph_file.write_text(json.dumps(graph))
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "client.py"), str(graph_file), "--server", url,
         "--out", str(tmp_path / "client")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert list((tmp_path / "client").glob("*.png"))
