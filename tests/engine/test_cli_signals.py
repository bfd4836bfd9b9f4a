"""The command stops cleanly: signals, a closed stdout, and failures reported once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from engine.executor import Executor
from tests.engine import testing_nodes

ROOT = Path(__file__).resolve().parents[2]


def start(tmp_path: Path, document: dict, *args: str) -> subprocess.Popen[str]:
    path = tmp_path / "graph.json"
    path.write_text(json.dumps(document))
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "LATENTGRAPH_NODE_MODULES": "tests.engine.testing_nodes",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "latentgraph_cli", "run", str(path), *args],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def slow(steps: int = 1000, delay: float = 0.02) -> dict:
    return {
        "nodes": {
            "a": {"type": "Constant", "inputs": {"value": 2}},
            "slow": {
                "type": "SlowSteps",
                "inputs": {"steps": steps, "delay": delay},
                "links": {"x": "a.value"},
            },
            "out": {"type": "ShowInt", "links": {"value": "slow.value"}},
        }
    }


def blocking(seconds: float = 60.0) -> dict:
    return {
        "nodes": {
            "a": {"type": "Constant", "inputs": {"value": 2}},
            "block": {"type": "Block", "inputs": {"seconds": seconds}, "links": {"x": "a.value"}},
            "out": {"type": "ShowInt", "links": {"value": "block.value"}},
        }
    }


def wait_for_line(process: subprocess.Popen[str], needle: str) -> None:
    assert process.stdout is not None
    for line in process.stdout:
        if needle in line:
            return
    raise AssertionError(f"{needle!r} never printed; stderr: {process.stderr.read()}")  # type: ignore[union-attr]


def test_a_closed_stdout_stops_the_run_quietly(tmp_path: Path) -> None:
    process = start(tmp_path, slow(), "--json")
    assert process.stdout is not None
    process.stdout.readline()
    process.stdout.readline()
    process.stdout.close()  # what `| head -2` does
    code = process.wait(timeout=60)
    err = process.stderr.read()  # type: ignore[union-attr]
    assert code == 1
    assert "Traceback" not in err and "slow" not in err, err


def test_sigterm_stops_a_run_within_a_second_with_a_clear_line(tmp_path: Path) -> None:
    process = start(tmp_path, slow(), "--json")
    wait_for_line(process, '"progress"')
    sent = time.monotonic()
    process.send_signal(signal.SIGTERM)
    code = process.wait(timeout=30)
    took = time.monotonic() - sent
    err = process.stderr.read()  # type: ignore[union-attr]
    assert code == 1 and took < 3.0, (code, took)
    assert "Traceback" not in err


def test_a_second_ctrl_c_stops_a_step_that_ignores_the_first(tmp_path: Path) -> None:
    process = start(tmp_path, blocking(), "--json")
    wait_for_line(process, '"node_type":"Block"')
    process.send_signal(signal.SIGINT)
    time.sleep(0.5)
    assert process.poll() is None  # the first Ctrl-C waits for the step
    sent = time.monotonic()
    process.send_signal(signal.SIGINT)
    code = process.wait(timeout=30)
    took = time.monotonic() - sent
    err = process.stderr.read()  # type: ignore[union-attr]
    assert code == 1 and took < 3.0, (code, took, err)
    assert "interrupting (in block (Block))" in err
    assert "stopped in block (Block)" in err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err


def test_sigterm_stops_a_step_that_ignores_it_after_a_grace_second(tmp_path: Path) -> None:
    process = start(tmp_path, blocking(), "--json")
    wait_for_line(process, '"node_type":"Block"')
    sent = time.monotonic()
    process.send_signal(signal.SIGTERM)
    code = process.wait(timeout=30)
    took = time.monotonic() - sent
    err = process.stderr.read()  # type: ignore[union-attr]
    assert code == 1 and 0.9 < took < 3.0, (code, took, err)
    assert "stopped in block (Block)" in err and "Traceback" not in err, err


def test_progress_bars_end_on_a_clean_line_when_stopped(tmp_path: Path) -> None:
    process = start(tmp_path, slow())
    time.sleep(4.0)
    process.send_signal(signal.SIGINT)
    code = process.wait(timeout=30)
    err = process.stderr.read()  # type: ignore[union-attr]
    assert code == 1 and "Traceback" not in err, err
    assert err.rstrip("\n").splitlines()[-1].startswith("interrupted"), err


def test_an_early_ctrl_c_prints_no_traceback(tmp_path: Path) -> None:
    process = start(tmp_path, slow())
    time.sleep(0.5)
    process.send_signal(signal.SIGINT)
    code = process.wait(timeout=60)
    err = process.stderr.read()  # type: ignore[union-attr]
    assert code == 1 and "Traceback" not in err and "interrupted" in err, err


def test_a_failure_is_printed_once(tmp_path: Path) -> None:
    failing = {
        "nodes": {
            "a": {"type": "Constant", "inputs": {"value": 2}},
            "bad": {"type": "Fail", "links": {"x": "a.value"}},
            "out": {"type": "ShowInt", "links": {"value": "bad.value"}},
        }
    }
    process = start(tmp_path, failing)
    code = process.wait(timeout=60)
    err = process.stderr.read()  # type: ignore[union-attr]
    assert code == 1 and err.count("boom") == 1, err


def test_an_interrupt_during_a_long_call_names_the_node_it_arrived_in(
    executor: Executor,
) -> None:
    testing_nodes.BLOCK_STARTED.clear()
    from engine.context import CancelToken

    cancel = CancelToken()
    results = []
    thread = threading.Thread(
        target=lambda: results.append(executor.run(blocking(seconds=0.5), cancel=cancel))
    )
    thread.start()
    assert testing_nodes.BLOCK_STARTED.wait(10)
    cancel.cancel()
    thread.join(30)
    (result,) = results
    assert result.status == "interrupted" and result.interrupted_at == "block"
