"""Bad ComfyUI workflows give our structured errors, naming the ComfyUI node id and input; never a crash."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from engine.errors import ErrorCode, GraphError, GraphValidationError
from engine.formats import convert_document
from engine.registry import default_registry
from engine.validate import validate_graph
from tests.comfy import workflows

ROOT = Path(__file__).resolve().parents[2]


def errors_of(document: Any) -> list[GraphError]:
    """Convert and validate (types and links; no models folder), returning every error."""
    registry = default_registry()
    try:
        converted = convert_document(document, registry)
        try:
            validate_graph(converted.document, registry)
        except GraphValidationError as exc:
            raise converted.blamed(exc) from None
    except GraphValidationError as exc:
        return exc.errors
    raise AssertionError("the document was accepted")


def where(errors: list[GraphError]) -> set[tuple[str, str | None, str | None]]:
    return {(e.code.value, e.node_id, e.input) for e in errors}


def test_unmapped_class_type_names_the_node_and_class() -> None:
    prompt = workflows.api_txt2img()
    prompt["5"]["class_type"] = "UpscaleModelLoader"
    (error,) = errors_of(prompt)
    assert (error.code, error.node_id, error.value) == (
        ErrorCode.UNKNOWN_NODE_TYPE,
        "5",
        "UpscaleModelLoader",
    )
    assert "UpscaleModelLoader" in error.message


def test_wrong_output_index_names_the_consumer_and_input() -> None:
    prompt = workflows.api_txt2img()
    prompt["3"]["inputs"]["latent_image"] = ["5", 1]  # EmptyLatentImage has one output
    (error,) = errors_of(prompt)
    assert where([error]) == {("link_to_missing_output", "3", "latent_image")}
    assert "no output 1" in error.message


def test_missing_widget_value_in_an_editor_workflow() -> None:
    workflow = workflows.workflow_txt2img()
    sampler = next(n for n in workflow["nodes"] if n["id"] == 3)
    sampler["widgets_values"] = sampler["widgets_values"][:4]  # drops sampler, scheduler, denoise
    assert where(errors_of(workflow)) == {
        ("missing_input", "3", "sampler_name"),
        ("missing_input", "3", "scheduler"),
        ("missing_input", "3", "denoise"),
    }


def test_a_cycle_is_reported_with_comfyui_ids() -> None:
    prompt = workflows.api_txt2img()
    prompt["5"] = {"class_type": "LatentUpscaleBy",
                   "inputs": {"samples": ["3", 0], "upscale_method": "bilinear", "scale_by": 1.0}}  # fmt: skip
    errors = [e for e in errors_of(prompt) if e.code == ErrorCode.CYCLE]
    (cycle,) = errors
    assert set(cycle.cycle or []) == {"3", "5"} and cycle.node_id in {"3", "5"}
    assert "3" in cycle.message and "n3" not in cycle.message


def _editor_node(workflow: dict[str, Any], node_id: int) -> dict[str, Any]:
    return next(n for n in workflow["nodes"] if n["id"] == node_id)


def _editor_unmapped(workflow: dict[str, Any]) -> None:
    _editor_node(workflow, 5)["type"] = "UpscaleModelLoader"


def _editor_wrong_output(workflow: dict[str, Any]) -> None:
    link = next(link for link in workflow["links"] if link[0] == 7)  # EmptyLatentImage -> KSampler
    link[2] = 1


def _editor_cycle(workflow: dict[str, Any]) -> None:
    empty = _editor_node(workflow, 5)
    empty.update(type="LatentUpscaleBy", widgets_values=["bilinear", 1.0],
                 inputs=[{"name": "samples", "type": "LATENT", "link": 15}])  # fmt: skip
    workflow["links"].append([15, 3, 0, 5, 0, "LATENT"])


def _api_missing_widget(prompt: dict[str, Any]) -> None:
    del prompt["3"]["inputs"]["steps"]


@pytest.mark.parametrize(
    ("make", "change", "expected"),
    [
        (workflows.workflow_txt2img, _editor_unmapped, {("unknown_node_type", "5", None)}),
        (workflows.workflow_txt2img, _editor_wrong_output,
         {("link_to_missing_output", "3", "latent_image")}),
        (workflows.api_txt2img, _api_missing_widget, {("missing_input", "3", "steps")}),
    ],
    ids=["editor-unmapped", "editor-wrong-output", "api-missing-widget"],
)  # fmt: skip
def test_the_same_errors_in_the_other_format(
    make: Any, change: Any, expected: set[tuple[str, str, str | None]]
) -> None:
    document = make()
    change(document)
    assert where(errors_of(document)) == expected


def test_a_cycle_in_an_editor_workflow_is_reported_with_comfyui_ids() -> None:
    workflow = workflows.workflow_txt2img()
    _editor_cycle(workflow)
    (cycle,) = [e for e in errors_of(workflow) if e.code == ErrorCode.CYCLE]
    assert set(cycle.cycle or []) == {"3", "5"}


def test_unknown_sampler_and_scheduler_names_are_named() -> None:
    prompt = workflows.api_txt2img()
    prompt["3"]["inputs"].update(sampler_name="lcm", scheduler="beta")
    errors = errors_of(prompt)
    assert where(errors) == {
        ("value_not_in_choices", "3", "sampler_name"),
        ("value_not_in_choices", "3", "scheduler"),
    }
    assert any("'lcm'" in e.message for e in errors)


@pytest.mark.parametrize("value", [1, 0, "on"])
def test_a_switch_takes_its_two_names_or_a_bool_not_a_number(value: Any) -> None:
    """KSamplerAdvanced's enable/disable: 1 equals True in Python, but it is no switch value."""
    prompt = workflows.api_advanced()
    prompt["40"]["inputs"]["add_noise"] = value
    assert where(errors_of(prompt)) == {("value_not_in_choices", "40", "add_noise")}


