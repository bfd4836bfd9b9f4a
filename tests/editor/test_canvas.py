"""Canvas editing in the browser: clipboard copy/paste between tabs, duplicate, search at a point,
link drops that open a type-filtered search, literal inputs as sockets, groups, Escape."""

from __future__ import annotations

from typing import Any

from tests.editor.conftest import Server
from tests.editor.helpers import (
    doc,
    drag_link,
    handle,
    links,
    new_graph,
    node,
    node_ids,
    open_example,
)


def test_copy_paste_between_tabs_and_duplicate(page: Any, server: Server, browser: Any) -> None:
    open_example(page, "txt2img")
    node(page, "positive").locator(".lg-header").click()
    node(page, "checkpoint").locator(".lg-header").click(modifiers=["Control"])
    page.keyboard.press("Control+c")
    page.keyboard.press("Control+v")
    page.wait_for_function("() => window.latentgraph.store.getState().nodes.length === 9")
    pasted = doc(page)
    assert pasted["nodes"]["encode_text"]["links"] == {"clip": "load_checkpoint.clip"}
    assert (
        pasted["nodes"]["encode_text"]["inputs"]["text"]
        == doc(page)["nodes"]["positive"]["inputs"]["text"]
    )

    # The clipboard holds graph JSON, so another tab pastes the same nodes.
    other = page.context.new_page()
    other.goto(server.url)
    other.wait_for_selector("body[data-ready=true] .react-flow__node")
    other.click("[data-new]")
    other.locator(".react-flow__pane").click(position={"x": 300, "y": 300})
    other.keyboard.press("Control+v")
    other.wait_for_function("() => window.latentgraph.store.getState().nodes.length === 2")
    assert sorted(node_ids(other)) == ["encode_text", "load_checkpoint"] or sorted(
        node_ids(other)
    ) == ["checkpoint", "positive"]
    other.close()

    page.keyboard.press("Control+d")
    page.wait_for_function("() => window.latentgraph.store.getState().nodes.length === 11")
    page.keyboard.press("Escape")
    assert (
        page.evaluate("() => window.latentgraph.store.getState().nodes.some(n => n.selected)")
        is False
    )


def test_search_at_a_point_and_from_a_dropped_link(page: Any) -> None:
    open_example(page, "txt2img")
    pane = page.locator(".react-flow__pane")
    pane.dblclick(position={"x": 200, "y": 900})
    page.locator(".search-popup input").fill("empty lat")
    page.keyboard.press("Enter")
    page.wait_for_function(
        "() => window.latentgraph.store.getState().nodes.some(n => n.id === 'empty_latent')"
    )

    # Drop a link from the sampler's output on empty canvas: only nodes taking a LATENT are offered.
    start = handle(page, "sampler", "latent", "source").bounding_box()
    page.mouse.move(start["x"] + 4, start["y"] + 4)
    page.mouse.down()
    page.mouse.move(start["x"] + 150, start["y"] + 500, steps=8)
    page.mouse.up()
    results = page.locator("[data-search-result]")
    results.first.wait_for()
    offered = set(results.evaluate_all("els => els.map(e => e.dataset.searchResult)"))
    assert "VAEDecodeTiled" in offered and "LoadCheckpoint" not in offered
    page.locator(".search-popup input").fill("decodetiled")
    page.locator('[data-search-result="VAEDecodeTiled"]').click()
    assert ("sampler", "latent", "vaedecode_tiled", "latent") in links(page)


def test_literal_input_becomes_a_socket_and_back(page: Any) -> None:
    new_graph(page)
    page.locator('[data-palette="EmptyLatent"]').click()
    page.locator('[data-palette="Int"]').click()
    page.wait_for_function("() => window.latentgraph.store.getState().nodes.length === 2")
    latent = node(page, "empty_latent")
    latent.locator('[data-toggle-socket="width"]').click()
    assert latent.locator('[data-input="width"]').count() == 0
    drag_link(page, "int", "value", "empty_latent", "width")
    graph = doc(page)
    assert graph["nodes"]["empty_latent"]["links"] == {"width": "int.value"}
    assert "width" not in graph["nodes"]["empty_latent"]["inputs"]
    latent.locator('[data-toggle-socket="width"]').click()
    graph = doc(page)
    assert "links" not in graph["nodes"]["empty_latent"]
    assert graph["nodes"]["empty_latent"]["inputs"]["width"] == 512


