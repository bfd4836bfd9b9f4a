"""Tiny UNets, ControlNets, embeddings and pipeline helpers shared by the sampling tests
(parity with diffusers in test_sample_parity.py, behaviour in test_sample_behaviour.py)."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from typing import Any

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from diffusers import (
    ControlNetModel,
    EulerDiscreteScheduler,
    StableDiffusionXLPipeline,
    UNet2DConditionModel,
)

from nodes.sd import values
from nodes.sd.sample import sample
from nodes.sd.schedules import discrete_schedule
from nodes.sd.tiny_models import TINY_UNET
from nodes.sd.values import (
    Conditioning,
    Latent,
    UNetModel,
)

TOLERANCE = 1e-4
LATENT = (1, 4, 8, 8)  # 64 x 64 pixels
EULER_LINSPACE = {
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "timestep_spacing": "linspace",
    "steps_offset": 1,
}


os.environ.setdefault("HF_HUB_OFFLINE", "1")

TOLERANCE = 1e-4

LATENT = (1, 4, 8, 8)  # 64 x 64 pixels

EULER_LINSPACE = {
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "timestep_spacing": "linspace",
    "steps_offset": 1,
}


def _quiet_last_layer(unet: UNet2DConditionModel) -> UNet2DConditionModel:
    with torch.no_grad():
        unet.conv_out.weight.mul_(0.2)
        unet.conv_out.bias.mul_(0.2)
    return unet.eval()


@pytest.fixture(scope="module")
def sd_unet() -> UNet2DConditionModel:
    torch.manual_seed(0)
    return _quiet_last_layer(UNet2DConditionModel(**TINY_UNET))  # the tiny models' SD1 UNet


@pytest.fixture(scope="module")
def sdxl_unet() -> UNet2DConditionModel:
    torch.manual_seed(1)
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=2,
        sample_size=8,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4),
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=8,
        transformer_layers_per_block=(1, 2),
        projection_class_embeddings_input_dim=80,  # 6 size ids * 8 + pooled 32
        cross_attention_dim=64,
    )
    return _quiet_last_layer(unet)


def tiny_controlnet(unet: UNet2DConditionModel, seed: int) -> ControlNetModel:
    torch.manual_seed(seed)
    controlnet = ControlNetModel.from_unet(
        unet, conditioning_embedding_out_channels=(16, 32, 32, 32)
    )
    # A fresh ControlNet's output convolutions are zero; give them weights so it does something.
    zero_initialised = [
        *controlnet.controlnet_down_blocks,
        controlnet.controlnet_mid_block,
        controlnet.controlnet_cond_embedding.conv_out,
    ]
    with torch.no_grad():
        for layer in zero_initialised:
            layer.weight.normal_(0.0, 0.05)
            layer.bias.normal_(0.0, 0.05)
    return controlnet.eval()


@pytest.fixture(scope="module")
def controlnets(sd_unet: UNet2DConditionModel) -> tuple[ControlNetModel, ControlNetModel]:
    return tiny_controlnet(sd_unet, 2), tiny_controlnet(sd_unet, 3)


def seeded_randn(*shape: int, seed: int) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def embeds() -> tuple[torch.Tensor, torch.Tensor]:
    return seeded_randn(1, 77, 32, seed=10), seeded_randn(1, 77, 32, seed=11)


@pytest.fixture(scope="module")
def hints() -> tuple[torch.Tensor, torch.Tensor]:
    return seeded_randn(1, 3, 64, 64, seed=12).sigmoid(), seeded_randn(
        1, 3, 64, 64, seed=13
    ).sigmoid()


def feeding_pipeline(
    cls: Any, unet: UNet2DConditionModel, scheduler: Any, **components: Any
) -> Any:
    """A diffusers pipeline fed with embeddings and latents directly (no text encoder or VAE)."""
    if cls is StableDiffusionXLPipeline:
        parts = {"text_encoder_2": None, "tokenizer_2": None, "add_watermarker": False}
    else:
        parts = {
            "safety_checker": None,
            "feature_extractor": None,
            "requires_safety_checker": False,
        }
    pipe = cls(
        vae=None,
        text_encoder=None,
        tokenizer=None,
        unet=unet,
        scheduler=scheduler,
        **parts,
        **components,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def matching_start(
    noise: torch.Tensor, scheduler: EulerDiscreteScheduler, steps: int
) -> torch.Tensor:
    """Latents that the pipeline's `latents * init_noise_sigma` turns into our starting point."""
    scheduler.set_timesteps(steps)
    sigma_max = float(torch.tensor(discrete_schedule(values.NoiseSchedule()).sigma_max).float())
    return noise * math.sqrt(1 + sigma_max**2) / float(scheduler.init_noise_sigma)


def assert_parity(ours: torch.Tensor, reference: torch.Tensor) -> None:
    assert torch.isfinite(reference).all()
    difference = (ours - reference).abs().max().item()
    assert difference <= TOLERANCE, (
        f"max abs diff {difference:.3g} (reference max {reference.abs().max():.3g})"
    )


@pytest.fixture
def unet_batches(sd_unet: UNet2DConditionModel) -> Iterator[list[int]]:
    """The batch size of every UNet forward made while the test runs."""
    sizes: list[int] = []
    handle = sd_unet.register_forward_pre_hook(lambda module, args: sizes.append(args[0].shape[0]))
    yield sizes
    handle.remove()


def run_sample(
    unet: UNet2DConditionModel | UNetModel,
    positive: Conditioning,
    negative: Conditioning,
    **kw: Any,
) -> torch.Tensor:
    """Sample from zeros (euler, 10 steps, CFG 7.5 unless `kw` says otherwise); a bare UNet is
    wrapped as an SD1 model."""
    model = unet if isinstance(unet, UNetModel) else UNetModel(unet, "sd1")
    settings: dict[str, Any] = {
        "seed": 5,
        "steps": 10,
        "cfg": 7.5,
        "sampler_name": "euler",
        "scheduler": "normal",
    }
    latent = kw.pop("latent", Latent(torch.zeros(LATENT)))
    return sample(model, positive, negative, latent, **(settings | kw)).samples
