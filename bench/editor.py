"""The browser editor on loopback, in headless Chromium: page load to interactive, gzipped
bundle size, time to open a 200-node graph, and frame time while panning it.

Each figure has a baseline measured in the same run: loading a small JSON route of the same
server (the floor of a loopback navigation), the 400 KB size goal, opening a 2-node graph, and
the page's idle frame time. Needs the built bundle and /usr/bin/chromium.
Run: .venv/bin/python bench/editor.py
"""

from __future__ import annotations

import gzip
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "examples"))

from playwright.sync_api import sync_playwright  # noqa: E402

from tests.editor.conftest import BUNDLE, CHROMIUM, CHROMIUM_ARGS, Server  # noqa: E402

REPEATS = 5
SIZE_GOAL = 400 * 1024
# Collects requestAnimationFrame intervals (ms) for `ms` milliseconds.
FRAMES = """ms => new Promise(done => {
  const times = []; const start = performance.now();
  const tick = t => { times.push(t); if (t - start < ms) requestAnimationFrame(tick); else done(times.slice(1).map((x, i) => x - times[i])); };
  requestAnimationFrame(tick);
})"""


def big_graph(pairs: int) -> dict[str, Any]:
    nodes: dict[str, Any] = {}
    for i in range(pairs):
        nodes[f"text_{i}"] = {"type": "Text", "inputs": {"text": f"line {i}"}}
        nodes[f"show_{i}"] = {"type": "ShowText", "links": {"text": f"text_{i}.text"}}
    return {"version": 1, "nodes": nodes}


def bundle_gzip_bytes() -> tuple[int, int]:
    files = [BUNDLE, *(BUNDLE.parent / "assets").iterdir()]
    raw = sum(f.stat().st_size for f in files)
    return raw, sum(len(gzip.compress(f.read_bytes(), 9)) for f in files)


def open_time(page: Any, document: dict[str, Any]) -> float:
    count = len(document["nodes"])
    started = time.perf_counter()
    page.locator("[data-open-file]").set_input_files(
        {"name": "g.json", "mimeType": "application/json", "buffer": json.dumps(document).encode()}
    )
    page.wait_for_function(
        "n => window.latentgraph.store.getState().nodes.length === n && document.querySelector('.react-flow__node')",
        arg=count,
    )
    page.evaluate(FRAMES, 0)  # the next frame has been painted
    return time.perf_counter() - started


def pan_frames(page: Any) -> list[float]:
    box = page.locator(".react-flow__pane").bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.evaluate("() => { window.__frames = (" + FRAMES + ")(1500); }")
    end = time.perf_counter() + 1.4
    step = 0
    while time.perf_counter() < end:
        step += 1
        page.mouse.move(x - (step % 60) * 8, y - (step % 60) * 4)
    page.mouse.up()
    return page.evaluate("() => window.__frames")


def main() -> None:
    from demo_model import main as build_demo

    root = Path(tempfile.mkdtemp(prefix="lg-editor-bench-"))
    build_demo(root / "models", root / "input")
    server = Server(root, root / "models")
    server.start()
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            loads, floors = [], []
            for _ in range(REPEATS):
                context = browser.new_context(viewport={"width": 1600, "height": 900})
                page = context.new_page()
                started = time.perf_counter()
                page.goto(f"{server.url}/api/v1/system")
                floors.append(time.perf_counter() - started)
                started = time.perf_counter()
                page.goto(server.url)
                page.wait_for_selector("body[data-ready=true] .react-flow__node")
                loads.append(time.perf_counter() - started)
                context.close()
            context = browser.new_context(viewport={"width": 1600, "height": 900})
            page = context.new_page()
            page.goto(server.url)
            page.wait_for_selector("body[data-ready=true] .react-flow__node")
            small = [open_time(page, big_graph(1)) for _ in range(REPEATS)]
            large = [open_time(page, big_graph(100)) for _ in range(REPEATS)]
            idle = page.evaluate(FRAMES, 1500)
            panning = pan_frames(page)
            browser.close()
    finally:
        server.stop()
    raw, zipped = bundle_gzip_bytes()
    med = statistics.median
    p95 = lambda xs: sorted(xs)[int(0.95 * (len(xs) - 1))]  # noqa: E731
    print(
        f"machine: {platform.machine()}, {platform.python_version()}, {time.strftime('%Y-%m-%d')}"
    )
    print(
        f"page load to interactive: {med(loads) * 1000:.0f} ms (baseline JSON route {med(floors) * 1000:.0f} ms, ratio {med(loads) / med(floors):.1f})"
    )
    print(
        f"bundle: {raw / 1024:.0f} KB raw, {zipped / 1024:.0f} KB gzipped (ratio to the 400 KB goal {zipped / SIZE_GOAL:.2f})"
    )
    print(
        f"open 200 nodes: {med(large) * 1000:.0f} ms (2 nodes {med(small) * 1000:.0f} ms, ratio {med(large) / med(small):.1f})"
    )
    print(
        f"frame time panning 200 nodes: median {med(panning):.1f} ms, p95 {p95(panning):.1f} ms over {len(panning)} frames "
        f"(idle median {med(idle):.1f} ms, ratio {med(panning) / med(idle):.2f})"
    )


if __name__ == "__main__":
    main()
