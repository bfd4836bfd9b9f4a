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
from dataclasses import dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F

from nodes.sd.samplers import Denoiser
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

    def __init__(self, model: UNetModel, nearest_timestep: bool = False):
        self.unet = model.unet
        # ComfyUI feeds discrete models the nearest trained timestep instead of interpolating.
        self.nearest_timestep = nearest_timestep
        self.prediction_type = model.prediction_type
        self.schedule: DiscreteSchedule = discrete_schedule(model.schedule)
        self.device: torch.device = self.unet.device
        self.dtype: torch.dtype = self.unet.dtype
        self.needs_time_ids = getattr(self.unet.config, "addition_embed_type", None) == "text_time"
        self._hints: dict[tuple[Any, ...], torch.Tensor] = {}

    def predict(
        self, x: torch.Tensor, sigma: torch.Tensor, prompts: Sequence[PromptInputs]
    ) -> list[torch.Tensor]:
        """The raw model output (eps or v) for x under each prompt, from one batched forward."""
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
        added = self._added_cond(prompts, x) if self.needs_time_ids else None
        down, mid = self._control_residuals(x_in, t, float(sigma[0]), embeds, added, prompts)
        out = self.unet(
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
        self, prompts: Sequence[PromptInputs], x: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """SDXL's micro-conditioning: pooled text plus (original, crop, target) sizes in pixels.

        The conditioning carries no sizes, so original = target = the latent's size and the crop
        is (0, 0), which is also what ComfyUI and diffusers default to.
        """
        batch = x.shape[0]
        if any(p.pooled is None for p in prompts):
            raise ValueError("this UNet is SDXL-style and needs pooled text embeddings")
        height, width = x.shape[-2] * LATENT_SCALE, x.shape[-1] * LATENT_SCALE  # SDXL's are pixels
        time_ids = torch.tensor(
            [[height, width, 0, 0, height, width]], device=self.device, dtype=self.dtype
        )
        text_embeds = torch.cat([_rows(p.pooled, batch) for p in prompts if p.pooled is not None])
        return {"text_embeds": text_embeds, "time_ids": time_ids.repeat(len(text_embeds), 1)}

    def _active(self, app: ControlApplication, sigma: float) -> bool:
        # As in ComfyUI, the window is in noise levels: start/end percent of the model's timestep
        # range, so it does not depend on the step count, scheduler or denoise.
        high = self.schedule.percent_to_sigma(app.start_percent)
        low = self.schedule.percent_to_sigma(app.end_percent)
        return low <= sigma <= high

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
            down, mid = controlnet(
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

    Both predictions come from one batched forward; at cfg == 1 the uncond pass is skipped.
    Combined or area conditionings are averaged as ComfyUI does: each prompt's x0 weighted by
    its strength inside its area.
    """

    def __init__(
        self, inner: UNetDenoiser, positive: Conditioning, negative: Conditioning, cfg: float
    ):
        self.inner = inner
        self.cfg = cfg
        self.skip_uncond = math.isclose(cfg, 1.0)
        positives = positive.entries()
        negatives = [] if self.skip_uncond else _with_uncond_controls(negative.entries(), positives)
        self.split = len(negatives)
        self.weighted = len(positives) + len(negatives) > (1 if self.skip_uncond else 2) or any(
            e.area is not None or e.strength != 1.0 for e in (*positives, *negatives)
        )
        self.entries = [*negatives, *positives]
        # The uncond half goes first, as in diffusers' pipelines.
        self.prompts = prepare_prompts(self.entries, inner.device, inner.dtype)

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor, **extra_args: Any) -> torch.Tensor:
        outputs = self.inner.predict(x, sigma, self.prompts)
        if self.weighted:
            x0s = [self.inner.to_x0(x, sigma, o) for o in outputs]
            cond = _area_average(x0s[self.split :], self.entries[self.split :], x)
            if self.skip_uncond:
                return cond
            uncond = _area_average(x0s[: self.split], self.entries[: self.split], x)
            return uncond + (cond - uncond) * self.cfg
        if self.skip_uncond:
            (output,) = outputs
        else:
            uncond, cond = outputs
            output = uncond + (cond - uncond) * self.cfg
        # Guiding the eps (or v) prediction equals guiding x0, as x0 is affine in it for a fixed
        # x; it also avoids the rounding of subtracting two x0 estimates that are both near x.
        return self.inner.to_x0(x, sigma, output)


def _with_uncond_controls(
    negatives: list[Conditioning], positives: list[Conditioning]
) -> list[Conditioning]:
    """Negative prompts without ControlNets get the positive's `to_uncond` ones (ComfyUI's old apply)."""
    shared = tuple(a for p in positives for a in p.controls if a.to_uncond)
    if not shared:
        return negatives
    return [n if n.controls else replace(n, controls=shared) for n in negatives]


def _area_average(
    x0s: Sequence[torch.Tensor], entries: Sequence[Conditioning], like: torch.Tensor
) -> torch.Tensor:
    """Sum of strength * area mask * x0 over the prompts, divided by the summed weights."""
    total = torch.zeros_like(like)
    weight = torch.full_like(like, 1e-37)  # ComfyUI's floor: uncovered cells predict 0
    for x0, entry in zip(x0s, entries, strict=True):
        mask = torch.zeros_like(like)
        if entry.area is None:
            mask += entry.strength
        else:
            height, width, top, left = entry.area
            mask[..., top : top + height, left : left + width] = entry.strength
        total += x0 * mask
        weight += mask
    return total / weight


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
