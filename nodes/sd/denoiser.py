"""Turn a diffusers UNet into the k-diffusion denoiser the samplers call: (x, sigma) -> x0.

Three thin layers: `UNetDenoiser` runs the UNet for several conditionings in one batched forward
(sigma -> timestep, input scaling, ControlNet residuals, SDXL extras) and turns its eps or v
output into x0; `CFGDenoiser`, the callable handed to a sampler, applies classifier-free
guidance with it; `InpaintDenoiser` holds the unmasked part of a latent fixed, as ComfyUI's
KSamplerX0Inpaint does.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from nodes.sd.areas import Crop, area_weight, crop_for, with_opposite_areas, with_uncond_controls
from nodes.sd.compiled import compiled_forward, compiles_unet
from nodes.sd.sampler_steps import Denoiser
from nodes.sd.schedules import DiscreteSchedule, discrete_schedule
from nodes.sd.values import LATENT_SCALE, Conditioning, ControlApplication, UNetModel


@dataclass(frozen=True, eq=False)
class PromptInputs:
    """One conditioning made ready for the UNet: embeddings on its device, SDXL pooled, ControlNets."""

    embeds: torch.Tensor  # (1 or B, T, D) in the UNet's dtype
    pooled: torch.Tensor | None  # (1 or B, D_pooled), SDXL only
    controls: tuple[ControlApplication, ...]


def _rows(tensor: torch.Tensor, batch: int) -> torch.Tensor:
    """A conditioning tensor with one row per latent: tiled when it has fewer."""
    if tensor.shape[0] == batch:
        return tensor
    repeats = math.ceil(batch / tensor.shape[0])
    return tensor.repeat(repeats, *([1] * (tensor.dim() - 1)))[:batch]


def prepare_prompts(
    conditionings: Sequence[Conditioning], device: torch.device, dtype: torch.dtype
) -> list[PromptInputs]:
    """Move conditionings onto the UNet and give them one token length, so they batch together.

    Shorter prompts are repeated along the token axis up to the least common multiple of the
    lengths (as ComfyUI does): cross-attention over k copies of every token gives the same
    output as over the tokens once, since each copy gets 1/k of the softmax weight.
    """
    lengths = [c.embeds.shape[1] for c in conditionings]
    target = math.lcm(*lengths)
    prompts = []
    for cond in conditionings:
        embeds = cond.embeds.to(device=device, dtype=dtype)
        embeds = embeds.repeat(1, target // embeds.shape[1], 1)  # (1, T, D)
        pooled = None if cond.pooled is None else cond.pooled.to(device=device, dtype=dtype)
        prompts.append(PromptInputs(embeds, pooled, tuple(cond.controls)))
    return prompts


def _control_key(app: ControlApplication) -> tuple[Any, ...]:
    # Applications built separately for the positive and negative prompt but otherwise equal
    # share one ControlNet forward.
    return (id(app.controlnet), id(app.image), app.strength, app.start_percent, app.end_percent)


def _fit_hint(image: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Centre-crop a hint image to the target aspect ratio, then resize it (nearest-exact, like ComfyUI)."""
    _, _, h, w = image.shape
    if (h, w) == (height, width):
        return image
    if h * width != w * height:
        if w * height > h * width:  # too wide
            new_w = round(h * width / height)
            left = (w - new_w) // 2
            image = image[:, :, :, left : left + new_w]
        else:
            new_h = round(w * height / width)
            top = (h - new_h) // 2
            image = image[:, :, top : top + new_h, :]
    return F.interpolate(image, size=(height, width), mode="nearest-exact")