def test_gpu_sampler_variants_map_onto_the_cpu_ones() -> None:
    prompt = workflows.api_txt2img()
    prompt["3"]["inputs"]["sampler_name"] = "dpmpp_2m_sde_gpu"
    converted = convert_document(prompt, default_registry())
    assert converted.document["nodes"]["n3"]["inputs"]["sampler"] == "dpmpp_2m_sde"


def test_errors_of_our_validator_are_blamed_on_comfyui_names() -> None:
    prompt = workflows.api_txt2img()
    prompt["3"]["inputs"]["steps"] = 0
    prompt["3"]["inputs"]["latent_image"] = ["6", 0]  # a CONDITIONING into a LATENT input
    prompt["8"]["inputs"]["samples"] = ["99", 0]
    del prompt["9"]["inputs"]["filename_prefix"]
    assert where(errors_of(prompt)) == {
        ("value_out_of_range", "3", "steps"),
        ("type_mismatch", "3", "latent_image"),
        ("invalid_link", "8", "samples"),
        ("missing_input", "9", "filename_prefix"),
    }


@pytest.mark.parametrize(
    "bad",
    [
        {"1": {"class_type": 5, "inputs": {}}},
        {"1": {"class_type": "KSampler", "inputs": []}},
        {"1": {"class_type": "VAEDecode", "inputs": {"samples": [1, 0], "vae": ["1", "x"]}}},
        {"1": {"class_type": "VAEDecode", "inputs": {"samples": ["1", 0, 2], "vae": {"a": 1}}}},
        {"nodes": [{"id": 1, "type": "KSampler", "inputs": [{"name": "model", "link": 9}]}],
         "links": [[9, 2, 0, 1, 0]]},
        {"nodes": [{"id": 1, "type": "Reroute"}, "junk", {"id": 2, "type": "SaveImage",
                   "inputs": [{"name": "images", "link": 1}], "widgets_values": "x"}],
         "links": [[1, 1, 0, 2, 0, "IMAGE"], {"id": 2}]},
    ],
)  # fmt: skip
def test_malformed_documents_are_errors_not_crashes(bad: Any) -> None:
    errors = errors_of(copy.deepcopy(bad))
    assert errors and all(isinstance(e, GraphError) for e in errors)


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "latentgraph_cli", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_validate_and_import(tmp_path: Path, tiny_models: Any) -> None:
    prompt = workflows.api_txt2img()
    prompt["3"]["inputs"]["sampler_name"] = "lcm"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(prompt))
    models = str(tiny_models.models_dir)
    checked = cli("validate", str(bad), "--models", models, "--json")
    assert checked.returncode == 2
    (error,) = json.loads(checked.stdout)["errors"]
    assert (error["node_id"], error["input"], error["code"]) == (
        "3",
        "sampler_name",
        "value_not_in_choices",
    )
    workflow = tmp_path / "workflow.json"
    workflow.write_text(json.dumps(workflows.workflow_txt2img()))
    out = tmp_path / "graph.json"
    imported = cli("import", str(workflow), "-o", str(out))
    assert imported.returncode == 0, imported.stderr
    graph = json.loads(out.read_text())
    assert graph["version"] == 1 and graph["nodes"]["n3"]["type"] == "Sample"
    assert cli("validate", str(out), "--models", models).stdout.strip() == "ok"
