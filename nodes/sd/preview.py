"""A cheap latent → RGB preview for progress events: a linear map, no VAE."""

from __future__ import annotations

from typing import Any

import torch

# Per-channel RGB contributions of SD1.x/SD2.x latents, a widely published least-squares fit.
SD_LATENT_RGB = (
    (0.3512, 0.2297, 0.3227),
    (0.3250, 0.4974, 0.2350),
    (-0.2829, 0.1762, 0.2721),
    (-0.2120, -0.2616, -0.7177),
)


def latent_preview(samples: torch.Tensor, max_size: int = 256) -> Any:
    """The first latent of a batch as a small PIL image (one pixel per latent cell, upscaled to fit)."""
    from PIL import Image

    factors = torch.tensor(SD_LATENT_RGB, dtype=torch.float32)
    rgb = torch.einsum("chw,cr->hwr", samples[0].detach().float().cpu(), factors)  # (h, w, 3)
    pixels = ((rgb + 1.0) * 127.5).clamp(0, 255).to(torch.uint8).numpy()
    image = Image.fromarray(pixels)
    scale = max(1, max_size // max(image.size))
    return image.resize((image.width * scale, image.height * scale), Image.Resampling.NEAREST)