class UNetDenoiser:
    """The model half of a k-diffusion denoiser: a diffusers UNet2DConditionModel seen in sigma terms.

    The UNet sees x / sqrt(sigma^2 + 1) at the (fractional) timestep t(sigma); its eps or v output
    becomes x0 with the preconditioning of Karras et al. (2022) for sigma_data = 1.
    """

    def __init__(
        self, model: UNetModel, nearest_timestep: bool = False, compile_models: bool = False
    ):
        self.unet = model.unet
        # Opt-in (`--compile`): the UNet and ControlNet forwards go through torch.compile, where
        # that measured faster (not on the CPU: see compiles_unet).
        self.compile_models = compile_models and compiles_unet(self.unet.device)
        self._unet_forward = compiled_forward(self.unet) if self.compile_models else self.unet
        # ComfyUI feeds discrete models the nearest trained timestep instead of interpolating.
        self.nearest_timestep = nearest_timestep
        self.prediction_type = model.prediction_type
        self.schedule: DiscreteSchedule = discrete_schedule(model.schedule)
        self.device: torch.device = self.unet.device
        self.dtype: torch.dtype = self.unet.dtype
        self.needs_time_ids = getattr(self.unet.config, "addition_embed_type", None) == "text_time"
        self._hints: dict[tuple[Any, ...], torch.Tensor] = {}

    def predict(
        self,
        x: torch.Tensor,
        sigma: torch.Tensor,
        prompts: Sequence[PromptInputs],
        size: tuple[int, int] | None = None,
    ) -> list[torch.Tensor]:
        """The raw model output (eps or v) for x under each prompt, from one batched forward.

        `size` is the whole latent's (height, width) in cells when x is a crop of it (SDXL's
        size conditioning describes the whole picture).
        """
        n, batch = len(prompts), x.shape[0]
        s = sigma.to(device=x.device, dtype=torch.float32).view(-1, 1, 1, 1)  # (B, 1, 1, 1)
        x_in = (x / (s**2 + 1).sqrt()).to(self.dtype).repeat(n, 1, 1, 1)  # (nB, C, h, w)
        t = (
            self.schedule.nearest_timestep(sigma)
            if self.nearest_timestep
            else self.schedule.timestep(sigma)
        )
        t = t.to(device=self.device, dtype=torch.float32).repeat(n)
        embeds = torch.cat([_rows(p.embeds, batch) for p in prompts])  # (nB, T, D)
        added = self._added_cond(prompts, x, size) if self.needs_time_ids else None
        down, mid = self._control_residuals(x_in, t, float(sigma[0]), embeds, added, prompts)
        out = self._unet_forward(
            x_in,
            t,
            encoder_hidden_states=embeds,
            added_cond_kwargs=added,
            down_block_additional_residuals=down,
            mid_block_additional_residual=mid,
            return_dict=False,
        )[0]  # (nB, C, h, w)
        return list(out.float().chunk(n))

    def to_x0(self, x: torch.Tensor, sigma: torch.Tensor, output: torch.Tensor) -> torch.Tensor:
        """The denoised x0 from a model output at noise level sigma."""
        s = sigma.to(device=x.device, dtype=torch.float32).view(-1, 1, 1, 1)
        if self.prediction_type == "v_prediction":
            return x / (s**2 + 1) - output * s / (s**2 + 1).sqrt()
        return x - output * s

    def _added_cond(
        self, prompts: Sequence[PromptInputs], x: torch.Tensor, size: tuple[int, int] | None
    ) -> dict[str, torch.Tensor]:
        """SDXL's micro-conditioning: pooled text plus (original, crop, target) sizes in pixels.

        The conditioning carries no sizes, so original = target = the latent's size and the crop
        is (0, 0), which is also what ComfyUI and diffusers default to.
        """
        batch = x.shape[0]
        if any(p.pooled is None for p in prompts):
            raise ValueError("this UNet is SDXL-style and needs pooled text embeddings")
        rows, columns = size if size is not None else x.shape[-2:]
        height, width = rows * LATENT_SCALE, columns * LATENT_SCALE
        time_ids = torch.tensor(
            [[height, width, 0, 0, height, width]], device=self.device, dtype=self.dtype
        )
        text_embeds = torch.cat([_rows(p.pooled, batch) for p in prompts if p.pooled is not None])
        return {"text_embeds": text_embeds, "time_ids": time_ids.repeat(len(text_embeds), 1)}

    def _active(self, app: ControlApplication, sigma: float) -> bool:
        # The window does not depend on the step count, scheduler or denoise.
        return self.schedule.in_window(sigma, app.start_percent, app.end_percent)

    def _hint(self, app: ControlApplication, x_in: torch.Tensor, batch: int) -> torch.Tensor:
        controlnet = app.controlnet.controlnet
        factor = 2 ** (len(controlnet.config.conditioning_embedding_out_channels) - 1)
        height, width = x_in.shape[-2] * factor, x_in.shape[-1] * factor
        key = (*_control_key(app), height, width, batch)
        if key not in self._hints:
            image = app.image.to(device=self.device, dtype=controlnet.dtype)
            self._hints[key] = _rows(_fit_hint(image, height, width), batch)  # (B, 3, H, W)
        return self._hints[key]

    def _control_residuals(
        self,
        x_in: torch.Tensor,
        t: torch.Tensor,
        sigma: float,
        embeds: torch.Tensor,
        added: dict[str, torch.Tensor] | None,
        prompts: Sequence[PromptInputs],
    ) -> tuple[tuple[torch.Tensor, ...] | None, torch.Tensor | None]:
        """The summed, strength-scaled residuals of every active ControlNet, zero for prompts without it."""
        batch = x_in.shape[0] // len(prompts)
        users: dict[tuple[Any, ...], tuple[ControlApplication, list[int]]] = {}
        for index, prompt in enumerate(prompts):
            for app in prompt.controls:
                users.setdefault(_control_key(app), (app, []))[1].append(index)
        down_total: list[torch.Tensor] | None = None
        mid_total: torch.Tensor | None = None
        for app, indices in users.values():
            if not self._active(app, sigma):
                continue
            controlnet = app.controlnet.controlnet
            rows = torch.cat(
                [torch.arange(i * batch, (i + 1) * batch, device=self.device) for i in indices]
            )
            forward = compiled_forward(controlnet) if self.compile_models else controlnet
            down, mid = forward(
                x_in[rows].to(controlnet.dtype),
                t[rows],
                encoder_hidden_states=embeds[rows].to(controlnet.dtype),
                controlnet_cond=self._hint(app, x_in, batch).repeat(len(indices), 1, 1, 1),
                conditioning_scale=app.strength,
                added_cond_kwargs=None if added is None else {k: v[rows] for k, v in added.items()},
                return_dict=False,
            )
            if len(indices) < len(prompts):
                # Prompts without this ControlNet get no residual from it.
                down = [_scatter_rows(r, rows, x_in.shape[0]) for r in down]
                mid = _scatter_rows(mid, rows, x_in.shape[0])
            down = [r.to(self.dtype) for r in down]
            down_total = (
                down
                if down_total is None
                else [a + b for a, b in zip(down_total, down, strict=True)]
            )
            mid_total = mid.to(self.dtype) if mid_total is None else mid_total + mid.to(self.dtype)
        return (None if down_total is None else tuple(down_total)), mid_total


