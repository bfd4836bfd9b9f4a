"""Fixtures for the editor's end-to-end tests: a real `latentgraph serve` on the tiny models, and
headless Chromium driven by Playwright. Every test fails on any browser console error."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("LATENTGRAPH_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
BUNDLE = ROOT / "server" / "static" / "editor" / "index.html"

if not Path(CHROMIUM).exists() or shutil.which(CHROMIUM) is None:
    pytest.skip(
        f"no Chromium at {CHROMIUM}: the editor's browser tests are skipped "
        "(install Debian's `chromium`, or set LATENTGRAPH_CHROMIUM)",
        allow_module_level=True,
    )
playwright_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Server:
    """A `latentgraph serve` process on fixed folders and port, which a test may restart."""

    def __init__(self, root: Path, models: Path, token: str | None = None) -> None:
        self.token = token
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.models, self.input, self.output = models, root / "input", root / "output"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "latentgraph_cli", "serve", "--port", str(self.port),
             "--models", str(self.models), "--input", str(self.input), "--output", str(self.output),
             *(["--token", self.token] if self.token else [])],
            # One torch thread: on a 2-core machine the server's runs then leave a core to the
            # browser, whatever priority the scheduler gives each. Playwright starts Chromium in a
            # session of its own, so a test run started at a raised priority (as a local CI
            # harness did) starved its renderer while a 512 px run used both cores.
            cwd=ROOT, env={**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"},
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{self.url}/api/v1/system", timeout=2).close()
                return
            except urllib.error.HTTPError:
                return  # it answers (401 with a token)
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.process.kill()
                    err = self.process.stderr.read().decode() if self.process.stderr else ""
                    raise AssertionError(f"the server did not start: {err}") from None
                time.sleep(0.1)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(30)
        self.process = None


# Package scope: the server and browser end with the editor tests, not with the whole run.
@pytest.fixture(scope="package")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for the editor tests, on the tiny SD1 models and the example input image."""
    if not BUNDLE.exists():
        pytest.fail("the editor bundle is not built: run `make editor`")
    sys.path.insert(0, str(ROOT / "examples"))
    from example_inputs import main as write_example_inputs

    from nodes.sd.tiny_models import build_tiny_models

    root = tmp_path_factory.mktemp("editor-e2e")
    build_tiny_models(root / "models")
    write_example_inputs(root / "input")
    running = Server(root, root / "models")
    running.start()
    yield running
    running.stop()


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    with playwright_api.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield launched
        launched.close()


class Console:
    """Console errors and uncaught page errors seen during a test."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.allowed: list[str] = []

    def allow(self, fragment: str) -> None:
        """Tolerate errors containing `fragment` (a test that provokes them on purpose)."""
        self.allowed.append(fragment)

    def unexpected(self) -> list[str]:
        return [e for e in self.errors if not any(a in e for a in self.allowed)]


@pytest.fixture
def console() -> Console:
    return Console()


FUNCTION_SOURCE = re.compile(r"^\s*(\(?[\w\s,]*\)?\s*=>|function\b)")


def _functions_only(wait_for_function: Any) -> Any:
    """`page.wait_for_function` that refuses a bare expression. Playwright evaluates a function's
    source once, from DevTools, then calls it; a bare expression it evaluates again at every poll
    with the page's own `eval`, which the editor's Content Security Policy forbids, so such a wait
    fails (an EvalError and a console error) whenever its condition is not already true."""

    def checked(expression: str, *args: Any, **kwargs: Any) -> Any:
        if not FUNCTION_SOURCE.match(expression):
            raise AssertionError(
                f"wait_for_function needs a function, like '() => ...': {expression}"
            )
        return wait_for_function(expression, *args, **kwargs)

    return checked


@pytest.fixture
def page(browser: Any, server: Server, console: Console) -> Iterator[Any]:
    """A fresh tab (empty storage) on the editor, loaded and ready; fails on console errors."""
    context = browser.new_context(viewport={"width": 1800, "height": 1100}, accept_downloads=True)
    tab = context.new_page()
    tab.on("console", lambda m: console.errors.append(m.text) if m.type == "error" else None)
    tab.on("pageerror", lambda e: console.errors.append(f"page error: {e}"))
    tab.set_default_timeout(30_000)
    tab.wait_for_function = _functions_only(tab.wait_for_function)
    tab.goto(server.url)
    tab.wait_for_selector("body[data-ready=true] .react-flow__node")
    yield tab
    context.close()
    assert console.unexpected() == [], f"browser console errors: {console.unexpected()}"
