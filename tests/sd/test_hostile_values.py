"""Values that type-check but cannot run are refused at validation, or before the node starts."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from PIL import Image as PILImage

from engine.config import Paths
from engine.errors import GraphValidationError
from engine.executor import Executor
from engine.registry import default_registry
from engine.validate import validate_graph
from nodes.sd.tiny_models import TinyModels

ROOT = Path(__file__).resolve().parents[2]
TXT2IMG = json.loads((ROOT / "graphs" / "txt2img.json").read_text())


@pytest.fixture
def paths(tiny_models: TinyModels, tmp_path: Path) -> Paths:
    (tmp_path / "input").mkdir()
    return Paths.resolve(
        models=tiny_models.models_dir, input=tmp_path / "input", output=tmp_path / "output"
    )


def small(steps: int = 2, size: int = 64) -> dict:
    graph = copy.deepcopy(TXT2IMG)
    graph["nodes"]["sampler"]["inputs"]["steps"] = steps
    graph["nodes"]["latent"]["inputs"].update(width=size, height=size)
    return graph


def errors(document: Any, paths: Paths) -> dict[tuple[str, str | None, str | None], str]:
    with pytest.raises(GraphValidationError) as caught:
        validate_graph(document, default_registry(), paths)
    return {(e.code.value, e.node_id, e.input): e.message for e in caught.value.errors}


def with_input(node: str, name: str, value: Any) -> dict:
    graph = small()
    graph["nodes"][node]["inputs"][name] = value
    return graph


@pytest.mark.parametrize("denoise", [1e-9, 1e-300, 5e-324])
def test_tiny_denoise_values_are_refused_at_validation(denoise: float, paths: Paths) -> None:
    found = errors(with_input("sampler", "denoise", denoise), paths)
    assert ("invalid_value", "sampler", "denoise") in found


def test_denoise_that_needs_a_huge_schedule_for_its_steps_is_refused(paths: Paths) -> None:
    graph = with_input("sampler", "denoise", 0.01)
    graph["nodes"]["sampler"]["inputs"]["steps"] = 10_000
    assert "schedule" in errors(graph, paths)[("invalid_value", "sampler", "denoise")]
    graph["nodes"]["sampler"]["inputs"]["steps"] = 20
    validate_graph(graph, default_registry(), paths)  # 20 / 0.01 = 2000 steps is fine


@pytest.mark.parametrize(
    "prefix",
    ["a\x00b", "x" * 10_000, "../escape", "/abs/olute", "sub/", "", "a\nb", "sub/" + "n" * 250],
)
def test_unusable_save_prefixes_are_refused_at_validation(prefix: str, paths: Paths) -> None:
    found = errors(with_input("save", "prefix", prefix), paths)
    assert ("invalid_value", "save", "prefix") in found, found


def test_a_prefix_through_a_file_or_into_an_output_file_is_refused(paths: Paths) -> None:
    paths.output.mkdir(parents=True)
    (paths.output / "taken").write_text("a file")
    found = errors(with_input("save", "prefix", "taken/cat"), paths)
    assert "is a file" in found[("invalid_value", "save", "prefix")]
    paths.output.joinpath("taken").unlink()
    paths.output.rmdir()
    paths.output.write_text("the output folder is a file")
    assert ("invalid_value", "save", "prefix") in errors(small(), paths)


def test_a_lone_surrogate_is_refused_at_validation(paths: Paths) -> None:
    found = errors(with_input("positive", "text", "a \ud800 fox"), paths)
    ((code, _, _), message), *_ = found.items()
    assert code == "invalid_graph" and "lone surrogate" in message
    assert "nodes.positive.inputs.text" in message


def test_a_huge_latent_or_batch_is_refused_at_validation(
    paths: Paths, monkeypatch: pytest.MonkeyPatch
) -> None:
    graph = small(size=8192)
    assert "LATENTGRAPH_MAX_PIXELS" in errors(graph, paths)[("invalid_value", "latent", "width")]
    graph = small()
    graph["nodes"]["latent"]["inputs"]["batch_size"] = 4096
    assert ("invalid_value", "latent", "batch_size") in errors(graph, paths)
    monkeypatch.setenv("LATENTGRAPH_MAX_PIXELS", str(8192 * 8192))
    validate_graph(small(size=8192), default_registry(), paths)


def test_a_huge_literal_prompt_is_refused_at_validation(paths: Paths) -> None:
    found = errors(with_input("positive", "text", "fox " * 2_500_000), paths)
    assert "LATENTGRAPH_MAX_PROMPT_CHARS" in found[("invalid_value", "positive", "text")]


def test_a_linked_prompt_that_makes_too_many_windows_fails_before_encoding(
    paths: Paths, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LATENTGRAPH_MAX_TOKEN_WINDOWS", "2")
    graph = small()
    graph["nodes"]["prompt"] = {"type": "Text", "inputs": {"text": "fox, " * 200}}
    del graph["nodes"]["positive"]["inputs"]["text"]
    graph["nodes"]["positive"]["links"]["text"] = "prompt.text"
    result = Executor(default_registry(), paths=paths).run(graph)
    assert result.status == "failed" and result.error is not None
    assert (result.error.node_id, result.error.input) == ("positive", "text")
    assert "LATENTGRAPH_MAX_TOKEN_WINDOWS" in result.error.message
    assert "sampler" not in result.executed


def test_a_node_whose_memory_estimate_exceeds_the_budget_is_refused_before_it_runs(
    paths: Paths, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LATENTGRAPH_MEMORY_BUDGET", str(64 * 1024 * 1024))
    result = Executor(default_registry(), paths=paths).run(small(size=512))
    assert result.status == "failed" and result.error is not None
    assert result.error.node_id == "sampler"
    assert "LATENTGRAPH_MEMORY_BUDGET" in result.error.message
    assert result.error.exception_type == "engine.errors.ResourceLimitError"
    monkeypatch.setenv("LATENTGRAPH_MEMORY_BUDGET", str(64 * 1024**3))
    assert Executor(default_registry(), paths=paths).run(small()).status == "finished"


def test_a_missing_model_names_its_folder_and_how_to_fix_it(paths: Paths, tmp_path: Path) -> None:
    empty = Paths.resolve(models=tmp_path / "no-models", input=paths.input, output=paths.output)
    # The built-in demo model is always there, so the graph asks for a model of the user's.
    found = errors(with_input("checkpoint", "checkpoint", "tiny-sd1.safetensors"), empty)
    message = found[("value_not_in_choices", "checkpoint", "checkpoint")]
    assert str(tmp_path / "no-models" / "checkpoints") in message
    assert "--models" in message
    wrong = with_input("checkpoint", "checkpoint", "nope.safetensors")
    message = errors(wrong, paths)[("value_not_in_choices", "checkpoint", "checkpoint")]
    assert "checkpoints folder" in message and "found:" in message


def test_an_image_too_large_to_decode_is_refused_from_its_header(
    paths: Paths, monkeypatch: pytest.MonkeyPatch
) -> None:
    PILImage.new("RGB", (64, 64)).save(paths.input / "big.png")
    monkeypatch.setenv("LATENTGRAPH_MAX_PIXELS", "1024")
    graph = {
        "nodes": {
            "load": {"type": "LoadImage", "inputs": {"image": "big.png"}},
            "save": {"type": "PreviewImage", "links": {"images": "load.image"}},
        }
    }
    result = Executor(default_registry(), paths=paths).run(graph)
    assert result.status == "failed" and result.error is not None
    assert (result.error.node_id, result.error.input) == ("load", "image")
    assert "64x64" in result.error.message


def test_numbered_files_are_created_exclusively(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    from engine import outputs
    from nodes.sd import images

    (tmp_path / "cat_00001.png").write_bytes(b"another process's picture")
    # As if the other process wrote its file after this one read the folder's numbers.
    monkeypatch.setattr(outputs, "_next_counter", lambda folder, stem, suffix: 1)
    names = images.save_pngs(torch.zeros(2, 8, 8, 3), tmp_path, "cat", {})
    assert names == ["cat_00002.png", "cat_00003.png"]
    assert (tmp_path / "cat_00001.png").read_bytes() == b"another process's picture"
