"""Build txt2img from an empty canvas with the palette and drags, run it, then change only the seed."""

from __future__ import annotations

from typing import Any

from tests.editor.conftest import Server
from tests.editor.helpers import (
    add_node,
    drag_link,
    job_events,
    links,
    new_graph,
    node,
    run_and_wait,
    set_input,
    status,
)

WIRING = [
    ("checkpoint", "clip", "positive", "clip"),
    ("checkpoint", "clip", "negative", "clip"),
    ("checkpoint", "model", "sampler", "model"),
    ("positive", "conditioning", "sampler", "positive"),
    ("negative", "conditioning", "sampler", "negative"),
    ("latent", "latent", "sampler", "latent"),
    ("checkpoint", "vae", "decode", "vae"),
    ("sampler", "latent", "decode", "latent"),
    ("decode", "image", "save", "images"),
]


def build_txt2img(page: Any) -> dict[str, str]:
    new_graph(page)
    ids = {
        "checkpoint": add_node(page, "LoadCheckpoint", 40, 40),
        "positive": add_node(page, "EncodeText", 340, 40),
        "negative": add_node(page, "EncodeText", 340, 330),
        "latent": add_node(page, "EmptyLatent", 340, 620),
        "sampler": add_node(page, "Sample", 660, 40),
        "decode": add_node(page, "VAEDecode", 980, 40),
        "save": add_node(page, "SaveImage", 980, 260),
    }
    for source, output, target, input_name in WIRING:
        drag_link(page, ids[source], output, ids[target], input_name)
    expected = {(ids[s], o, ids[t], i) for s, o, t, i in WIRING}
    assert links(page) == expected
    set_input(page, ids["checkpoint"], "checkpoint", "tiny-sd1.safetensors")
    set_input(page, ids["positive"], "text", "a red fox in the snow")
    set_input(page, ids["negative"], "text", "blurry")
    set_input(page, ids["latent"], "width", "64")
    set_input(page, ids["latent"], "height", "64")
    set_input(page, ids["sampler"], "steps", "3")
    set_input(page, ids["sampler"], "seed", "7")
    set_input(page, ids["save"], "prefix", "editor")
    return ids


def test_build_txt2img_run_it_then_change_only_the_seed(page: Any, server: Server) -> None:
    ids = build_txt2img(page)
    run = run_and_wait(page)
    assert run["status"] == "finished", run
    image = node(page, ids["save"]).locator("img[data-output-image]")
    image.wait_for()
    filename = image.get_attribute("data-output-image")
    assert (server.output / filename).is_file()
    assert page.locator("[data-gallery-image]").count() == 0  # the gallery tab is not open
    page.click('[data-tab="gallery"]')
    assert page.locator(f'[data-gallery-image="{filename}"]').count() == 1
    statuses = {i: status(page, i) for i in ids.values()}
    assert set(statuses.values()) == {"done"}, statuses  # a first run runs every node
    # Each finished node shows its time.
    assert node(page, ids["sampler"]).locator('[data-badge="time"]').count() == 1

    set_input(page, ids["sampler"], "seed", "8")
    run = run_and_wait(page)
    assert run["status"] == "finished", run
    reran = {ids["sampler"], ids["decode"], ids["save"]}
    for name, node_id in ids.items():
        shown = status(page, node_id)
        assert shown == ("done" if node_id in reran else "cached"), (name, shown)
        if node_id not in reran:
            assert node(page, node_id).locator('[data-badge="cached"]').count() == 1
    events = job_events(server.url, run["jobId"])
    started = {e["data"]["node_id"] for e in events if e["type"] == "node_started"}
    assert started == reran
    cached = next(e for e in events if e["type"] == "nodes_cached")["data"]["nodes"]
    assert set(cached) == set(ids.values()) - reran
    assert [e["seq"] for e in run["log"]] == [e["data"]["seq"] for e in events]
