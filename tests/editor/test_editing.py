"""Editing in the browser: refused links, validation errors on the right input, saving and
reopening, undo/redo, and the example graphs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.editor.conftest import ROOT, Console, Server
from tests.editor.helpers import (
    doc,
    drag_link,
    get_json,
    links,
    new_graph,
    node,
    open_example,
    open_json,
    run_and_wait,
    set_input,
)


def test_incompatible_link_is_refused_with_the_reason(page: Any) -> None:
    open_example(page, "txt2img")
    before = links(page)
    drag_link(page, "checkpoint", "vae", "sampler", "model")
    notice = page.locator("[data-notice]")
    notice.wait_for()
    assert "Link refused: VAE cannot feed model (MODEL)" in notice.inner_text()
    assert links(page) == before


def test_a_bad_value_is_shown_on_its_input_and_nothing_runs(
    page: Any, server: Server, console: Console
) -> None:
    console.allow("status of 400")  # Chromium logs the submission's 400 answer, which we expect
    open_example(page, "txt2img")
    set_input(page, "latent", "width", "65")
    jobs_before = get_json(f"{server.url}/api/v1/jobs")["total"]
    page.locator(".react-flow__pane").click(position={"x": 5, "y": 5})
    page.keyboard.press("Control+Enter")
    error = node(page, "latent").locator('[data-error-input="width"]')
    error.wait_for()
    assert "multiple of 8" in error.inner_text()
    assert "has-error" in (node(page, "latent").locator(".lg-node").get_attribute("class") or "")
    assert "latent.width" in page.locator("[data-notice]").inner_text()
    assert get_json(f"{server.url}/api/v1/jobs")["total"] == jobs_before
    assert page.evaluate("window.latentgraph.store.getState().shownJob") is None


def test_save_reload_and_reopen_give_the_same_graph_with_positions(
    page: Any, tmp_path: Path
) -> None:
    open_example(page, "txt2img")
    header = node(page, "decode").locator(".lg-header")
    box = header.bounding_box()
    page.mouse.move(box["x"] + 30, box["y"] + 10)
    page.mouse.down()
    page.mouse.move(box["x"] + 130, box["y"] + 90, steps=8)
    page.mouse.up()
    set_input(page, "positive", "text", "a lighthouse at dusk")
    edited = doc(page)
    assert edited["editor"]["nodes"]["decode"]["position"] != [980, 120]

    page.reload()
    page.wait_for_selector("body[data-ready=true] .react-flow__node")
    assert doc(page) == edited  # browser storage kept it, positions included

    with page.expect_download() as download:
        page.get_by_role("button", name="Save", exact=True).click()
    saved = tmp_path / "saved.json"
    download.value.save_as(saved)
    assert json.loads(saved.read_text()) == edited
    new_graph(page)
    open_json(page, json.loads(saved.read_text()), "saved.json")
    assert doc(page) == edited


def test_undo_and_redo_restore_exact_states(page: Any) -> None:
    open_example(page, "txt2img")
    states = [doc(page)]
    set_input(page, "sampler", "cfg", "5")
    states.append(doc(page))
    drag_link(page, "negative", "conditioning", "sampler", "positive")  # replaces a link
    states.append(doc(page))
    node(page, "decode").locator(".lg-header").click()
    page.keyboard.press("Delete")
    page.wait_for_function(
        "() => !window.latentgraph.store.getState().nodes.some(n => n.id === 'decode')"
    )
    states.append(doc(page))
    assert "decode" not in states[-1]["nodes"]
    assert "images" not in states[-1]["nodes"]["save"].get("links", {})  # its links went with it
    assert states[2]["nodes"]["sampler"]["links"]["positive"] == "negative.conditioning"

    for expected in reversed(states[:-1]):
        page.keyboard.press("Control+z")
        assert doc(page) == expected
    for expected in states[1:]:
        page.keyboard.press("Control+Shift+z")
        assert doc(page) == expected


def test_every_example_graph_opens_with_a_sensible_layout(page: Any) -> None:
    for path in sorted((ROOT / "graphs").glob("*.json")):
        open_example(page, path.stem)
        document = json.loads(path.read_text())
        opened = doc(page)
        assert opened["nodes"].keys() == document["nodes"].keys()
        for node_id, entry in document["nodes"].items():
            assert opened["nodes"][node_id].get("links", {}) == entry.get("links", {})
        boxes = page.evaluate(
            "window.latentgraph.store.getState().nodes.map(n => [n.position.x, n.position.y, n.measured?.width ?? 260, n.measured?.height ?? 100])"
        )
        for i, (x, y, w, h) in enumerate(boxes):
            for x2, y2, w2, h2 in boxes[i + 1 :]:
                overlap = x < x2 + w2 and x2 < x + w and y < y2 + h2 and y2 < y + h
                assert not overlap, f"{path.name}: nodes overlap"

    open_example(page, "hello")
    run = run_and_wait(page)
    assert run["status"] == "finished"
    assert "hello from latentgraph" in node(page, "show").inner_text()
