"""The editor in Firefox: Debian's firefox-esr, driven over WebDriver BiDi by puppeteer-core
(editor/e2e/firefox-smoke.mjs), against a real `latentgraph serve` on 127.0.0.1. Playwright's own
Firefox build cannot be fetched here, and Playwright cannot drive a stock Firefox."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIREFOX = os.environ.get("LATENTGRAPH_FIREFOX", "/usr/bin/firefox-esr")
SCRIPT = ROOT / "editor" / "e2e" / "firefox-smoke.mjs"

if not Path(FIREFOX).exists():
    pytest.skip(
        f"no Firefox at {FIREFOX}: the editor's Firefox smoke test is skipped "
        "(install Debian's `firefox-esr`, or set LATENTGRAPH_FIREFOX)",
        allow_module_level=True,
    )
if shutil.which("node") is None or not (ROOT / "editor/node_modules/puppeteer-core").is_dir():
    pytest.skip(
        "node or editor/node_modules/puppeteer-core is missing: the Firefox smoke test is "
        "skipped (run `npm ci` in editor/, as `make test` does)",
        allow_module_level=True,
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_the_editor_loads_and_runs_a_graph_in_firefox(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    server = subprocess.Popen(
        [sys.executable, "-m", "latentgraph_cli", "serve", "--port", str(port),
         "--models", str(tmp_path / "models"), "--input", str(tmp_path / "input"),
         "--output", str(tmp_path / "output")],
        cwd=ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1"},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                urllib.request.urlopen(f"{url}api/v1/system", timeout=2).close()
                break
            except OSError:
                assert server.poll() is None, server.stderr.read().decode() if server.stderr else ""
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.2)
        smoke = subprocess.run(
            ["node", str(SCRIPT), url, FIREFOX],
            cwd=ROOT / "editor", capture_output=True, text=True, timeout=280,
        )  # fmt: skip
        assert smoke.returncode == 0, smoke.stderr[-3000:]
        result = json.loads(smoke.stdout.strip().splitlines()[-1])
    finally:
        server.terminate()
        server.wait(30)
    assert result["browser"].startswith("firefox/")
    assert {"Text", "ShowText", "Sample", "LoadCheckpoint"} <= set(result["palette"])
    assert result["status"] == "finished"
    assert result["shown"] == "hello from latentgraph"
    assert result["errors"] == []
