"""`--compile`: models run through torch.compile where it measured faster, once per model, and give
eager's image."""

from __future__ import annotations

import copy
import json
import logging
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from torch._dynamo.utils import counters

from engine.config import ComputeOptions, Paths
from engine.executor import Executor
from engine.registry import default_registry
from latentgraph_cli.main import _parser
from nodes.sd.compiled import compiled_forward, compiles_unet
from nodes.sd.tiny_models import TinyModels

ROOT = Path(__file__).resolve().parents[2]
TOLERANCE = 1e-3


def txt2img(seed: int) -> dict[str, Any]:
    """The tiny checkpoint at 64x64 (an 8x8 latent), two euler steps."""
    graph = json.loads((ROOT / "graphs" / "txt2img.json").read_text())
    nodes = graph["nodes"]
    nodes["checkpoint"]["inputs"]["checkpoint"] = "tiny-sd1.safetensors"
    nodes["sampler"]["inputs"].update(steps=2, seed=seed)
    nodes["latent"]["inputs"].update(width=64, height=64)
    graph["outputs"] = ["sampler", "decode"]
    return graph


def image(executor: Executor, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The sampled latent (what torch.compile computes) and the image decoded from it."""
    result = executor.run(txt2img(seed))
    assert result.status == "finished", result.error
    latent = result.values["sampler"]["latent"].samples  # (1, 4, 8, 8)
    return latent, result.values["decode"]["image"].pixels  # (1, 64, 64, 3)


def executors(models: TinyModels, output: Path) -> tuple[Executor, Executor]:
    paths = Paths.resolve(models=models.models_dir, output=output)
    eager = Executor(default_registry(), paths=paths)
    compiled = Executor(default_registry(), paths=paths, compute=ComputeOptions(compile=True))
    torch._dynamo.reset()
    counters.clear()
    return eager, compiled


def test_compile_on_the_cpu_compiles_the_vae_decode_once_not_the_unet(
    tiny_models: TinyModels, tmp_path: Path
) -> None:
    eager, compiled = executors(tiny_models, tmp_path)
    expected_latent, expected_image = image(eager, seed=4)
    assert counters["stats"]["unique_graphs"] == 0  # eager never reaches Dynamo

    latent, got = image(compiled, seed=4)
    assert counters["stats"]["unique_graphs"] > 0  # the decode was captured ...
    frames = counters["frames"]["total"]
    # ... but not the UNet: on the CPU a compiled UNet step measured slower than eager.
    assert torch.equal(latent, expected_latent)
    torch.testing.assert_close(got, expected_image, atol=TOLERANCE, rtol=TOLERANCE)

    # A new seed decodes a new latent of the same shape with the cached VAE: no new compile.
    again, reference = image(compiled, seed=5)[1], image(eager, seed=5)[1]
    assert counters["frames"]["total"] == frames
    torch.testing.assert_close(again, reference, atol=TOLERANCE, rtol=TOLERANCE)


def test_where_the_unet_compiles_it_runs_through_torch_compile_once_and_matches_eager(
    tiny_models: TinyModels, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As on a GPU (none here): the policy allows the UNet, so its forward is compiled too.
    monkeypatch.setattr("nodes.sd.denoiser.compiles_unet", lambda device: True)
    eager, compiled = executors(tiny_models, tmp_path)
    expected = image(eager, seed=4)[0]
    got = image(compiled, seed=4)[0]
    assert counters["stats"]["unique_graphs"] > 0
    frames = counters["frames"]["total"]
    # Fused kernels round differently, by ~1e-4 here once the sampler has scaled the UNet's
    # output by sigma (14.6 at the first step) and cfg (7.5).
    torch.testing.assert_close(got, expected, atol=TOLERANCE, rtol=TOLERANCE)
    # A new seed reruns the sampler on the same cached model: compiled code is reused as it is.
    again, reference = image(compiled, seed=5)[0], image(eager, seed=5)[0]
    assert counters["frames"]["total"] == frames
    torch.testing.assert_close(again, reference, atol=TOLERANCE, rtol=TOLERANCE)


def test_the_unet_compiles_off_the_cpu_only() -> None:
    assert not compiles_unet(torch.device("cpu"))
    assert compiles_unet(torch.device("cuda", 0))


def test_a_model_is_compiled_once_and_a_copy_compiles_its_own() -> None:
    module = torch.nn.Linear(3, 3)
    first = compiled_forward(module)
    assert compiled_forward(module) is first
    clone = copy.deepcopy(module)  # as a LoRA-patched model is made
    assert compiled_forward(clone) is not first
    assert "_latentgraph_compiled_forward" not in dict(module.named_modules())
    assert list(module.state_dict()) == ["weight", "bias"]


class Wavy(torch.nn.Module):
    """A pointwise module, which Inductor compiles to a C++ kernel on the CPU."""

    def __init__(self) -> None:
        super().__init__()
        # A new constant each time makes a kernel no earlier run left in Inductor's disk cache.
        self.scale = 1.0 + time.time_ns() % 1_000_003 / 1e7

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x * self.scale + 1.0).sin()


def test_a_failing_compile_warns_once_and_runs_eagerly(caplog: pytest.LogCaptureFixture) -> None:
    import torch._inductor.config as inductor_config

    # A length no earlier run compiled, with the new constant: nothing to find on disk.
    module, x = Wavy(), torch.linspace(-1.0, 1.0, 16 + time.time_ns() % 9973)
    torch._dynamo.reset()
    # No C++ compiler: what a machine without one gives Inductor on the CPU.
    with (
        inductor_config.patch({"cpp.cxx": ("/nonexistent/c++",), "fx_graph_cache": False}),
        caplog.at_level(logging.WARNING, logger="nodes.sd.compiled"),
    ):
        forward = compiled_forward(module)
        torch.testing.assert_close(forward(x), module(x))
        torch.testing.assert_close(forward(x), module(x))
    assert forward.failed
    warnings = [r for r in caplog.records if "running it eagerly" in r.getMessage()]
    assert len(warnings) == 1


def test_an_input_error_is_raised_as_eager_raises_it_and_compiling_goes_on() -> None:
    module = torch.nn.Linear(4, 2)
    forward = compiled_forward(module)
    with pytest.raises(RuntimeError, match="shapes cannot be multiplied"):
        forward(torch.ones(1, 3))
    assert not forward.failed


def test_run_and_serve_take_compile() -> None:
    parser = _parser()
    assert parser.parse_args(["run", "g.json", "--compile"]).compile
    assert not parser.parse_args(["run", "g.json"]).compile
    assert parser.parse_args(["serve", "--compile"]).compile
