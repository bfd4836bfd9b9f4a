"""The Ray backend: one actor per worker, each with its own executor and cache.

The server keeps the queue, the event log, the websocket hub and the output folder. A job runs
as a streaming generator on its worker's actor; a thread per running job reads the stream,
hands engine events to the job's recorder and writes the files the worker sends through the
server's output store. A worker whose process dies fails its job with `worker_lost` (or lets it
retry elsewhere) and is replaced by a fresh actor.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from engine.config import ComputeOptions, Paths
from engine.errors import GraphError, GraphValidationError
from engine.events import Event
from server.backends.base import JobRun, WorkerCrash, WorkerLost
from server.backends.ray_router import WorkerView, choose_worker
from server.backends.ray_worker import GraphWorker, WorkerConfig
from server.schemas import DeviceInfo, WorkerCache, WorkerInfo

log = logging.getLogger(__name__)

LOCAL = "auto"  # `--ray auto`: start a Ray instance inside the server, on 127.0.0.1
NAMESPACE = "latentgraph"
# Calls besides a job's stream (cancel, deliver, describe) run on other threads of the actor.
ACTOR_CONCURRENCY = 4
START_TIMEOUT_S = 300.0
HEALTH_INTERVAL_S = 2.0
CANCEL_POLL_S = 0.02
ASSIGNMENTS_KEPT = 1000
# Environment of every worker: never reach a model hub, never report usage. OpenMP threads
# sleep instead of spinning while they wait: CPU workers share a machine's cores, and spinning
# thread pools of several workers (or other programs) slow each other down many times over.
WORKER_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "RAY_USAGE_STATS_ENABLED": "0",
    "OMP_WAIT_POLICY": "PASSIVE",
}


@dataclass(frozen=True)
class RayOptions:
    """How to reach Ray and how many workers to run on it."""

    address: str = LOCAL
    # CPU workers when the cluster has no GPUs; by default one per GPU, else 1.
    workers: int | None = None
    # Ray CPUs each CPU worker reserves (torch threads are split by the machine's cores).
    cpus_per_worker: float = 1.0
    # CPUs a Ray started by the server offers (default: the machine's cores, at least `workers`).
    local_cpus: int | None = None
    # torch threads of each CPU worker (default: the machine's cores split between the workers).
    threads: int | None = None
    # How the workers run their models (`serve --compile`).
    compute: ComputeOptions = field(default_factory=ComputeOptions)


@dataclass
class _Worker:
    """The server's view of one worker actor."""

    worker_id: str
    actor: Any
    config: WorkerConfig
    alive: bool = True
    ready: bool = False
    running: str | None = None
    claimed: bool = False
    info: dict[str, Any] = field(default_factory=dict)
    # The cache's keys as the worker computes them, and server key → worker key per node seen.
    cache_keys: set[str] = field(default_factory=set)
    key_map: dict[str, str] = field(default_factory=dict)

    @property
    def idle(self) -> bool:
        return self.alive and self.ready and not self.claimed

    def view(self) -> WorkerView:
        keys = {s for s, w in self.key_map.items() if w in self.cache_keys}
        return WorkerView(self.worker_id, self.idle, int(self.info.get("jobs_run", 0)), keys)


