"""Websocket fan-out latency: one job's progress events to 100 subscribers, on loopback.

Runs two servers in turn, each in its own process, with the same clients in this process:

- baseline: a bare aiohttp app; a thread makes the messages and the loop sends each one to
  every socket in turn (the least a broadcast can do);
- latentgraph: `latentgraph serve` with the engine's test nodes; a SlowSteps job reports the
  same number of progress events at the same interval, and every client subscribes to it by id.

Latency is the time a client reads a progress message minus the event's creation time (the
message's `time`, set where the event is made; same machine, same clock). Prints p50/p99/max
for both and their ratio.

    .venv/bin/python bench/server_fanout.py [--clients 100] [--events 300] [--interval 0.01]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
from aiohttp import web

REPO = Path(__file__).resolve().parents[1]
TERMINAL = {"job_finished", "job_failed", "job_interrupted", "job_cancelled"}
BASELINE_JOB = "0" * 32
RUN_TIMEOUT_S = 120.0


# --- The baseline server (runs in a child process). ---


async def serve_baseline(events: int, interval: float) -> None:
    clients: set[web.WebSocketResponse] = set()
    loop = asyncio.get_running_loop()

    async def websocket(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(compress=False)
        await ws.prepare(request)
        clients.add(ws)
        async for _ in ws:
            pass
        clients.discard(ws)
        return ws

    async def send_all(text: str) -> None:
        for ws in list(clients):
            await ws.send_str(text)

    sending: set[asyncio.Task[None]] = set()

    def broadcast(text: str) -> None:
        task = loop.create_task(send_all(text))
        sending.add(task)
        task.add_done_callback(sending.discard)

    def produce() -> None:
        for seq in range(1, events + 1):
            data = {
                "job_id": BASELINE_JOB,
                "seq": seq,
                "time": time.time(),
                "node_id": "slow",
                "value": seq - 1,
                "max": events - 1,
                "preview": False,
            }
            loop.call_soon_threadsafe(broadcast, json.dumps({"type": "progress", "data": data}))
            time.sleep(interval)
        done = {"type": "job_finished", "data": {"job_id": BASELINE_JOB, "time": time.time()}}
        loop.call_soon_threadsafe(broadcast, json.dumps(done))

    async def start(request: web.Request) -> web.Response:
        threading.Thread(target=produce, daemon=True).start()
        return web.json_response({"started": True})

    app = web.Application()
    app.router.add_get("/ws", websocket)
    app.router.add_post("/start", start)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    print(f"serving on http://127.0.0.1:{runner.addresses[0][1]}", flush=True)
    await asyncio.Event().wait()


# --- Measuring (this process). ---


def start_process(
    command: list[str], env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line.startswith("serving on "):
        process.kill()
        raise RuntimeError(f"server did not start: {line!r}")
    return process, line.split()[2]


async def listen(ws: aiohttp.ClientWebSocketResponse, job_id: str, samples: list[float]) -> None:
    async for message in ws:
        if message.type != aiohttp.WSMsgType.TEXT:
            continue
        received = time.time()
        data = json.loads(message.data)
        if data["type"] == "progress" and data["data"]["job_id"] == job_id:
            samples.append(received - data["data"]["time"])
        elif data["type"] in TERMINAL and data["data"].get("job_id") == job_id:
            return


async def measure(
    url: str,
    clients: int,
    prepare: Callable[[aiohttp.ClientSession], Awaitable[str]],
    subscribe: bool,
    start: Callable[[aiohttp.ClientSession], Awaitable[None]],
) -> list[float]:
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as http:
        job_id = await prepare(http)
        sockets = [await http.ws_connect(f"{url}/ws", compress=0) for _ in range(clients)]
        try:
            if subscribe:
                for ws in sockets:
                    await ws.send_json({"type": "subscribe", "data": {"job_id": job_id}})
                for ws in sockets:  # wait until every client is subscribed
                    while (await ws.receive_json(timeout=30))["type"] != "subscribed":
                        pass
            samples: list[float] = []
            listeners = [asyncio.create_task(listen(ws, job_id, samples)) for ws in sockets]
            await start(http)
            await asyncio.wait_for(asyncio.gather(*listeners), RUN_TIMEOUT_S)
            return samples
        finally:
            for ws in sockets:
                await ws.close()


async def run_baseline(args: argparse.Namespace) -> list[float]:
    command = [
        sys.executable,
        __file__,
        "--serve-baseline",
        "--events",
        str(args.events + 1),
        "--interval",
        str(args.interval),
    ]
    process, url = start_process(command)
    try:

        async def prepare(http: aiohttp.ClientSession) -> str:
            return BASELINE_JOB

        async def start(http: aiohttp.ClientSession) -> None:
            async with http.post(f"{url}/start") as response:
                response.raise_for_status()

        return await measure(url, args.clients, prepare, False, start)
    finally:
        process.kill()
        process.wait()


async def run_latentgraph(args: argparse.Namespace, folder: Path) -> list[float]:
    env = {
        **os.environ,
        "LATENTGRAPH_NODE_MODULES": "tests.engine.testing_nodes",
        "PYTHONPATH": str(REPO),
    }
    command = [sys.executable, "-m", "latentgraph_cli", "serve", "--port", "0"]
    for flag in ("output", "input", "models"):
        command += [f"--{flag}", str(folder / flag)]
    process, url = start_process(command, env)
    blocker: dict[str, str] = {}

    def job(value: int, steps: int, delay: float) -> dict:
        return {
            "graph": {
                "nodes": {
                    "a": {"type": "Constant", "inputs": {"value": value}},
                    "slow": {
                        "type": "SlowSteps",
                        "inputs": {"steps": steps, "delay": delay},
                        "links": {"x": "a.value"},
                    },
                    "out": {"type": "ShowInt", "links": {"value": "slow.value"}},
                }
            }
        }

    try:

        async def prepare(http: aiohttp.ClientSession) -> str:
            # A long job holds the worker while the clients subscribe to the measured one.
            async with http.post(f"{url}/api/v1/jobs", json=job(1, 1000, 0.05)) as response:
                blocker["id"] = (await response.json())["job_id"]
            async with http.post(
                f"{url}/api/v1/jobs", json=job(2, args.events, args.interval)
            ) as response:
                return (await response.json())["job_id"]

        async def start(http: aiohttp.ClientSession) -> None:
            async with http.post(f"{url}/api/v1/jobs/{blocker['id']}/cancel") as response:
                response.raise_for_status()

        return await measure(url, args.clients, prepare, True, start)
    finally:
        process.terminate()
        process.wait(30)


def summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    quantiles = statistics.quantiles(ordered, n=100, method="inclusive")
    return {
        "n": len(ordered),
        "p50_ms": quantiles[49] * 1000,
        "p99_ms": quantiles[98] * 1000,
        "max_ms": ordered[-1] * 1000,
    }


async def bench(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as folder:
        results = {}
        for _ in range(args.repeat):
            for name, run in (("baseline", run_baseline), ("latentgraph", run_latentgraph)):
                samples = await (run(args) if name == "baseline" else run(args, Path(folder)))
                expected = args.clients * (args.events + 1)
                if len(samples) != expected:
                    raise RuntimeError(f"{name}: {len(samples)} samples, expected {expected}")
                results.setdefault(name, []).append(summary(samples))
    print(
        f"fan-out of {args.events + 1} progress events ({args.interval * 1000:.0f} ms apart) "
        f"to {args.clients} websocket clients on loopback; {platform.python_version()}, "
        f"{os.cpu_count()} CPUs"
    )
    print(f"{'server':<12} {'run':>3} {'samples':>8} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for name, runs in results.items():
        for index, result in enumerate(runs, 1):
            print(
                f"{name:<12} {index:>3} {result['n']:>8} {result['p50_ms']:>8.2f} "
                f"{result['p99_ms']:>8.2f} {result['max_ms']:>8.2f}"
            )
    for key in ("p50_ms", "p99_ms"):
        ours = statistics.median(r[key] for r in results["latentgraph"])
        base = statistics.median(r[key] for r in results["baseline"])
        print(
            f"median {key[:3]}: latentgraph {ours:.2f} ms, baseline {base:.2f} ms, "
            f"ratio {ours / base:.2f}x"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--events", type=int, default=300, help="SlowSteps steps (events - 1)")
    parser.add_argument("--interval", type=float, default=0.01, help="seconds between events")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each server")
    parser.add_argument("--serve-baseline", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_baseline:
        asyncio.run(serve_baseline(args.events, args.interval))
    else:
        asyncio.run(bench(args))


if __name__ == "__main__":
    main()
