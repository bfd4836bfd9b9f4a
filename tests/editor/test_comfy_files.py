"""ComfyUI workflows opened in the browser editor: API-format JSON and editor-format workflows
through Open…, a ComfyUI PNG dropped on the canvas, and a workflow that cannot be converted.
The server converts them (POST /api/v1/graphs/convert); the page loads our graph with positions."""

from __future__ import annotations

import io
import json
import urllib.request
from typing import Any

from PIL import Image, PngImagePlugin

from tests.comfy.workflows import api_txt2img, workflow_txt2img
from tests.editor.conftest import Server
from tests.editor.helpers import doc, drop_file, node, open_json


def converted(server: Server, document: Any) -> dict[str, Any]:
    """What the server's convert route makes of a document (the page must show this graph)."""
    request = urllib.request.Request(
        f"{server.url}/api/v1/graphs/convert",
        data=json.dumps({"document": document}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request) as response:
        return json.loads(response.read())["graph"]


def shown_types(page: Any) -> list[str]:
    return sorted(
        page.locator(".react-flow__node-graph .lg-node").evaluate_all(
            "els => els.map(e => e.dataset.nodeType)"
        )
    )


def assert_on_canvas(page: Any, graph: dict[str, Any]) -> None:
    """The page holds `graph`'s nodes, links and positions, and draws each node."""
    loaded = doc(page)
    assert set(loaded["nodes"]) == set(graph["nodes"])
    for node_id, entry in graph["nodes"].items():
        assert loaded["nodes"][node_id]["type"] == entry["type"]
        assert loaded["nodes"][node_id].get("links", {}) == entry.get("links", {})
        # Positions as converted (an API-format prompt has none: the editor lays those out).
        position = graph["editor"]["nodes"][node_id].get("position")
        shown = loaded["editor"]["nodes"][node_id]["position"]
        assert shown == position if position is not None else len(shown) == 2
    assert shown_types(page) == sorted(e["type"] for e in graph["nodes"].values())


def test_comfyui_api_format_opens_as_our_graph(page: Any, server: Server) -> None:
    prompt = api_txt2img()
    open_json(page, prompt, "comfy_api.json")
    expected = converted(server, prompt)
    assert_on_canvas(page, expected)
    assert "Sample" in shown_types(page) and "KSampler" not in shown_types(page)
    assert "converted from comfyui-api" in page.locator("[data-notice]").inner_text()
    sampler = next(i for i, e in expected["nodes"].items() if e["type"] == "Sample")
    assert doc(page)["nodes"][sampler]["inputs"]["sampler"] == "euler_ancestral"


def test_comfyui_editor_workflow_keeps_positions_and_groups(page: Any, server: Server) -> None:
    workflow = workflow_txt2img()
    open_json(page, workflow, "comfy_workflow.json")
    expected = converted(server, workflow)
    assert_on_canvas(page, expected)
    # The KSampler sits where ComfyUI had it, and the group came along.
    positions = [e["position"] for e in doc(page)["editor"]["nodes"].values()]
    assert [863, 186] in positions
    assert [g["title"] for g in doc(page)["editor"]["groups"]] == ["Prompts"]
    assert page.locator('[data-group="Prompts"]').count() == 1


def test_a_comfyui_png_dropped_on_the_canvas_opens(page: Any, server: Server) -> None:
    info = PngImagePlugin.PngInfo()
    info.add_text("prompt", json.dumps(api_txt2img()))
    info.add_text("workflow", json.dumps(workflow_txt2img()))
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(buffer, format="PNG", pnginfo=info)
    drop_file(page, buffer.getvalue(), "ComfyUI_00001_.png", "image/png")
    page.wait_for_function("() => window.latentgraph.store.getState().name === 'ComfyUI_00001_'")
    expected = converted(server, {"prompt": api_txt2img(), "workflow": workflow_txt2img()})
    assert_on_canvas(page, expected)
    assert [863, 186] in [e["position"] for e in doc(page)["editor"]["nodes"].values()]


def test_a_workflow_that_cannot_be_converted_says_why(page: Any, console: Any) -> None:
    console.allow("400")  # the browser logs the convert route's 400
    before = doc(page)
    prompt = api_txt2img()
    prompt["5"]["class_type"] = "UpscaleModelLoader"
    page.locator("[data-open-file]").set_input_files(
        {"name": "bad.json", "mimeType": "application/json", "buffer": json.dumps(prompt).encode()}
    )
    notice = page.locator("[data-notice]")
    notice.wait_for()
    text = notice.inner_text()
    assert "Could not open bad.json" in text
    details = notice.locator("[data-notice-details] li").all_inner_texts()
    assert any("node 5" in d and "UpscaleModelLoader" in d for d in details), details
    assert doc(page) == before  # the graph on the canvas is untouched
    assert node(page, "sampler").count() == 1
