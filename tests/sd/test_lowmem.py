"""Low-memory mode: fp16 weights computed layer by layer in fp32 match fp32 within fp16 rounding."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import torch

from engine.config import Paths
from engine.executor import Executor
from engine.registry import default_registry
from nodes.sd.loading.single_file import load_checkpoint
from nodes.sd.lowmem import store_in_fp16
from nodes.sd.text_encoder import encode
from nodes.sd.tiny_models import TinyModels
from nodes.sd.tokenizer import tokenize
from nodes.sd.vae import decode
from nodes.sd.values import Checkpoint

ROOT = Path(__file__).resolve().parents[2]


def modules(checkpoint: Checkpoint) -> list[Any]:
    return [checkpoint.unet.unet, checkpoint.clip.text_encoder, checkpoint.vae.vae]


def rounded_fp32(tiny: TinyModels) -> Checkpoint:
    """The fp32 models with every weight rounded through fp16: what fp16 storage can hold."""
    checkpoint = load_checkpoint(tiny.checkpoint, device="cpu", dtype="fp32")
    with torch.no_grad():
        for module in modules(checkpoint):
            for param in module.parameters():
                param.copy_(param.half().float())
    return checkpoint


def low_memory(tiny: TinyModels) -> Checkpoint:
    checkpoint = load_checkpoint(tiny.checkpoint, device="cpu", dtype="fp16")
    for module in modules(checkpoint):
        store_in_fp16(module)
    return checkpoint


def test_weights_stay_fp16_and_outputs_match_fp32(tiny_models: TinyModels) -> None:
    reference, low = rounded_fp32(tiny_models), low_memory(tiny_models)
    unet = low.unet.unet
    assert unet.conv_in.weight.dtype == torch.float16  # stored in fp16 ...
    assert unet.conv_norm_out.weight.dtype == torch.float32  # ... except normalisation layers
    assert unet.dtype == torch.float32  # and computed in fp32
    stored = sum(p.numel() * p.element_size() for p in unet.parameters())
    assert stored < 0.6 * sum(p.numel() * 4 for p in unet.parameters())

    generator = torch.Generator().manual_seed(0)
    sample = torch.randn(1, 4, 8, 8, generator=generator)
    context = torch.randn(1, 77, unet.config.cross_attention_dim, generator=generator)
    with torch.no_grad():
        ours = unet(sample, 10, encoder_hidden_states=context).sample
        theirs = reference.unet.unet(sample, 10, encoder_hidden_states=context).sample
    assert ours.dtype == torch.float32
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-5)
    assert unet.conv_in.weight.dtype == torch.float16  # cast back after the forward pass

    tokens = tokenize("a red fox", "sd1")
    torch.testing.assert_close(
        encode(low.clip, tokens).embeds, encode(reference.clip, tokens).embeds, rtol=1e-4, atol=1e-5
    )
    latent = torch.randn(1, 4, 8, 8, generator=generator)
    torch.testing.assert_close(
        decode(low.vae, latent), decode(reference.vae, latent), rtol=1e-4, atol=1e-4
    )


def txt2img(precision: str) -> dict[str, Any]:
    graph = copy.deepcopy(json.loads((ROOT / "graphs" / "txt2img.json").read_text()))
    graph["nodes"]["checkpoint"]["inputs"]["precision"] = precision
    graph["nodes"]["sampler"]["inputs"]["steps"] = 2
    graph["nodes"]["latent"]["inputs"].update(width=64, height=64)
    graph["outputs"] = ["decode"]
    return graph


def test_loader_node_runs_txt2img_in_fp16_weights_close_to_fp32(
    tiny_models: TinyModels, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = Paths.resolve(models=tiny_models.models_dir, input=tmp_path, output=tmp_path)
    executor = Executor(default_registry(), paths=paths)
    images = {}
    for precision in ("fp32", "fp16-weights"):
        result = executor.run(txt2img(precision))
        assert result.status == "finished", result.error
        images[precision] = result.values["decode"]["image"].pixels
    # Sampling amplifies the weights' fp16 rounding a little; the images stay close.
    assert (images["fp16-weights"] - images["fp32"]).abs().max() < 2e-2

    # "auto" picks fp16-weights on the CPU when the fp32 model would not fit the memory budget.
    monkeypatch.setattr("engine.placement.default_budget", lambda device: 1024)
    loaded = executor.run({**txt2img("auto"), "outputs": ["checkpoint"]})
    assert loaded.values["checkpoint"]["model"].unet.conv_in.weight.dtype == torch.float16
