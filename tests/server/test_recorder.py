"""The recorder commits events that another follows at once together with that one."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

from engine.events import NodeFinished, NodesCached, NodeStarted, RunFinished, RunStarted
from server.messages import JobEvent
from server.recorder import JobRecorder
from server.schemas import JobError
from server.store import JobRow, StoredEvent, StoreThread


def record(
    tmp_path: Path, events: list[Any]
) -> tuple[list[int], list[JobEvent], JobRow, list[int]]:
    """Feed `events` to a recorder on a real store; returns commits, published, the row, stored seqs."""
    commits: list[int] = []
    published: list[JobEvent] = []

    async def scenario() -> tuple[JobRow, list[int]]:
        store = StoreThread(tmp_path / "jobs.sqlite3")
        await store.open()
        queued = StoredEvent(1, "job_queued", "{}")
        await store.call(lambda s: s.insert_job("j", None, {}, 0.0, 1.0, queued))
        blocking = store.call_blocking

        def counted(operation: Any) -> Any:
            commits.append(len(published))
            return blocking(operation)

        store.call_blocking = counted  # type: ignore[method-assign]
        recorder = JobRecorder(
            "j", None, 1, store, published.append, lambda: "requested", started_at=5.0
        )
        await asyncio.to_thread(lambda: [recorder.on_event(e) for e in events])
        row, stored = await store.call(lambda s: (s.get("j"), s.events("j", 0, None)))
        await store.close()
        assert row is not None
        return row, [e.seq for e in stored]

    row, stored = asyncio.run(scenario())
    return commits, published, row, stored


def test_a_run_served_from_the_cache_commits_once(tmp_path: Path) -> None:
    events = [
        RunStarted(run_id="j", nodes=["a"]),
        NodesCached(run_id="j", nodes=["a"]),
        NodeFinished(run_id="j", node_id="a", node_type="ShowInt", cached=True),
        RunFinished(run_id="j", outputs={"a": None}, executed=[], cached=["a"], seconds=0.001),
    ]
    commits, published, row, stored = record(tmp_path, events)
    assert len(commits) == 1
    assert [e.seq for e in published] == [2, 3, 4, 5]
    assert [e.type for e in published][-1] == "job_finished"
    assert stored == [1, 2, 3, 4, 5]
    assert row.status == "finished" and row.started_at == 5.0


def test_events_before_work_are_committed_before_the_work_starts(tmp_path: Path) -> None:
    events = [
        RunStarted(run_id="j", nodes=["a"]),
        NodesCached(run_id="j", nodes=[]),
        NodeStarted(run_id="j", node_id="a", node_type="ShowInt"),
        NodeFinished(run_id="j", node_id="a", node_type="ShowInt", seconds=0.5),
        RunFinished(run_id="j", outputs={"a": None}, executed=["a"], cached=[], seconds=0.5),
    ]
    commits, published, row, stored = record(tmp_path, events)
    # node_started is published (with the two before it) before the node runs; then one each.
    assert commits == [0, 3, 4]
    assert [e.seq for e in published] == [2, 3, 4, 5, 6] and stored == [1, 2, 3, 4, 5, 6]
    assert row.status == "finished" and row.executed == ["a"]


def test_a_failed_commit_loses_no_sequence_number_and_nothing_after_the_terminal_is_logged(
    tmp_path: Path,
) -> None:
    published: list[JobEvent] = []

    async def scenario() -> tuple[JobRow, list[int], int]:
        store = StoreThread(tmp_path / "jobs.sqlite3")
        await store.open()
        queued = StoredEvent(1, "job_queued", "{}")
        await store.call(lambda s: s.insert_job("j", None, {}, 0.0, 1.0, queued))
        blocking, commits = store.call_blocking, [0]

        def fails_once(operation: Any) -> Any:
            commits[0] += 1
            if commits[0] == 1:  # the first commit (started, cached, node_started): disk full
                raise sqlite3.OperationalError("database or disk is full")
            return blocking(operation)

        store.call_blocking = fails_once  # type: ignore[method-assign]
        recorder = JobRecorder(
            "j", None, 1, store, published.append, lambda: "requested", started_at=5.0
        )
        finished = RunFinished(run_id="j", outputs={}, executed=["a"], cached=[], seconds=0.5)
        events = [
            RunStarted(run_id="j", nodes=["a"]),
            NodesCached(run_id="j", nodes=[]),
            NodeStarted(run_id="j", node_id="a", node_type="ShowInt"),
            NodeFinished(run_id="j", node_id="a", node_type="ShowInt", seconds=0.5),
            finished,
            # Anything after the terminal event is not logged, nor is a late failure.
            finished,
        ]
        await asyncio.to_thread(lambda: [recorder.on_event(e) for e in events])
        await asyncio.to_thread(recorder.fail, JobError(code="internal_error", message="late"))
        row, stored = await store.call(lambda s: (s.get("j"), s.events("j", 0, None)))
        await store.close()
        assert row is not None
        return row, [e.seq for e in stored], commits[0]

    row, stored, commits = asyncio.run(scenario())
    # node_started was never committed, so never sent; the events before it went with the next.
    assert [e.type for e in published] == [
        "job_started",
        "nodes_cached",
        "node_finished",
        "job_finished",
    ]
    assert [e.seq for e in published] == [2, 3, 4, 5] and stored == [1, 2, 3, 4, 5]
    assert commits == 3
    assert row.status == "finished" and row.started_at == 5.0
