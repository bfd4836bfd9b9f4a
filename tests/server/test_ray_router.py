"""Cache-affinity routing, as a pure function of the workers' cached keys and the queue."""

from __future__ import annotations

from pathlib import Path

from engine.context import CancelToken
from engine.outputs import FolderOutputStore
from server.backends.base import JobRun
from server.backends.ray_router import WorkerView, choose_worker


def job(checkpoint: str, *others: str, avoid: frozenset[str] = frozenset()) -> JobRun:
    keys = {"loader": checkpoint, **{f"n{i}": key for i, key in enumerate(others)}}
    return JobRun(
        "0" * 32, {}, CancelToken(), lambda _e: None, FolderOutputStore(Path("unused")),
        keys=keys, loaders=["loader"], avoid=avoid,
    )  # fmt: skip


def worker(worker_id: str, *keys: str, idle: bool = True, jobs_run: int = 0) -> WorkerView:
    return WorkerView(worker_id, idle, jobs_run, set(keys))


def test_an_idle_worker_holding_the_loader_wins_even_when_busier() -> None:
    workers = [worker("a", jobs_run=0), worker("b", "X", jobs_run=9)]
    assert choose_worker(job("X"), [], workers) == "b"


def test_among_warm_workers_the_one_holding_more_of_the_job_wins() -> None:
    workers = [worker("a", "X"), worker("b", "X", "prompt")]
    assert choose_worker(job("X", "prompt", "latent"), [], workers) == "b"


def test_without_a_warm_worker_the_least_loaded_idle_one_is_chosen() -> None:
    workers = [worker("a", jobs_run=3), worker("b", jobs_run=1), worker("c", idle=False)]
    assert choose_worker(job("X"), [], workers) == "b"


def test_a_job_never_waits_for_a_busy_warm_worker() -> None:
    workers = [worker("a", "X", idle=False), worker("b")]
    assert choose_worker(job("X"), [], workers) == "b"
    assert choose_worker(job("X"), [], [worker("a", "X", idle=False)]) is None


def test_a_worker_warm_for_a_queued_job_is_kept_for_it() -> None:
    workers = [worker("a", "Y"), worker("b", jobs_run=5)]
    assert choose_worker(job("X"), [job("Y")], workers) == "b"
    assert choose_worker(job("X"), [], workers) == "a"  # nobody behind it: least loaded


def test_a_retry_avoids_the_worker_it_was_lost_on() -> None:
    workers = [worker("a", "X"), worker("b")]
    assert choose_worker(job("X", avoid=frozenset({"a"})), [], workers) == "b"
    assert choose_worker(job("X", avoid=frozenset({"a"})), [], workers[:1]) == "a"