def _scatter_rows(values: torch.Tensor, rows: torch.Tensor, total: int) -> torch.Tensor:
    full = values.new_zeros((total, *values.shape[1:]))
    full[rows] = values
    return full


class CFGDenoiser:
    """Classifier-free guidance (Ho & Salimans, 2022): uncond + cfg * (cond - uncond).

    With one prompt on each side, both predictions come from one batched forward and at
    cfg == 1 the uncond pass is skipped. Combined, weighted or area prompts are averaged as
    ComfyUI does (see `nodes.sd.areas`): each runs on its crop of the latent, one batched
    forward per crop, and the x0 predictions are averaged with their feathered weights.

    `interval` (start, end percent of the model's timestep range, as ControlNets use) limits
    guidance to those noise levels (Kynkäänniemi et al., 2024); elsewhere only the positive
    prompts run, as at cfg 1.
    """

    def __init__(
        self,
        inner: UNetDenoiser,
        positive: Conditioning,
        negative: Conditioning,
        cfg: float,
        interval: tuple[float, float] = (0.0, 1.0),
    ):
        self.inner = inner
        self.cfg = cfg
        self.skip_uncond = math.isclose(cfg, 1.0)
        self.interval = interval
        positives, negatives = with_opposite_areas(positive.entries(), negative.entries())
        negatives = [] if self.skip_uncond else with_uncond_controls(negatives, positives)
        self.split = len(negatives)
        self.entries = [*negatives, *positives]
        self.weighted = (
            len(positives) > 1
            or len(negatives) > 1
            or any(e.area is not None or e.strength != 1.0 for e in self.entries)
        )
        # The uncond half goes first, as in diffusers' pipelines.
        self.prompts = prepare_prompts(self.entries, inner.device, inner.dtype)

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor, **extra_args: Any) -> torch.Tensor:
        guided = not self.skip_uncond and self.inner.schedule.in_window(
            float(sigma[0]), *self.interval
        )
        if self.weighted:
            return self._weighted(x, sigma, guided)
        if guided:
            uncond, cond = self.inner.predict(x, sigma, self.prompts)
            output = uncond + (cond - uncond) * self.cfg
        else:
            (output,) = self.inner.predict(x, sigma, self.prompts[self.split :])
        # Guiding the eps (or v) prediction equals guiding x0, as x0 is affine in it for a fixed
        # x; it also avoids the rounding of subtracting two x0 estimates that are both near x.
        return self.inner.to_x0(x, sigma, output)

    def _weighted(self, x: torch.Tensor, sigma: torch.Tensor, guided: bool) -> torch.Tensor:
        """Guidance over the weighted average of every prompt's x0 on its crop."""
        height, width = x.shape[-2:]
        halves = 2 if guided else 1
        totals = [torch.zeros_like(x) for _ in range(halves)]
        # ComfyUI's floor: cells no prompt covers predict 0 instead of dividing by zero.
        weights = [torch.full_like(x, 1e-37) for _ in range(halves)]
        groups: dict[Crop, list[int]] = {}
        first = 0 if guided else self.split  # unguided steps run the positive prompts only
        for index, entry in enumerate(self.entries[first:], start=first):
            crop = crop_for(entry.area, height, width)
            if crop is not None:  # an area wholly outside the latent predicts nothing
                groups.setdefault(crop, []).append(index)
        for crop, indices in groups.items():
            x_crop = crop.of(x)
            outputs = self.inner.predict(
                x_crop, sigma, [self.prompts[i] for i in indices], size=(height, width)
            )
            for index, output in zip(indices, outputs, strict=True):
                half = 0 if index >= self.split else 1
                weight = area_weight(self.entries[index], crop, height, width, x_crop)
                crop.of(totals[half]).add_(self.inner.to_x0(x_crop, sigma, output) * weight)
                crop.of(weights[half]).add_(weight)
        cond = totals[0] / weights[0]
        if not guided:
            return cond
        uncond = totals[1] / weights[1]
        return uncond + (cond - uncond) * self.cfg


