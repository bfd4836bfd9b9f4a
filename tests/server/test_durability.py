"""Queue, history and event logs survive a restart; a job cut off by a crash is marked failed."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import aiohttp

from tests.server.conftest import gate
from tests.server.harness import API, Client, RunningServer, gate_graph, graph, submit

REPO = Path(__file__).resolve().parents[2]


async def get_job(http: aiohttp.ClientSession, url: str, job_id: str) -> dict:
    async with http.get(f"{url}{API}/jobs/{job_id}") as response:
        assert response.status == 200
        return await response.json()


def test_restart_keeps_history_pending_jobs_and_event_logs(
    start: Callable[..., RunningServer],
) -> None:
    first = start()
    _, reached = gate("restart")
    state: dict = {}

    async def before() -> None:
        async with aiohttp.ClientSession() as http:
            async with http.ws_connect(f"{first.url}/ws?client_id=ivy") as ws:
                client = Client(ws)
                done = await submit(http, first.url, {"graph": graph(value=4), "client_id": "ivy"})
                await client.until_terminal(done)
                running = await submit(http, first.url, {"graph": gate_graph("restart")})
                await asyncio.to_thread(reached.wait, 10)
                later = [
                    await submit(http, first.url, {"graph": graph(value=v, image=False)})
                    for v in (20, 21)
                ]
                async with http.get(f"{first.url}{API}/jobs/{done}/events") as response:
                    log = (await response.json())["events"]
                state.update(
                    done=done,
                    running=running,
                    later=later,
                    log=log,
                    outputs=(await get_job(http, first.url, done))["outputs"],
                )

        # Graceful stop with a client connected: it is told the server is going away, the
        # running job is interrupted, and the pending ones stay pending.
        async with aiohttp.ClientSession() as http:
            async with http.ws_connect(f"{first.url}/ws") as ws:
                assert (await ws.receive_json(timeout=10))["type"] == "hello"
                await asyncio.to_thread(first.stop)
                while (message := await ws.receive(timeout=10)).type == aiohttp.WSMsgType.TEXT:
                    pass
                assert message.type == aiohttp.WSMsgType.CLOSE
                assert message.data == aiohttp.WSCloseCode.GOING_AWAY

    asyncio.run(before())
    second = start()

    async def after() -> None:
        async with aiohttp.ClientSession() as http:
            finished = await get_job(http, second.url, state["done"])
            assert finished["status"] == "finished"
            assert finished["outputs"] == state["outputs"]
            async with http.get(second.url + finished["outputs"]["out"]["images"][0]["url"]) as r:
                assert r.status == 200
            interrupted = await get_job(http, second.url, state["running"])
            assert interrupted["status"] == "interrupted"
            assert interrupted["interrupted"] == {"node_id": "gate", "reason": "server_shutdown"}
            # The finished job's log replays over the websocket after the restart.
            async with http.ws_connect(f"{second.url}/ws") as ws:
                client = Client(ws)
                await ws.send_json({"type": "subscribe", "data": {"job_id": state["done"]}})
                await client.until_terminal(state["done"])
                assert client.job_events(state["done"]) == state["log"]
                # The pending jobs survived, in order, and now run.
                for job_id in state["later"]:
                    await ws.send_json({"type": "subscribe", "data": {"job_id": job_id}})
                outcomes = [await client.until_terminal(j) for j in state["later"]]
            assert [o["type"] for o in outcomes] == ["job_finished", "job_finished"]
            assert outcomes[0]["data"]["time"] <= outcomes[1]["data"]["time"]
            for job_id in state["later"]:
                events = (await get_job(http, second.url, job_id))["last_seq"]
                async with http.get(f"{second.url}{API}/jobs/{job_id}/events") as response:
                    log = (await response.json())["events"]
                assert [e["data"]["seq"] for e in log] == list(range(1, events + 1))
                assert log[0]["type"] == "job_queued"

    asyncio.run(after())


def test_a_job_running_when_the_process_is_killed_is_marked_failed(
    tmp_path: Path, start: Callable[..., RunningServer]
) -> None:
    env = {
        **os.environ,
        "LATENTGRAPH_NODE_MODULES": "tests.engine.testing_nodes",
        "PYTHONPATH": str(REPO),
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "latentgraph_cli",
            "serve",
            "--port",
            "0",
            "--output",
            str(tmp_path / "output"),
            "--input",
            str(tmp_path / "input"),
            "--models",
            str(tmp_path / "models"),
        ],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("serving on http://127.0.0.1:"), line
        url = line.split()[2]
        state: dict = {}

        async def crash() -> None:
            async with aiohttp.ClientSession() as http:
                async with http.ws_connect(f"{url}/ws?client_id=kim") as ws:
                    client = Client(ws)
                    body = {"graph": graph(steps=1000, delay=0.05, image=False), "client_id": "kim"}
                    state["running"] = await submit(http, url, body)
                    state["pending"] = await submit(
                        http, url, {"graph": graph(value=9, image=False)}
                    )
                    await client.until(lambda m: m["type"] == "progress")
                    process.send_signal(signal.SIGKILL)
                    process.wait(10)
                    state["seen"] = client.job_events(state["running"])

        asyncio.run(crash())
    finally:
        process.kill()
        process.wait(10)
        process.stdout.close()  # type: ignore[union-attr]
    restarted = start()

    async def after() -> None:
        async with aiohttp.ClientSession() as http:
            job = await get_job(http, restarted.url, state["running"])
            assert job["status"] == "failed"
            assert job["error"]["code"] == "server_stopped"
            assert job["executed"] == ["a"]
            async with http.get(f"{restarted.url}{API}/jobs/{state['running']}/events") as r:
                log = (await r.json())["events"]
            # Everything a client saw was logged first; the failure follows it.
            assert log[: len(state["seen"])] == state["seen"]
            assert log[-1]["type"] == "job_failed"
            assert log[-1]["data"]["seq"] == len(log)
            async with http.ws_connect(f"{restarted.url}/ws") as ws:
                client = Client(ws)
                await ws.send_json({"type": "subscribe", "data": {"job_id": state["pending"]}})
                done = await client.until_terminal(state["pending"])
            assert done["type"] == "job_finished"

    asyncio.run(after())
