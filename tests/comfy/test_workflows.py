"""ComfyUI workflows convert, validate and run on the tiny models, giving our hand-written graphs' images."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image as PILImage

from engine.config import Paths
from engine.executor import Executor
from engine.formats import convert_document
from nodes.comfy.mapping import CLASSES
from tests.comfy import workflows


def run(executor: Executor, document: Any) -> dict[str, np.ndarray]:
    """Convert (if needed), run, and read back each saved image, by the node id the user wrote."""
    converted = convert_document(document, executor.registry)
    result = executor.run(converted.document)
    assert result.status == "finished", result.error
    layout = converted.document.get("editor", {}).get("nodes", {})
    images = {}
    for node_id, ui in result.ui.items():
        (saved,) = (ui or {})["images"]
        path = executor.paths.output / saved["subfolder"] / saved["filename"]
        images[layout.get(node_id, {}).get("comfy_id", node_id)] = np.asarray(PILImage.open(path))
    return images


def test_api_txt2img_gives_the_hand_written_graphs_image(executor: Executor) -> None:
    comfy = run(executor, workflows.api_txt2img())
    ours = run(executor, workflows.ours_txt2img())
    assert comfy["9"].shape == (64, 64, 3)
    assert np.array_equal(comfy["9"], ours["save"])


def test_clip_set_last_layer_becomes_clip_skip_on_the_encoders_it_feeds(executor: Executor) -> None:
    converted = convert_document(workflows.api_txt2img(), executor.registry)
    nodes = converted.document["nodes"]
    assert nodes["n6"]["inputs"]["clip_skip"] == 2 and nodes["n6"]["links"]["clip"] == "n4.clip"
    assert "clip_skip" not in nodes["n7"]["inputs"]
    assert nodes["n3"]["inputs"]["convention"] == "comfyui"  # ComfyUI's conventions are on
    assert nodes["n9"]["inputs"]["quantize"] == "truncate"


def test_clip_skip_holds_through_a_lora_loader(executor: Executor) -> None:
    prompt = workflows.api_controlnet_lora()
    prompt["10"] = {"class_type": "CLIPSetLastLayer", "inputs": {"stop_at_clip_layer": -3, "clip": ["4", 1]}}  # fmt: skip
    prompt["30"]["inputs"]["clip"] = ["10", 0]
    nodes = convert_document(prompt, executor.registry).document["nodes"]
    assert nodes["n30"]["links"]["clip"] == "n4.clip"
    assert nodes["n6"]["inputs"]["clip_skip"] == 3 and nodes["n7"]["inputs"]["clip_skip"] == 3


def test_editor_workflow_with_reroute_primitive_muted_and_bypassed_nodes(
    executor: Executor,
) -> None:
    workflow = workflows.workflow_txt2img()
    converted = convert_document(workflow, executor.registry)
    assert converted.format == "comfyui-workflow"
    nodes, editor = converted.document["nodes"], converted.document["editor"]
    assert set(nodes) == {"n4", "n6", "n7", "n5", "n3", "n8", "n9"}  # no reroute, muted, note...
    assert nodes["n3"]["inputs"]["seed"] == 7  # from the primitive, not the stale widget value
    assert nodes["n8"]["links"] == {"latent": "n3.latent", "vae": "n4.vae"}  # bypass, reroute
    assert editor["nodes"]["n6"]["title"] == "Positive"
    assert editor["nodes"]["n4"]["position"] == [26.0, 474.0]
    assert editor["groups"] == [{"title": "Prompts", "bounding": [400, 100, 400, 400]}]
    from_editor = run(executor, workflow)
    assert np.array_equal(from_editor["9"], run(executor, workflows.ours_txt2img())["save"])


def test_inpainting_and_masked_img2img(executor: Executor) -> None:
    comfy = run(executor, workflows.api_inpaint_img2img())
    ours = run(executor, workflows.ours_inpaint_img2img())
    assert np.array_equal(comfy["9"], ours["save"])
    assert np.array_equal(comfy["27"], ours["save2"])
    # Masked img2img keeps the unmasked pixels close to the input; the masked square changes.
    source = np.asarray(PILImage.open(executor.paths.input / "hint.png").convert("RGB"))
    diff = np.abs(comfy["27"].astype(int) - source.astype(int)).mean(axis=2)
    assert diff[16:40, 16:48].mean() > diff[48:, :].mean()


def test_controlnet_and_lora(executor: Executor) -> None:
    comfy = run(executor, workflows.api_controlnet_lora())
    ours = run(executor, workflows.ours_controlnet_lora())
    assert np.array_equal(comfy["9"], ours["save"])


def test_ksampler_advanced_two_passes_equal_one_deterministic_pass(executor: Executor) -> None:
    two_passes = run(executor, workflows.api_advanced())
    single = run(executor, workflows.ours_advanced_single_pass())
    assert np.array_equal(two_passes["9"], single["save"])


def test_every_other_mapped_class_runs(executor: Executor) -> None:
    images = run(executor, workflows.api_misc())
    # 72x48 scaled by 1.5 is 108x72, encoded (cropped to 104x72), resized to 64x64 then x1.5.
    assert images["61"].shape == (96, 96, 3)


def test_the_test_workflows_cover_every_mapped_class() -> None:
    used: set[str] = set()
    for make in (
        workflows.api_txt2img,
        workflows.api_inpaint_img2img,
        workflows.api_controlnet_lora,
        workflows.api_advanced,
        workflows.api_misc,
    ):
        used |= {entry["class_type"] for entry in make().values()}
    used |= {n["type"] for n in workflows.workflow_txt2img()["nodes"]}
    assert set(CLASSES) <= used


@pytest.mark.parametrize("chunks", [("prompt",), ("workflow",), ("prompt", "workflow")])
def test_a_comfyui_png_opens_like_a_graph_file(
    executor: Executor, folders: Paths, tmp_path: Path, chunks: tuple[str, ...]
) -> None:
    import json

    from PIL import PngImagePlugin

    from engine.formats import read_document

    info = PngImagePlugin.PngInfo()
    texts = {"prompt": workflows.api_txt2img(), "workflow": workflows.workflow_txt2img()}
    for key in chunks:
        info.add_text(key, json.dumps(texts[key]))
    png = tmp_path / "ComfyUI_00001_.png"
    PILImage.new("RGB", (8, 8)).save(png, pnginfo=info)
    converted = convert_document(read_document(png, executor.registry), executor.registry)
    nodes = converted.document["nodes"]
    assert nodes["n3"]["type"] == "Sample" and nodes["n3"]["inputs"]["seed"] == 7
    if "workflow" in chunks:  # positions come from the editor workflow
        assert converted.document["editor"]["nodes"]["n4"]["position"] == [26.0, 474.0]


def test_a_simple_subgraph_is_flattened_with_comfyuis_execution_ids(executor: Executor) -> None:
    workflow = workflows.workflow_txt2img()
    decode = next(n for n in workflow["nodes"] if n["id"] == 8)
    workflow["nodes"].remove(decode)
    workflow["nodes"].append(
        {"id": 20, "type": "5f2b6c1e-subgraph", "pos": [1209, 188], "mode": 0,
         "inputs": [{"name": "samples", "type": "LATENT", "link": 9},
                    {"name": "vae", "type": "VAE", "link": 11}],
         "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [12, 13]}]}
    )  # fmt: skip
    for link in workflow["links"]:
        if link[3] == 8:
            link[3] = 20
        if link[1] == 8:
            link[1] = 20
    inner = dict(decode, id=1, inputs=[{"name": "samples", "type": "LATENT", "link": 1},
                                       {"name": "vae", "type": "VAE", "link": 2}])  # fmt: skip
    workflow["definitions"] = {"subgraphs": [{
        "id": "5f2b6c1e-subgraph", "name": "decode", "nodes": [inner],
        "inputNode": {"id": -10}, "outputNode": {"id": -20},
        "inputs": [{"name": "samples", "type": "LATENT"}, {"name": "vae", "type": "VAE"}],
        "outputs": [{"name": "IMAGE", "type": "IMAGE"}],
        "links": [
            {"id": 1, "origin_id": -10, "origin_slot": 0, "target_id": 1, "target_slot": 0, "type": "LATENT"},
            {"id": 2, "origin_id": -10, "origin_slot": 1, "target_id": 1, "target_slot": 1, "type": "VAE"},
            {"id": 3, "origin_id": 1, "origin_slot": 0, "target_id": -20, "target_slot": 0, "type": "IMAGE"},
        ],
    }]}  # fmt: skip
    converted = convert_document(workflow, executor.registry)
    nodes = converted.document["nodes"]
    assert nodes["n20_1"] == {
        "type": "VAEDecode",
        "links": {"latent": "n3.latent", "vae": "n4.vae"},
    }
    assert nodes["n9"]["links"] == {"images": "n20_1.image"}
    assert converted.document["editor"]["nodes"]["n20_1"]["comfy_id"] == "20:1"
    executor.validate(converted.document)
