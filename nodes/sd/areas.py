"""Area conditioning as ComfyUI defines it: a prompt with an area predicts on its crop of the latent.

The guidance wrapper (`CFGDenoiser`) runs each prompt on the latent cropped to its area (the
whole latent when it has none) and averages the x0 predictions cell by cell, each weighted by
its strength; along an area edge that lies inside the latent the weight fades in over up to
8 cells (ComfyUI's "fuzz"). Cells no prompt covers predict 0. Before sampling, every area gets
an opposite prompt of the same area on the other side of the guidance (ComfyUI's
`create_cond_with_same_area_if_none`), so that cond and uncond compare like with like. Written
here because diffusers has no area conditioning.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch

from nodes.sd.values import Conditioning

# The widest fade along an inner area edge, in latent cells; narrower areas fade over a quarter
# of their size.
FEATHER_CELLS = 8


@dataclass(frozen=True)
class Crop:
    """The part of a latent one prompt sees: rows top..top+height, columns left..left+width."""

    top: int
    left: int
    height: int
    width: int

    def of(self, x: torch.Tensor) -> torch.Tensor:
        """This crop of a (B, C, H, W) tensor, as a view."""
        return x[..., self.top : self.top + self.height, self.left : self.left + self.width]


def crop_for(area: tuple[int, int, int, int] | None, height: int, width: int) -> Crop | None:
    """The crop an area covers in a latent of height x width cells, clipped to it; None if empty."""
    if area is None:
        return Crop(0, 0, height, width)
    area_height, area_width, top, left = area
    area_height, area_width = min(height - top, area_height), min(width - left, area_width)
    if area_height <= 0 or area_width <= 0:
        return None
    return Crop(top, left, area_height, area_width)


def area_weight(
    entry: Conditioning, crop: Crop, height: int, width: int, like: torch.Tensor
) -> torch.Tensor:
    """The weight of a prompt's prediction over its crop: its strength, faded in at inner edges.

    `like` is the cropped tensor the weight multiplies. An edge fades when the area does not
    reach the latent's border there: row t from the edge gets (t + 1) / n of the strength, over
    n = min(8, size // 4) rows.
    """
    weight = torch.full_like(like, entry.strength)
    if entry.area is None:
        return weight
    for dim, offset, size, full in (
        (-2, crop.top, crop.height, height),
        (-1, crop.left, crop.width, width),
    ):
        rows = min(FEATHER_CELLS, size // 4)
        for t in range(rows):
            factor = (t + 1) / rows
            if offset != 0:
                weight.narrow(dim, t, 1).mul_(factor)
            if offset + size < full:
                weight.narrow(dim, size - 1 - t, 1).mul_(factor)
    return weight


def _inside(area: tuple[int, int, int, int], other: tuple[int, int, int, int]) -> bool:
    height, width, top, left = area
    o_height, o_width, o_top, o_left = other
    return (
        top >= o_top
        and left >= o_left
        and top + height <= o_top + o_height
        and left + width <= o_left + o_width
    )


def _opposite(entry: Conditioning, others: Sequence[Conditioning]) -> Conditioning | None:
    """`entry`'s area, strength and ControlNets with the text of the smallest of `others` covering it.

    Others with an area are preferred to those without; None when the smallest covering one
    already has exactly this area (or nothing covers it).
    """
    assert entry.area is not None
    smallest: Conditioning | None = None
    for other in others:
        if other.area is None:
            if smallest is None:
                smallest = other
        elif _inside(entry.area, other.area) and (
            smallest is None
            or smallest.area is None
            or math.prod(smallest.area[:2]) > math.prod(other.area[:2])
        ):
            smallest = other
    if smallest is None or smallest.area == entry.area:
        return None
    return replace(entry, embeds=smallest.embeds, pooled=smallest.pooled, combined=())


def with_opposite_areas(
    positives: Sequence[Conditioning], negatives: Sequence[Conditioning]
) -> tuple[list[Conditioning], list[Conditioning]]:
    """Both prompt lists with an opposite prompt added for every area that lacks one.

    The positives are matched first, then every negative (including the copies just added), in
    the order ComfyUI's `process_conds` uses, so the same prompts come out.
    """
    positives, negatives = list(positives), list(negatives)
    for entry in list(positives):
        if entry.area is not None and (copy := _opposite(entry, negatives)) is not None:
            negatives.append(copy)
    for entry in list(negatives):
        if entry.area is not None and (copy := _opposite(entry, positives)) is not None:
            positives.append(copy)
    return positives, negatives


def with_uncond_controls(
    negatives: Sequence[Conditioning], positives: Sequence[Conditioning]
) -> list[Conditioning]:
    """Negatives given the ControlNets of positives made with the old apply (ComfyUI's rule).

    A positive without an area whose last ControlNet came from `ApplyControlNetToPrompt` hands
    its ControlNets to a negative without an area or ControlNets, in turn; nothing changes when
    a negative without an area already has ControlNets.
    """
    negatives = list(negatives)
    chains = [
        p.controls for p in positives if p.area is None and p.controls and p.controls[-1].to_uncond
    ]
    if not chains or any(n.area is None and n.controls for n in negatives):
        return negatives
    free = [i for i, n in enumerate(negatives) if n.area is None and not n.controls]
    if not free:
        return negatives
    originals = list(negatives)
    for turn, chain in enumerate(chains):
        index = free[turn % len(free)]
        negatives[index] = replace(originals[index], controls=chain)
    return negatives