def prepare_mask(mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """A noise mask resized (bilinear) and tiled to the latent's shape: (B, C, h, w), 1 = resample."""
    mask = mask.to(device=like.device, dtype=torch.float32)
    if mask.dim() == 3:
        mask = mask.unsqueeze(1)  # (B, 1, H, W)
    if mask.shape[-2:] != like.shape[-2:]:
        mask = F.interpolate(mask, size=like.shape[-2:], mode="bilinear")
    return _rows(mask, like.shape[0]).expand(-1, like.shape[1], -1, -1)


class InpaintDenoiser:
    """ComfyUI's KSamplerX0Inpaint: outside the mask, x is the original latent re-noised to sigma.

    Where the mask is 0 the input is replaced by latent + noise * sigma before each call and the
    prediction by the latent itself, so the sampler ends on the original there.
    """

    def __init__(
        self,
        inner: Denoiser,
        latent_image: torch.Tensor,
        noise: torch.Tensor,
        mask: torch.Tensor,
    ):
        self.inner = inner
        self.latent_image = latent_image  # (B, C, h, w)
        self.noise = noise  # (B, C, h, w)
        self.mask = prepare_mask(mask, latent_image)  # (B, C, h, w)

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor, **extra_args: Any) -> torch.Tensor:
        keep = 1.0 - self.mask
        s = sigma.to(x.dtype).view(-1, 1, 1, 1)
        x = x * self.mask + (self.latent_image + self.noise * s) * keep
        denoised = self.inner(x, sigma, **extra_args)
        return denoised * self.mask + self.latent_image * keep
