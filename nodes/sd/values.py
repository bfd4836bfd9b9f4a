"""The values that flow between Stable Diffusion nodes, each bound to its port type.

Nothing here imports torch, so that the node catalog, validation and the CLI's help stay fast;
tensor fields are typed for the checker only.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

from engine.ports import (
    CLIP,
    CONDITIONING,
    CONTROL_NET,
    IMAGE,
    LATENT,
    MASK,
    MODEL,
    TOKENS,
    VAE,
    binds,
)

if TYPE_CHECKING:
    import torch

Family = Literal["sd1", "sd2", "sdxl"]

# Pixels per latent cell, each way, for every SD family's VAE.
LATENT_SCALE = 8
# Channels of an SD1/SD2/SDXL latent.
LATENT_CHANNELS = 4
Prediction = Literal["epsilon", "v_prediction"]


@dataclass(frozen=True)
class NoiseSchedule:
    """The discrete training schedule a UNet was trained with (diffusers' scheduler config terms)."""

    beta_start: float = 0.00085
    beta_end: float = 0.012
    beta_schedule: str = "scaled_linear"
    num_train_timesteps: int = 1000


@binds(MODEL)
@dataclass(frozen=True, eq=False)
class UNetModel:
    """A diffusers UNet2DConditionModel with what a sampler needs to drive it."""

    unet: Any  # diffusers.UNet2DConditionModel
    family: Family
    prediction_type: Prediction = "epsilon"
    schedule: NoiseSchedule = field(default_factory=NoiseSchedule)
    # Names of the LoRA files merged into these weights, with their strengths, for metadata.
    loras: tuple[tuple[str, float], ...] = ()
    # Where classifier-free guidance applies: start and end percent of the timestep range
    # (0 = pure noise); samplers run the positive prompt alone outside it (GuidanceInterval).
    guidance_interval: tuple[float, float] = (0.0, 1.0)


@binds(CLIP)
@dataclass(frozen=True, eq=False)
class ClipModel:
    """The tokenizer and text encoder(s) of a checkpoint; SDXL has a second, OpenCLIP-G encoder."""

    tokenizer: Any  # transformers.CLIPTokenizer
    text_encoder: Any  # transformers.CLIPTextModel
    family: Family
    text_encoder_2: Any | None = None  # transformers.CLIPTextModelWithProjection (SDXL)
    tokenizer_2: Any | None = None
    loras: tuple[tuple[str, float], ...] = ()


@binds(VAE)
@dataclass(frozen=True, eq=False)
class VaeModel:
    """A diffusers AutoencoderKL; latents in this engine are already multiplied by `scaling_factor`."""

    vae: Any  # diffusers.AutoencoderKL
    scaling_factor: float = 0.18215


@binds(CONTROL_NET)
@dataclass(frozen=True, eq=False)
class ControlNetModel:
    """A diffusers ControlNetModel."""

    controlnet: Any  # diffusers.ControlNetModel
    name: str = ""


@dataclass(frozen=True)
class Checkpoint:
    """The three models a Stable Diffusion checkpoint holds."""

    unet: UNetModel
    clip: ClipModel
    vae: VaeModel


@binds(TOKENS)
@dataclass(frozen=True, eq=False)
class Tokens:
    """A prompt split into 77-token windows: ids and per-token weights, one row per window."""

    ids: torch.Tensor  # (windows, 77) int64, BOS ... EOS pad
    weights: torch.Tensor  # (windows, 77) float32, 1.0 where unweighted
    # SDXL's second encoder tokenises the same text with its own padding.
    ids_2: torch.Tensor | None = None
    weights_2: torch.Tensor | None = None
    text: str = ""


@dataclass(frozen=True, eq=False)
class ControlApplication:
    """One ControlNet applied to a conditioning, active between two fractions of the schedule."""

    controlnet: ControlNetModel
    image: torch.Tensor  # (B, 3, H, W) pixels in [0, 1]
    strength: float = 1.0
    start_percent: float = 0.0
    end_percent: float = 1.0
    # Also guide the negative prompt when it has no ControlNet of its own (ComfyUI's old apply).
    to_uncond: bool = False


@binds(CONDITIONING)
@dataclass(frozen=True, eq=False)
class Conditioning:
    """Encoded text, plus the ControlNets stacked onto it, an optional area, and combined prompts.

    A combined conditioning is several prompts whose predictions the sampler averages, each
    weighted by its strength inside its area (ComfyUI's list of conditionings).
    """

    embeds: torch.Tensor  # (1, 77 * windows, D)
    pooled: torch.Tensor | None = None  # (1, D_pooled), SDXL only
    controls: tuple[ControlApplication, ...] = ()
    # (height, width, y, x) in latent cells; None covers the whole latent.
    area: tuple[int, int, int, int] | None = None
    strength: float = 1.0
    combined: tuple[Conditioning, ...] = ()

    def entries(self) -> list[Conditioning]:
        """Every prompt this conditioning stands for, itself first, without nesting."""
        head = replace(self, combined=()) if self.combined else self
        return [head, *(e for c in self.combined for e in c.entries())]


@binds(LATENT)
@dataclass(frozen=True, eq=False)
class Latent:
    """A batch of latents in the model's space (already scaled), with an optional inpainting mask."""

    samples: torch.Tensor  # (B, 4, H/8, W/8)
    noise_mask: torch.Tensor | None = None  # (B, 1, H/8, W/8), 1 where the sampler may change it


@binds(IMAGE)
@dataclass(frozen=True, eq=False)
class Image:
    """A batch of RGB images, channels last, values in [0, 1]."""

    pixels: torch.Tensor  # (B, H, W, 3) float32


@binds(MASK)
@dataclass(frozen=True, eq=False)
class Mask:
    """A batch of masks, 1.0 where masked."""

    mask: torch.Tensor  # (B, H, W) float32
