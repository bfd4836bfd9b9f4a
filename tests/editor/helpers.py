"""Page actions for the editor's browser tests: only what a person does (palette, drags, typing)."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

TERMINAL = ("finished", "failed", "interrupted", "cancelled")


def node(page: Any, node_id: str) -> Any:
    return page.locator(f'.react-flow__node[data-id="{node_id}"]')


def status(page: Any, node_id: str) -> str:
    """The run status the node shows: done, cached, running, failed, stopped, or ""."""
    return str(node(page, node_id).locator(".lg-node").get_attribute("data-run-status"))


def new_graph(page: Any) -> None:
    page.click("[data-new]")
    page.wait_for_function("() => window.latentgraph.store.getState().nodes.length === 0")


def add_node(page: Any, node_type: str, x: float, y: float) -> str:
    """Drag a node type from the palette onto the canvas at (x, y) of the canvas; returns its id."""
    before = set(node_ids(page))
    page.locator(f'[data-palette="{node_type}"]').drag_to(
        page.locator(".react-flow__pane"), target_position={"x": x, "y": y}
    )
    page.wait_for_function(
        f"() => window.latentgraph.store.getState().nodes.length === {len(before) + 1}"
    )
    (added,) = set(node_ids(page)) - before
    return added


def node_ids(page: Any) -> list[str]:
    return page.evaluate("window.latentgraph.store.getState().nodes.map(n => n.id)")


def handle(page: Any, node_id: str, name: str, kind: str) -> Any:
    return page.locator(
        f'.react-flow__handle.{kind}[data-nodeid="{node_id}"][data-handleid="{name}"]'
    )


def drag_link(page: Any, source: str, output: str, target: str, input_name: str) -> None:
    """Drag from an output socket to an input socket with the mouse."""
    start = handle(page, source, output, "source").bounding_box()
    end = handle(page, target, input_name, "target").bounding_box()
    page.mouse.move(start["x"] + start["width"] / 2, start["y"] + start["height"] / 2)
    page.mouse.down()
    page.mouse.move(end["x"] + 20, end["y"] + 20, steps=5)
    page.mouse.move(end["x"] + end["width"] / 2, end["y"] + end["height"] / 2, steps=5)
    page.mouse.up()


def links(page: Any) -> set[tuple[str, str, str, str]]:
    edges = page.evaluate("window.latentgraph.store.getState().edges")
    return {(e["source"], e["sourceHandle"], e["target"], e["targetHandle"]) for e in edges}


def set_input(page: Any, node_id: str, name: str, value: str) -> None:
    """Type a value into a node's widget (select for choices) and commit it."""
    field = node(page, node_id).locator(f'[data-input="{name}"]')
    tag = field.evaluate("e => e.tagName")
    if tag == "SELECT":
        field.select_option(value)
    else:
        field.fill(value)
        field.press("Tab")


def doc(page: Any) -> dict[str, Any]:
    """The graph document the editor would save."""
    return page.evaluate("window.latentgraph.store.getState().doc()")


def run_and_wait(page: Any, timeout: float = 120_000) -> dict[str, Any]:
    """Press Ctrl+Enter and wait for the job the page shows to end; returns its run state."""
    before = page.evaluate("window.latentgraph.store.getState().shownJob")
    page.locator(".react-flow__pane").click(position={"x": 5, "y": 5})
    page.keyboard.press("Control+Enter")
    page.wait_for_function(
        "prev => { const s = window.latentgraph.store.getState(); return s.shownJob && s.shownJob !== prev; }",
        arg=before,
    )
    return wait_for_end(page, timeout)


def wait_for_end(page: Any, timeout: float = 120_000) -> dict[str, Any]:
    page.wait_for_function(
        "t => { const s = window.latentgraph.store.getState(); const r = s.runs[s.shownJob]; return r && t.includes(r.status); }",
        arg=list(TERMINAL),
        timeout=timeout,
    )
    return page.evaluate("(s => s.runs[s.shownJob])(window.latentgraph.store.getState())")


def job_events(url: str, job_id: str) -> list[dict[str, Any]]:
    """A job's whole event log. It is read page by page: one page holds at most 1000 events,
    and a long job's first page ends with a `progress` event, not its terminal one."""
    events: list[dict[str, Any]] = []
    while True:
        after = events[-1]["data"]["seq"] if events else 0
        query = f"{url}/api/v1/jobs/{job_id}/events?after_seq={after}"
        with urllib.request.urlopen(query) as response:
            page = json.loads(response.read())
        events += page["events"]
        if not page["events"] or events[-1]["data"]["seq"] >= page["last_seq"]:
            return events


def open_example(page: Any, name: str) -> None:
    page.select_option("[data-examples]", name)
    page.wait_for_function("n => window.latentgraph.store.getState().name === n", arg=name)


def small_txt2img(page: Any, steps: int = 2, seed: int = 7) -> None:
    """The txt2img example at 64×64 with few steps, set through the widgets."""
    open_example(page, "txt2img")
    set_input(page, "latent", "width", "64")
    set_input(page, "latent", "height", "64")
    set_input(page, "sampler", "steps", str(steps))
    set_input(page, "sampler", "seed", str(seed))


def open_json(page: Any, document: dict[str, Any], name: str = "graph.json") -> None:
    """Open a graph file through the Open… file chooser."""
    page.locator("[data-open-file]").set_input_files(
        {"name": name, "mimeType": "application/json", "buffer": json.dumps(document).encode()}
    )
    page.wait_for_function(
        "n => window.latentgraph.store.getState().name === n", arg=name.removesuffix(".json")
    )


def drop_file(page: Any, data: bytes, name: str, mime: str) -> None:
    """Drop a file onto the canvas, as from a file manager."""
    page.evaluate(
        """([bytes, name, mime]) => {
            const file = new File([new Uint8Array(bytes)], name, { type: mime });
            const dt = new DataTransfer();
            dt.items.add(file);
            const target = document.querySelector('.canvas');
            for (const type of ['dragover', 'drop'])
                target.dispatchEvent(new DragEvent(type, { dataTransfer: dt, bubbles: true, cancelable: true }));
        }""",
        [list(data), name, mime],
    )


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url) as response:
        return json.loads(response.read())
