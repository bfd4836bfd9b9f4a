"""The Ray backend end to end: a local Ray on 127.0.0.1, two CPU workers, the tiny SD models.

Ray starts once for the module and one server with two workers serves every test, in order:
parity with the in-process backend, cache-affinity routing, interrupt then cache reuse, and a
worker killed mid-job.
"""

from __future__ import annotations

import asyncio
import copy
import importlib
import json
import os
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

# Before Ray is imported: no usage reporting, and every Ray port on loopback.
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_worker_niceness", "0")  # Ray's default, 15, starves them on a busy box
ray = pytest.importorskip(
    "ray", reason="the Ray backend tests need Ray: pip install -e '.[dev,ray]'"
)

from engine.registry import EXTRA_MODULES_ENV, Registry, default_registry  # noqa: E402
from nodes.sd.tiny_models import TinyModels  # noqa: E402
from server.backends.ray_backend import RayBackend, RayOptions  # noqa: E402
from tests.server.harness import RunningServer, start_server  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 120.0
TERMINAL = {"job_finished", "job_failed", "job_interrupted", "job_cancelled"}
RAY_NODES = "tests.sd.ray_nodes"


@pytest.fixture(scope="module")
def models(tiny_models: TinyModels, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny models, plus two more copies of the checkpoint: X and Y for affinity."""
    folder = tmp_path_factory.mktemp("ray-models")
    shutil.copytree(tiny_models.models_dir, folder, dirs_exist_ok=True)
    for name in ("tiny-x", "tiny-y"):
        shutil.copy(tiny_models.checkpoint, folder / "checkpoints" / f"{name}.safetensors")
    return folder


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    # Ray's processes, and so every worker, inherit the environment Ray starts with: the workers'
    # registries get the test node; this process's default registry is left as it is.
    os.environ[EXTRA_MODULES_ENV] = RAY_NODES
    try:
        start_local_ray()
    finally:
        del os.environ[EXTRA_MODULES_ENV]
    try:
        yield
    finally:
        ray.shutdown()


def start_local_ray() -> None:
    ray.init(
        address="local",
        num_cpus=4,
        include_dashboard=False,
        _node_ip_address="127.0.0.1",
        namespace="latentgraph-tests",
        log_to_driver=False,
        object_store_memory=128 * 1024 * 1024,
    )


@pytest.fixture(scope="module")
def ray_server(
    local_ray: None, models: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    options = RayOptions(workers=2, cpus_per_worker=1)
    registry = Registry.discover()
    registry.add_module(importlib.import_module(RAY_NODES))
    server = start_server(
        tmp_path_factory.mktemp("ray-server"),
        registry=registry,
        models=models,
        backend=lambda paths: RayBackend(paths, options),
        boot_timeout=TIMEOUT,
    )
    try:
        yield server
    finally:
        server.stop()


def txt2img(
    checkpoint: str = "tiny-sd1.safetensors", seed: int = 7, steps: int = 3, prefix: str = "t2i"
) -> dict[str, Any]:
    graph = copy.deepcopy(json.loads((ROOT / "graphs" / "txt2img.json").read_text()))
    nodes = graph["nodes"]
    nodes["checkpoint"]["inputs"]["checkpoint"] = checkpoint
    nodes["latent"]["inputs"].update(width=64, height=64)
    nodes["sampler"]["inputs"].update(steps=steps, seed=seed)
    nodes["save"]["inputs"]["prefix"] = prefix
    return graph


def wait_for_file(path: Path) -> dict[str, Any]:
    """One WaitForFile node: the job runs until `path` exists."""
    return {"nodes": {"wait": {"type": "WaitForFile", "inputs": {"path": str(path)}}}}


class Api:
    """HTTP and websocket helpers against one server, on the test's own event loop."""

    def __init__(self, server: RunningServer, http: aiohttp.ClientSession) -> None:
        self.url, self.http = server.url, http

    async def submit(self, graph: dict[str, Any], **extra: Any) -> str:
        async with self.http.post(
            f"{self.url}/api/v1/jobs", json={"graph": graph, "client_id": "ray", **extra}
        ) as r:
            assert r.status == 201, await r.text()
            return str((await r.json())["job_id"])

    async def job(self, job_id: str) -> dict[str, Any]:
        async with self.http.get(f"{self.url}/api/v1/jobs/{job_id}") as r:
            assert r.status == 200
            return dict(await r.json())

    async def events(self, job_id: str) -> list[dict[str, Any]]:
        async with self.http.get(f"{self.url}/api/v1/jobs/{job_id}/events") as r:
            assert r.status == 200
            return list((await r.json())["events"])

    async def system(self) -> dict[str, Any]:
        async with self.http.get(f"{self.url}/api/v1/system") as r:
            assert r.status == 200
            return dict(await r.json())

    async def wait(self, job_id: str) -> dict[str, Any]:
        """Poll until the job is over; its summary."""
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            job = await self.job(job_id)
            if job["status"] not in ("pending", "running"):
                return job
            await asyncio.sleep(0.1)
        raise TimeoutError(f"job {job_id} did not finish")

    async def wait_for(self, job_id: str, kind: str) -> None:
        """Poll the event log until the job has logged an event of this type."""
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            if any(e["type"] == kind for e in await self.events(job_id)):
                return
            await asyncio.sleep(0.05)
        raise TimeoutError(f"job {job_id} logged no {kind}")

    async def until_idle(self) -> list[dict[str, Any]]:
        """Poll until both workers are up and free; their entries in /system.

        A job's status is stored with its terminal event, a moment before its worker is free
        again: a job submitted in that moment goes to another worker, as routing should.
        """
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            workers = list((await self.system())["workers"])
            if len(workers) == 2 and all(
                w["alive"] and w["running"] is None and not w["queued"] for w in workers
            ):
                return workers
            await asyncio.sleep(0.1)
        raise TimeoutError(f"the workers did not come up free: {workers}")

    async def view(self, image: dict[str, Any]) -> bytes:
        async with self.http.get(f"{self.url}{image['url']}") as r:
            assert r.status == 200
            return await r.read()


def run_async(server: RunningServer, test: Any) -> Any:
    async def main() -> Any:
        async with aiohttp.ClientSession() as http:
            return await test(Api(server, http))

    return asyncio.run(main())


def worker_of(server: RunningServer, job_id: str) -> str:
    backend = server.services.jobs.backend
    assert isinstance(backend, RayBackend)
    return backend.assignments[job_id]


def shape(events: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """An event log without its times: type, node, cached flag, progress, file names."""
    shaped = []
    for event in events:
        data = event["data"]
        output = data.get("output") or {}
        files = [i["filename"] for i in output.get("images", [])]
        shaped.append(
            (event["type"], data["seq"], data.get("node_id"), data.get("cached"),
             data.get("value"), data.get("nodes"), files)
        )  # fmt: skip
    return shaped


def test_two_workers_give_the_same_images_and_events_as_in_process(
    ray_server: RunningServer, models: Path, tmp_path: Path
) -> None:
    graphs = [txt2img(seed=1, prefix="a"), txt2img(seed=2, prefix="b")]

    async def on_ray(api: Api) -> tuple[list[Any], list[bytes], set[str]]:
        ids = [await api.submit(g) for g in graphs]
        jobs = [await api.wait(i) for i in ids]
        assert [j["status"] for j in jobs] == ["finished", "finished"], jobs
        pngs = [await api.view(j["outputs"]["save"]["images"][0]) for j in jobs]
        return (
            [shape(await api.events(i)) for i in ids],
            pngs,
            {worker_of(ray_server, i) for i in ids},
        )

    ray_events, ray_pngs, used = run_async(ray_server, on_ray)
    assert len(used) == 2, "the two jobs ran on the two workers at once"

    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each of the two Ray workers on two cores
    local = start_server(tmp_path, registry=default_registry(), models=models)
    try:

        async def in_process(api: Api) -> tuple[list[Any], list[bytes]]:
            ids = [await api.submit(g) for g in graphs]
            jobs = [await api.wait(i) for i in ids]
            pngs = [await api.view(j["outputs"]["save"]["images"][0]) for j in jobs]
            return [shape(await api.events(i)) for i in ids], pngs

        local_events, local_pngs = run_async(local, in_process)
    finally:
        local.stop()
        torch.set_num_threads(threads)
    # The second in-process job finds the first one's loader and prompts cached, as on Ray
    # only if both ran on one worker; compare each job with a run that was equally cold.
    assert ray_events[0] == local_events[0]
    assert ray_pngs == local_pngs
    assert [e[0] for e in ray_events[1]] == [e[0] for e in local_events[0]]


def test_a_job_goes_to_the_worker_that_holds_its_checkpoint(ray_server: RunningServer) -> None:
    async def scenario(api: Api) -> None:
        # Warm one worker with X and the other with Y: submitted together, they run at once.
        x, y = (
            await api.submit(txt2img("tiny-x.safetensors")),
            await api.submit(txt2img("tiny-y.safetensors")),
        )
        await api.wait(x), await api.wait(y)
        warm_x, warm_y = worker_of(ray_server, x), worker_of(ray_server, y)
        assert warm_x != warm_y
        # Twice in a row, so that the second time the X worker has run more jobs than the Y one
        # and least-loaded routing alone would send it elsewhere.
        for seed, checkpoint, warm in ((11, "tiny-x", warm_x), (12, "tiny-x", warm_x),
                                       (13, "tiny-y", warm_y)):  # fmt: skip
            await api.until_idle()
            job_id = await api.submit(txt2img(f"{checkpoint}.safetensors", seed=seed))
            job = await api.wait(job_id)
            assert job["status"] == "finished", job
            assert worker_of(ray_server, job_id) == warm
            assert "checkpoint" in job["cached"] and "checkpoint" not in job["executed"]

    run_async(ray_server, scenario)


def test_interrupt_by_id_stops_the_job_on_its_worker_and_the_cache_is_reused(
    ray_server: RunningServer,
) -> None:
    async def scenario(api: Api) -> None:
        job_id = await api.submit(txt2img("tiny-x.safetensors", seed=21, steps=400))
        await api.wait_for(job_id, "progress")
        async with api.http.post(f"{api.url}/api/v1/jobs/{job_id}/cancel") as r:
            assert r.status == 202, await r.text()
        job = await api.wait(job_id)
        assert job["status"] == "interrupted", job
        assert job["interrupted"] == {"node_id": "sampler", "reason": "requested"}
        steps = [e["data"]["value"] for e in await api.events(job_id) if e["type"] == "progress"]
        assert steps[-1] < 400
        worker = worker_of(ray_server, job_id)
        # The next job with that checkpoint goes to the same worker and loads nothing.
        await api.until_idle()
        again = await api.submit(txt2img("tiny-x.safetensors", seed=22))
        done = await api.wait(again)
        assert done["status"] == "finished", done
        assert worker_of(ray_server, again) == worker
        assert {"checkpoint", "positive", "negative"} <= set(done["cached"])

    run_async(ray_server, scenario)


def assert_gap_free(events: list[dict[str, Any]]) -> None:
    assert [e["data"]["seq"] for e in events] == list(range(1, len(events) + 1))
    assert [e["type"] for e in events].count("job_queued") == 1
    assert events[-1]["type"] in TERMINAL
    assert sum(e["type"] in TERMINAL for e in events) == 1


def test_a_killed_worker_fails_its_job_and_is_replaced_and_nothing_queued_is_lost(
    ray_server: RunningServer, tmp_path: Path
) -> None:
    async def kill_worker_running(api: Api, job_id: str) -> str:
        await api.wait_for(job_id, "progress")
        worker = worker_of(ray_server, job_id)
        system = await api.system()
        (pid,) = [w["pid"] for w in system["workers"] if w["worker_id"] == worker]
        os.kill(pid, signal.SIGKILL)
        return worker

    async def scenario(api: Api) -> None:
        before = {w["worker_id"] for w in (await api.system())["workers"]}
        # It waits for a file never created: still running when its worker is killed.
        doomed = await api.submit(wait_for_file(tmp_path / "never"))
        await api.wait_for(doomed, "progress")
        other = await api.submit(txt2img("tiny-y.safetensors", seed=32, steps=20))
        queued = [await api.submit(txt2img(seed=33 + i)) for i in range(3)]
        killed = await kill_worker_running(api, doomed)

        failed = await api.wait(doomed)
        assert failed["status"] == "failed", failed
        assert failed["error"]["code"] == "worker_lost"
        assert_gap_free(await api.events(doomed))
        for job_id in (other, *queued):
            job = await api.wait(job_id)
            assert job["status"] == "finished", job
            assert_gap_free(await api.events(job_id))

        # One retry elsewhere, when the job asks for it.
        # Its first attempt waits until the worker is killed; the retry finds the file on the
        # other worker (the first one's replacement is up by then).
        await api.until_idle()
        gate = tmp_path / "retry-gate"
        retried = await api.submit(wait_for_file(gate), retry_on_worker_lost=True)
        lost = await kill_worker_running(api, retried)
        gate.touch()
        job = await api.wait(retried)
        assert job["status"] == "finished", job
        assert worker_of(ray_server, retried) != lost
        events = await api.events(retried)
        assert [e["data"]["seq"] for e in events] == list(range(1, len(events) + 1))
        assert [e["type"] for e in events].count("job_started") == 2

        # Both lost workers were replaced by fresh ones.
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            workers = (await api.system())["workers"]
            if len(workers) == 2 and all(w["alive"] for w in workers):
                break
            await asyncio.sleep(0.2)
        ids = {w["worker_id"] for w in workers}
        assert len(workers) == 2 and all(w["alive"] for w in workers), workers
        assert killed not in ids and lost not in ids and ids - before

    run_async(ray_server, scenario)


def test_system_lists_the_workers_and_an_idle_worker_that_dies_is_replaced(
    ray_server: RunningServer,
) -> None:
    async def scenario(api: Api) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        system = await api.system()
        victim = system["workers"][0]
        os.kill(victim["pid"], signal.SIGKILL)
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            workers = (await api.system())["workers"]
            ids = {w["worker_id"] for w in workers if w["alive"]}
            if len(ids) == 2 and victim["worker_id"] not in ids:
                break
            await asyncio.sleep(0.2)
        return system, workers

    system, after = run_async(ray_server, scenario)
    assert system["backend"] == "ray"
    assert len(system["workers"]) == 2
    for worker in system["workers"]:
        assert worker["devices"][0]["type"] == "cpu"
        assert worker["threads"] == 1 and worker["pid"] and worker["node"]
        assert worker["alive"] and worker["running"] is None
    # The worker that ran the last job holds its models (the other may be a fresh replacement).
    assert any(
        w["cache"]["entries"] > 0 and w["cache"]["usage"]["cpu"] > 0 for w in system["workers"]
    )
    assert system["workers"][0]["worker_id"] not in {w["worker_id"] for w in after}
    assert len(after) == 2 and all(w["alive"] for w in after), after