def test_groups_are_kept_in_the_editor_layer(page: Any) -> None:
    open_example(page, "txt2img")
    # Shift+drag a box around the two prompts.
    first = node(page, "positive").bounding_box()
    last = node(page, "negative").bounding_box()
    page.keyboard.down("Shift")
    page.mouse.move(first["x"] - 12, first["y"] - 12)
    page.mouse.down()
    page.mouse.move(last["x"] + last["width"] + 12, last["y"] + last["height"] + 12, steps=6)
    page.mouse.up()
    page.keyboard.up("Shift")
    selected = "() => window.latentgraph.store.getState().nodes.filter(n => n.selected).map(n => n.id).sort()"
    assert page.evaluate(selected) == ["negative", "positive"]
    node(page, "latent").locator(".lg-header").click(modifiers=["Shift"])  # Shift+click adds one
    assert page.evaluate(selected) == ["latent", "negative", "positive"]
    node(page, "latent").locator(".lg-header").click(modifiers=["Shift"])  # and removes it again
    assert page.evaluate(selected) == ["negative", "positive"]
    page.keyboard.press("Control+g")
    page.locator('[data-group="Group"] .group-title').fill("Prompts")
    groups = doc(page)["editor"]["groups"]
    assert [g["title"] for g in groups] == ["Prompts"]
    page.reload()
    page.wait_for_selector("body[data-ready=true] .react-flow__node")
    assert doc(page)["editor"]["groups"] == groups
    assert page.locator('[data-group="Prompts"]').count() == 1


def test_groups_resize_move_with_their_nodes_and_undo(page: Any) -> None:
    """A group's edge resizes it; dragged by its title bar it carries the nodes inside it; both
    are saved in the editor layer and each is one undo step."""
    open_example(page, "txt2img")
    node(page, "positive").locator(".lg-header").click()
    page.keyboard.press("Control+g")
    group = page.locator('[data-group="Group"]')
    group.wait_for()
    zoom = page.evaluate("() => document.querySelector('.react-flow__viewport').style.transform")
    scale = float(zoom.split("scale(")[1].rstrip(")"))
    start = doc(page)
    (box,) = start["editor"]["groups"]

    # Widen it by its bottom-right handle, 80 screen pixels to the right.
    right = group.locator(".react-flow__resize-control.handle.bottom.right").bounding_box()
    x0, y0 = right["x"] + right["width"] / 2, right["y"] + right["height"] / 2
    page.mouse.move(x0, y0)
    page.mouse.down()
    page.mouse.move(x0 + 2, y0)
    page.mouse.move(x0 + 80, y0, steps=6)
    page.mouse.up()
    resized = doc(page)
    (wide,) = resized["editor"]["groups"]
    assert wide["bounding"][:2] == box["bounding"][:2] and wide["bounding"][3] == box["bounding"][3]
    assert abs(wide["bounding"][2] - box["bounding"][2] - 80 / scale) < 4, (wide, box, scale)
    assert resized["editor"]["nodes"] == start["editor"]["nodes"]

    # Drag the group's grip by (200, 100) screen pixels (React Flow starts a drag after the
    # first small move, which it does not count).
    grip = group.locator(".group-grip").bounding_box()
    x0, y0 = grip["x"] + grip["width"] / 2, grip["y"] + grip["height"] / 2
    page.mouse.move(x0, y0)
    page.mouse.down()
    page.mouse.move(x0 + 2, y0 + 1)
    page.mouse.move(x0 + 200, y0 + 100, steps=8)
    page.mouse.up()
    moved = doc(page)
    (after,) = moved["editor"]["groups"]
    dx = after["bounding"][0] - wide["bounding"][0]
    dy = after["bounding"][1] - wide["bounding"][1]
    assert abs(dx - 200 / scale) < 4 and abs(dy - 100 / scale) < 4, (dx, dy, scale)
    assert after["bounding"][2:] == wide["bounding"][2:]
    for node_id, entry in start["editor"]["nodes"].items():
        x, y = entry["position"]
        nx, ny = moved["editor"]["nodes"][node_id]["position"]
        if node_id == "positive":  # inside the group: moved with it, exactly as far
            assert abs(nx - x - dx) < 0.11 and abs(ny - y - dy) < 0.11
        else:
            assert (nx, ny) == (x, y), node_id

    # Undo: first the move (group and node together), then the resize; redo brings both back.
    page.locator(".react-flow__pane").click(position={"x": 5, "y": 5})
    page.keyboard.press("Control+z")
    assert doc(page) == resized
    page.keyboard.press("Control+z")
    assert doc(page) == start
    page.keyboard.press("Control+Shift+z")
    page.keyboard.press("Control+Shift+z")
    assert doc(page) == moved

    # What is on the screen follows the state: the group's box is drawn at its saved size.
    shown = group.bounding_box()
    assert abs(shown["width"] - after["bounding"][2] * scale) < 3