class RayBackend:
    """Runs jobs on Ray actors; see the module docstring."""

    routes_by_cache = True
    kind = "ray"

    def __init__(self, paths: Paths, options: RayOptions | None = None) -> None:
        self.paths = paths
        self.options = options or RayOptions()
        self._workers: dict[str, _Worker] = {}
        self._count = 0
        self._owns_ray = False
        self._wake: Callable[[], None] = lambda: None
        self._threads: ThreadPoolExecutor | None = None
        self._health: asyncio.Task[None] | None = None
        self._replacing: set[asyncio.Task[None]] = set()
        self._remote_class: Any = None
        self._gpu = False
        self._threads_per_worker: int | None = None
        # Which worker ran each recent job (the newest ASSIGNMENTS_KEPT), for logs and tests.
        self.assignments: OrderedDict[str, str] = OrderedDict()

    # --- Lifecycle. ---

    async def start(self, wake: Callable[[], None]) -> None:
        """Connect to (or start) Ray and bring every worker up."""
        self._wake = wake
        count = await asyncio.to_thread(self._connect)
        self._threads = ThreadPoolExecutor(count + 4, thread_name_prefix="latentgraph-ray")
        workers = [self._spawn() for _ in range(count)]
        await asyncio.gather(*(self._await_ready(w) for w in workers))
        self._health = asyncio.create_task(self._watch_health(), name="latentgraph-ray-health")

    async def stop(self) -> None:
        """Kill the actors, and shut Ray down if the server started it."""
        import ray

        if self._health is not None:
            self._health.cancel()
            await asyncio.gather(self._health, *self._replacing, return_exceptions=True)
        for worker in self._workers.values():
            try:
                ray.kill(worker.actor)
            except Exception:
                log.debug("could not kill worker %s", worker.worker_id, exc_info=True)
        self._workers.clear()
        if self._owns_ray:
            await asyncio.to_thread(ray.shutdown)
        if self._threads is not None:
            self._threads.shutdown(wait=False, cancel_futures=True)

    def _connect(self) -> int:
        """Initialise Ray; returns how many workers to start."""
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        if self.options.address == LOCAL:
            # Ray resolves 127.0.0.1 to the machine's address unless it is told that this is no
            # cluster, so it binds every port to loopback.
            os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
            # Ray renices its workers to 15 by default; these workers are the server's compute.
            os.environ.setdefault("RAY_worker_niceness", "0")
        import ray

        if ray.is_initialized():
            pass  # a Ray the caller started (tests, an embedding application)
        elif self.options.address == LOCAL:
            cpus = self.options.local_cpus or max(os.cpu_count() or 1, self.options.workers or 1)
            ray.init(
                address="local",
                num_cpus=cpus,
                include_dashboard=False,
                _node_ip_address="127.0.0.1",
                namespace=NAMESPACE,
                log_to_driver=False,
            )
            self._owns_ray = True
        else:
            ray.init(address=self.options.address, namespace=NAMESPACE, log_to_driver=False)
        gpus = int(ray.cluster_resources().get("GPU", 0))
        self._gpu = gpus > 0
        count = self.options.workers or gpus or 1
        if not self._gpu:
            cores = int(ray.cluster_resources().get("CPU", os.cpu_count() or 1))
            split = max(1, min(cores, os.cpu_count() or 1) // count)
            self._threads_per_worker = self.options.threads or split
        self._remote_class = ray.remote(GraphWorker)
        log.info(
            "Ray backend: %d %s worker(s) on %s",
            count,
            "GPU" if self._gpu else "CPU",
            ray.get_runtime_context().gcs_address,
        )
        return count

    def _spawn(self) -> _Worker:
        """Start a new worker actor (it becomes ready once it has imported everything)."""
        self._count += 1
        worker_id = f"w{self._count}"
        threads = self._threads_per_worker
        config = WorkerConfig(
            worker_id,
            str(self.paths.models),
            str(self.paths.input),
            str(self.paths.output),
            threads=threads,
            compute=self.options.compute,
        )
        env = dict(WORKER_ENV)
        if threads:
            env["OMP_NUM_THREADS"] = str(threads)
        resources: dict[str, Any] = (
            {"num_gpus": 1, "num_cpus": 1}
            if self._gpu
            else {"num_cpus": self.options.cpus_per_worker}
        )
        actor = self._remote_class.options(
            name=None,
            max_concurrency=ACTOR_CONCURRENCY,
            max_restarts=0,
            runtime_env={"env_vars": env},
            **resources,
        ).remote(config)
        worker = _Worker(worker_id, actor, config)
        self._workers[worker_id] = worker
        return worker

    async def _await_ready(self, worker: _Worker) -> None:
        info = await self._call(worker, "describe", timeout=START_TIMEOUT_S)
        self._update(worker, info)
        worker.ready = True
        log.info("worker %s is up (pid %s)", worker.worker_id, info.get("pid"))
        self._wake()

    # --- Jobs. ---

    def has_idle(self) -> bool:
        """Whether some worker is up and free."""
        return any(w.idle for w in self._workers.values())

    def claim(self, run: JobRun, upcoming: list[JobRun]) -> str | None:
        """Route by cache affinity (see ray_router) and mark the chosen worker busy."""
        views = [w.view() for w in self._workers.values()]
        chosen = choose_worker(run, upcoming, views)
        if chosen is not None:
            self._workers[chosen].claimed = True
            self.assignments[run.job_id] = chosen
            while len(self.assignments) > ASSIGNMENTS_KEPT:
                self.assignments.popitem(last=False)
        return chosen

    async def run(self, worker_id: str, run: JobRun) -> None:
        """Stream the job from its worker; forwards an interrupt; raises as Backend.run says."""
        worker = self._workers.get(worker_id)
        if worker is None or not worker.alive:
            raise WorkerLost(worker_id, "it died before the job started")
        worker.running = run.job_id
        forward = asyncio.create_task(self._forward_cancel(worker, run))
        loop = asyncio.get_running_loop()
        try:
            end = await loop.run_in_executor(self._threads, self._stream, worker, run)
        except WorkerLost:
            self._lose(worker)
            raise
        finally:
            forward.cancel()
            worker.running = None
            if worker.alive:
                worker.claimed = False
                self._wake()
        error, state = end[1], end[2]
        self._learn(worker, run, state)
        if error is None:
            return
        if error["kind"] == "invalid_graph":
            raise GraphValidationError([GraphError.model_validate(e) for e in error["errors"]])
        raise WorkerCrash(error["type"], error["message"], error["traceback"])

    def _stream(self, worker: _Worker, run: JobRun) -> tuple[Any, ...]:
        """Read the job's stream on a thread of ours; returns its end record."""
        import ray
        from ray.exceptions import RayError, RayTaskError

        try:
            for ref in worker.actor.run.remote(run.job_id, run.graph):
                item = ray.get(ref)
                if item[0] == "event":
                    event: Event = item[1]  # what GraphWorker.run yields: an engine event
                    run.on_event(event)
                elif item[0] == "files":
                    _, request, subfolder, stem, suffix, files = item
                    try:
                        reply: list[str] | str = run.outputs.save_numbered(
                            subfolder, stem, suffix, files
                        )
                    except Exception as exc:
                        log.exception("could not write the files of job %s", run.job_id)
                        reply = f"{type(exc).__name__}: {exc}"
                    worker.actor.deliver.remote(run.job_id, request, reply)
                elif item[0] == "end":
                    return item
        except RayTaskError as exc:
            raise WorkerCrash(type(exc).__name__, str(exc), []) from exc
        except RayError as exc:
            raise WorkerLost(worker.worker_id, type(exc).__name__) from exc
        raise WorkerLost(worker.worker_id, "its stream ended without a result")

    async def _forward_cancel(self, worker: _Worker, run: JobRun) -> None:
        # CancelToken is a thread-safe flag with no callback; polling it costs nothing here.
        while not run.cancel.cancelled:
            await asyncio.sleep(CANCEL_POLL_S)
        worker.actor.cancel.remote(run.job_id)

    def _learn(self, worker: _Worker, run: JobRun, state: dict[str, Any]) -> None:
        """Remember what the worker's cache holds now, and its keys for this job's nodes."""
        worker_keys: dict[str, str] = state.get("keys", {})
        for node_id, server_key in run.keys.items():
            if node_id in worker_keys:
                # Equal on one machine; they differ where model files differ in path or mtime.
                worker.key_map[server_key] = worker_keys[node_id]
        self._update(worker, state)

    def _update(self, worker: _Worker, info: dict[str, Any]) -> None:
        worker.info = info
        worker.cache_keys = set(info.get("cache", {}).get("keys", []))

    # --- Faults. ---

    def _lose(self, worker: _Worker) -> None:
        """Mark a worker dead and start its replacement."""
        if not worker.alive:
            return
        import ray

        worker.alive = False
        log.warning("worker %s was lost; starting a replacement", worker.worker_id)
        try:
            ray.kill(worker.actor)
        except Exception:
            log.debug("could not kill lost worker %s", worker.worker_id, exc_info=True)
        del self._workers[worker.worker_id]
        replacement = self._spawn()
        task = asyncio.create_task(self._bring_up(replacement))
        self._replacing.add(task)
        task.add_done_callback(self._replacing.discard)

    async def _bring_up(self, worker: _Worker) -> None:
        try:
            await self._await_ready(worker)
        except Exception:
            log.exception("replacement worker %s did not come up", worker.worker_id)
            self._workers.pop(worker.worker_id, None)

    async def _watch_health(self) -> None:
        """Find idle workers that died between jobs, and refresh what each one caches."""
        while True:
            await asyncio.sleep(HEALTH_INTERVAL_S)
            for worker in [w for w in self._workers.values() if w.ready and w.alive]:
                try:
                    info = await self._call(worker, "describe", timeout=30.0)
                except WorkerLost:
                    if worker.running is None and worker.alive:
                        self._lose(worker)
                    continue
                except Exception:
                    log.debug("no answer from worker %s", worker.worker_id, exc_info=True)
                    continue
                if worker.alive:
                    self._update(worker, info)

    async def _call(self, worker: _Worker, method: str, timeout: float) -> Any:
        """Call an actor method and wait for it on a thread; WorkerLost if the actor is gone."""
        import ray
        from ray.exceptions import GetTimeoutError, RayActorError

        def call() -> Any:
            try:
                return ray.get(getattr(worker.actor, method).remote(), timeout=timeout)
            except RayActorError as exc:
                raise WorkerLost(worker.worker_id, type(exc).__name__) from exc
            except GetTimeoutError:
                raise TimeoutError(f"worker {worker.worker_id} did not answer {method}") from None

        return await asyncio.get_running_loop().run_in_executor(self._threads, call)

    # --- Reporting. ---

    def workers(self) -> list[WorkerInfo]:
        """Every worker, in start order, from what it last reported."""
        shown = []
        for worker in self._workers.values():
            info = worker.info
            cache = info.get("cache", {})
            shown.append(
                WorkerInfo(
                    worker_id=worker.worker_id,
                    alive=worker.alive and worker.ready,
                    node=info.get("node"),
                    pid=info.get("pid"),
                    devices=[DeviceInfo(**d) for d in info.get("devices", [])],
                    threads=info.get("threads"),
                    running=worker.running,
                    queued=int(worker.claimed and worker.running is None),
                    jobs_run=int(info.get("jobs_run", 0)),
                    cache=WorkerCache(
                        entries=cache.get("entries", 0), usage=cache.get("usage", {})
                    ),
                )
            )
        return shown
