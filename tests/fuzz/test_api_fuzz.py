"""OpenAPI-driven fuzzing (schemathesis) of a real `latentgraph serve` on 127.0.0.1.

Requests are generated from docs/api/openapi.json, valid and invalid. The contract: never a
5xx; every 4xx is our JSON error body; the server's log holds no traceback; and afterwards the
server still answers.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = schemathesis.openapi.from_path(ROOT / "docs" / "api" / "openapi.json")
# The websocket upgrade is fuzzed by test_ws_fuzz; its HTTP form is only a 400.
OPERATIONS = [op.ok() for op in SCHEMA.get_all_operations() if op.ok().path != "/ws"]
CASES = st.one_of(
    *(op.as_strategy(generation_mode=mode) for op in OPERATIONS for mode in GenerationMode)
)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    root = tmp_path_factory.mktemp("serve")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = root / "server.log"
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "LATENTGRAPH_NODE_MODULES": "tests.engine.testing_nodes",
    }
    with log.open("w") as sink:
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "latentgraph_cli", "serve", "--port", str(port)),
                *("--models", str(root / "models"), "--input", str(root / "input")),
                *("--output", str(root / "output")),
            ],
            cwd=root,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            requests.get(f"{url}/api/v1/queue", timeout=2)
            break
        except requests.ConnectionError:
            if process.poll() is not None:
                raise RuntimeError(log.read_text()) from None
            time.sleep(0.2)
    try:
        yield url, log
    finally:
        process.terminate()
        process.wait(timeout=30)


@settings(
    max_examples=600,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
@given(case=CASES)
def test_no_request_from_the_openapi_file_gets_a_5xx(
    served: tuple[str, Path], case: object
) -> None:
    url, _ = served
    response = case.call(base_url=url, timeout=30)  # type: ignore[attr-defined]
    assert response.status_code < 500, (response.status_code, response.text[:500])
    if response.status_code >= 400:
        body = json.loads(response.content)
        assert isinstance(body.get("error"), str) and isinstance(body.get("message"), str), body


def test_the_server_still_answers_and_logged_no_traceback(served: tuple[str, Path]) -> None:
    url, log = served
    assert requests.get(f"{url}/api/v1/system", timeout=30).status_code == 200
    assert "Traceback" not in log.read_text()
