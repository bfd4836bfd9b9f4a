"""ComfyUI workflows convert, validate and run on the tiny models, giving our hand-written graphs' images."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image as PILImage

from engine.config import Paths
from engine.executor import Executor
from engine.formats import convert_document
from engine.registry import default_registry
from nodes.comfy.mapping import CLASSES, NOTES, PRIMITIVE, REROUTE
from tests.comfy import editor_workflows, workflows


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


@dataclass(frozen=True)
class Scenario:
    """One job in both ComfyUI formats and as our hand-written graph."""

    name: str
    api: Callable[[], dict[str, Any]]
    editor: Callable[[], dict[str, Any]]
    ours: Callable[[], dict[str, Any]]
    images: dict[str, str]  # ComfyUI SaveImage/PreviewImage id -> our node id


SCENARIOS = [
    Scenario("txt2img", workflows.api_txt2img, workflows.workflow_txt2img,
             workflows.ours_txt2img, {"9": "save"}),
    Scenario("img2img", workflows.api_img2img, editor_workflows.editor_img2img,
             workflows.ours_img2img, {"9": "save"}),
    Scenario("inpainting", workflows.api_inpaint_img2img, editor_workflows.editor_inpaint_img2img,
             workflows.ours_inpaint_img2img, {"9": "save", "27": "save2"}),
    Scenario("controlnet_lora", workflows.api_controlnet_lora, editor_workflows.editor_controlnet_lora,
             workflows.ours_controlnet_lora, {"9": "save"}),
    # Two deterministic KSamplerAdvanced passes equal one pass over the same steps.
    Scenario("ksampler_advanced", workflows.api_advanced, editor_workflows.editor_advanced,
             workflows.ours_advanced_single_pass, {"9": "save"}),
    Scenario("other_classes", workflows.api_misc, editor_workflows.editor_misc,
             workflows.ours_misc, {"61": "preview"}),
]  # fmt: skip
FORMATS = {"api": "comfyui-api", "editor": "comfyui-workflow"}


@pytest.fixture(scope="module")
def hand_written(executor: Executor) -> Callable[[Scenario], dict[str, np.ndarray]]:
    """Our graph's images for a scenario, run once per module."""
    done: dict[str, dict[str, np.ndarray]] = {}

    def images(scenario: Scenario) -> dict[str, np.ndarray]:
        if scenario.name not in done:
            done[scenario.name] = run(executor, scenario.ours())
        return done[scenario.name]

    return images


@pytest.mark.parametrize("form", list(FORMATS))
@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_a_comfyui_workflow_converts_validates_runs_and_gives_the_hand_written_image(
    executor: Executor,
    hand_written: Callable[[Scenario], dict[str, np.ndarray]],
    scenario: Scenario,
    form: str,
) -> None:
    document = scenario.api() if form == "api" else scenario.editor()
    converted = convert_document(document, executor.registry)
    assert converted.format == FORMATS[form]
    executor.validate(converted.document)
    if form == "editor":
        # Editor-only nodes resolve away: the same graph as the API format, node for node.
        api = convert_document(scenario.api(), executor.registry).document["nodes"]
        assert converted.document["nodes"] == api
    images = run(executor, converted.document)
    ours = hand_written(scenario)
    assert set(images) == set(scenario.images)
    for comfy_id, our_id in scenario.images.items():
        assert images[comfy_id].shape == ours[our_id].shape
        assert np.array_equal(images[comfy_id], ours[our_id]), (comfy_id, our_id)


def test_the_txt2img_image_is_the_size_asked_for(executor: Executor) -> None:
    assert run(executor, workflows.api_txt2img())["9"].shape == (64, 64, 3)


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


def test_masked_img2img_changes_the_masked_square_most(executor: Executor) -> None:
    images = run(executor, workflows.api_inpaint_img2img())
    source = np.asarray(PILImage.open(executor.paths.input / "hint.png").convert("RGB"))
    diff = np.abs(images["27"].astype(int) - source.astype(int)).mean(axis=2)
    assert diff[16:40, 16:48].mean() > diff[48:, :].mean()


@pytest.mark.parametrize("form", list(FORMATS))
def test_the_test_workflows_cover_every_mapped_class(form: str) -> None:
    used: set[str] = set()
    modes: set[int] = set()
    for scenario in SCENARIOS:
        if form == "api":
            used |= {entry["class_type"] for entry in scenario.api().values()}
        else:
            nodes = scenario.editor()["nodes"]
            used |= {n["type"] for n in nodes}
            modes |= {n["mode"] for n in nodes}
    assert set(CLASSES) <= used
    if form == "editor":
        assert {REROUTE, PRIMITIVE} | NOTES <= used | {"MarkdownNote"}
        assert modes == {0, 2, 4}  # active, muted and bypassed nodes


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


@pytest.mark.parametrize("control", [["randomize"], [True], [False], []])
def test_the_hidden_control_value_is_skipped_only_when_there(control: list[Any]) -> None:
    """The value after a seed is skipped when it is a control value ("randomize", or `true` in
    older files), never because a step count of 1 equals `True` in Python."""
    workflow = workflows.workflow_txt2img()
    sampler = next(n for n in workflow["nodes"] if n["id"] == 3)
    sampler["widgets_values"] = [123, *control, 1, 8, "euler", "normal", 1]
    inputs = convert_document(workflow, default_registry()).document["nodes"]["n3"]["inputs"]
    assert (inputs["steps"], inputs["cfg"], inputs["sampler"]) == (1, 8, "euler")
