"""Ray backend: throughput of tiny jobs on 1 and 2 CPU workers, and the latency it adds per job.

One local Ray on 127.0.0.1 serves three servers in turn, all on the same tiny SD1 checkpoint
(64×64 txt2img, a different seed per job so the sampler, decoder and saver always run):

- in-process: the default backend, with half the cores' torch threads (baseline for latency);
- ray ×1, all threads: one worker with every core's torch threads (baseline for throughput);
- ray ×1, half the threads: the same worker as each of the two below (a control);
- ray ×2: two workers, the cores' threads split between them.

Throughput: all jobs submitted at once, jobs per second until the last finishes (each worker
is warmed first, so model loading is not timed). Latency: jobs one at a time, submit to the
`job_finished` message on the websocket; the median for ray ×1 against in-process is the
server's added cost per job (streaming events and files over Ray).

    .venv/bin/python bench/ray_throughput.py [--jobs 40] [--steps 4] [--latency-jobs 10]
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_worker_niceness", "0")  # Ray's default, 15, starves them on a busy box
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# As in every Ray worker (see WORKER_ENV), so that the in-process baseline is run alike.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import aiohttp

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
TERMINAL = {"job_finished", "job_failed", "job_interrupted", "job_cancelled"}


def graph(seed: int, steps: int) -> dict[str, Any]:
    document = copy.deepcopy(json.loads((REPO / "graphs" / "txt2img.json").read_text()))
    document["nodes"]["latent"]["inputs"].update(width=64, height=64)
    document["nodes"]["sampler"]["inputs"].update(seed=seed, steps=steps)
    return document


async def run_jobs(url: str, graphs: list[dict[str, Any]], one_at_a_time: bool) -> list[float]:
    """Submit the graphs; seconds from submit to job_finished, per job (all at once, or in turn)."""
    client = f"bench-{time.monotonic_ns()}"
    latencies: list[float] = []
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(f"{url}/ws", params={"client_id": client}) as ws:
            submitted: dict[str, float] = {}

            async def submit(document: dict[str, Any]) -> None:
                started = time.perf_counter()
                async with http.post(
                    f"{url}/api/v1/jobs", json={"graph": document, "client_id": client}
                ) as r:
                    assert r.status == 201, await r.text()
                    submitted[(await r.json())["job_id"]] = started

            async def finish(count: int) -> None:
                while count:
                    frame = await ws.receive(timeout=600)
                    if frame.type != aiohttp.WSMsgType.TEXT:
                        continue  # a binary preview frame
                    message = json.loads(frame.data)
                    if message["type"] not in TERMINAL:
                        continue
                    assert message["type"] == "job_finished", message
                    latencies.append(time.perf_counter() - submitted[message["data"]["job_id"]])
                    count -= 1

            if one_at_a_time:
                for document in graphs:
                    await submit(document)
                    await finish(1)
            else:
                for document in graphs:
                    await submit(document)
                await finish(len(graphs))
    return latencies


def measure(
    name: str, start: Callable[[], Any], jobs: int, steps: int, latency_jobs: int, warm: int
) -> dict[str, float]:
    server = start()
    try:
        asyncio.run(run_jobs(server.url, [graph(1000 + i, steps) for i in range(warm)], False))
        began = time.perf_counter()
        asyncio.run(run_jobs(server.url, [graph(i, steps) for i in range(jobs)], False))
        elapsed = time.perf_counter() - began
        latencies = asyncio.run(
            run_jobs(server.url, [graph(5000 + i, steps) for i in range(latency_jobs)], True)
        )
    finally:
        server.stop()
    result = {
        "jobs_per_s": jobs / elapsed,
        "seconds": elapsed,
        "latency_ms": statistics.median(latencies) * 1000,
    }
    print(
        f"{name:12s} {jobs} jobs in {elapsed:6.1f} s = {result['jobs_per_s']:.2f} jobs/s; "
        f"median latency of one job alone {result['latency_ms']:.0f} ms",
        flush=True,
    )
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=40)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--latency-jobs", type=int, default=10)
    args = parser.parse_args()

    import ray
    import torch

    from engine.registry import default_registry
    from nodes.sd.tiny_models import build_tiny_models
    from server.backends.ray_backend import RayBackend, RayOptions
    from tests.server.harness import start_server

    cores = os.cpu_count() or 1
    split = max(1, cores // 2)
    print(f"{platform.processor() or platform.machine()}, {cores} cores, torch {torch.__version__}")
    print(f"load average before: {os.getloadavg()}", flush=True)
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        tiny = build_tiny_models(root / "models")
        ray.init(
            address="local",
            num_cpus=cores,
            include_dashboard=False,
            _node_ip_address="127.0.0.1",
            log_to_driver=False,
        )
        try:

            def server(name: str, workers: int | None, threads: int) -> Callable[[], Any]:
                def start() -> Any:
                    torch.set_num_threads(threads)  # used only by the in-process backend
                    backend = None
                    if workers is not None:
                        options = RayOptions(
                            workers=workers, cpus_per_worker=cores / workers, threads=threads
                        )
                        backend = lambda paths: RayBackend(paths, options)  # noqa: E731
                    return start_server(
                        root / name,
                        registry=default_registry(),
                        models=tiny.models_dir,
                        backend=backend,
                        boot_timeout=600,
                    )

                return start

            common = (args.jobs, args.steps, args.latency_jobs)
            local = measure(f"in-process {split}t", server("local", None, split), *common, warm=1)
            one_all = measure(f"ray x1 {cores}t", server("ray1", 1, cores), *common, warm=1)
            one = measure(f"ray x1 {split}t", server("ray1s", 1, split), *common, warm=1)
            two = measure(f"ray x2 {split}t", server("ray2", 2, split), *common, warm=2)
        finally:
            ray.shutdown()
    print(f"load average after: {os.getloadavg()}")
    print(
        f"throughput 2 workers x {split} thread(s) / 1 worker x {cores} threads: "
        f"{two['jobs_per_s'] / one_all['jobs_per_s']:.2f}x (goal >= 1.8x)"
    )
    print(
        f"throughput 2 workers / 1 worker, {split} thread(s) each: "
        f"{two['jobs_per_s'] / one['jobs_per_s']:.2f}x"
    )
    print(
        f"latency of one job, ray x1 / in-process ({split} thread(s) each): "
        f"{one['latency_ms'] / local['latency_ms']:.2f}x "
        f"({one['latency_ms'] - local['latency_ms']:+.0f} ms per job)"
    )
    print(
        f"throughput ray x1 / in-process ({split} thread(s) each): "
        f"{one['jobs_per_s'] / local['jobs_per_s']:.2f}x"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
