"""Read back what a demo-model picture shows: background and shape colour, shape and position.

No learned weights: colours are the nearest palette entries to robust colour statistics, the shape
is the one whose ideal outline best overlaps (IoU) the pixels in the figure's bounding box, and the
position and size come from the figure's first and second moments.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from train.shapes import PALETTE, POSITIONS

NAMES = tuple(PALETTE)
RGB = np.asarray([PALETTE[name] for name in NAMES], dtype=np.float32)
GRID = 32  # the bounding box is resampled to GRID x GRID before matching outlines


@dataclass(frozen=True)
class Reading:
    """What one image shows; `shape` and `colour` are "none" when no figure stands out."""

    background: str
    colour: str
    shape: str
    position: str
    centroid: tuple[float, float]  # (x, y) as fractions of the width and height
    area: float  # the figure's share of the image
    spread: float  # sqrt of the figure's second central moment (trace), in image fractions


def nearest_colour(rgb: np.ndarray) -> str:
    return NAMES[int(np.argmin(((RGB - rgb) ** 2).sum(axis=1)))]


def colour_share(image: np.ndarray, name: str, tolerance: float = 60.0) -> float:
    """The share of pixels within `tolerance` (RGB distance) of the palette colour `name`."""
    distance = np.linalg.norm(image.astype(np.float32) - np.asarray(PALETTE[name]), axis=-1)
    return float((distance < tolerance).mean())


def figure_mask(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mask, background rgb): the pixels closer to the figure's colour than to the border's."""
    pixels = image.astype(np.float32)
    border = np.concatenate(
        [pixels[:2].reshape(-1, 3), pixels[-2:].reshape(-1, 3),
         pixels[:, :2].reshape(-1, 3), pixels[:, -2:].reshape(-1, 3)]
    )  # fmt: skip
    background = np.median(border, axis=0)
    distance = np.linalg.norm(pixels - background, axis=-1)
    candidates = pixels[distance > 60]
    if len(candidates) < 0.005 * distance.size:
        return np.zeros(distance.shape, dtype=bool), background
    figure = np.median(candidates, axis=0)
    mask = np.linalg.norm(pixels - figure, axis=-1) < distance
    return mask, background


def _outline(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """The ideal shape in bounding-box coordinates u, v in [-1, 1] (v grows downwards)."""
    if shape == "circle":
        return u**2 + v**2 <= 1
    if shape == "square":
        return np.ones_like(u, dtype=bool)
    if shape == "diamond":
        return np.abs(u) + np.abs(v) <= 1
    if shape == "triangle":  # apex at the top centre, base along the bottom
        return np.abs(u) <= (v + 1) / 2
    if shape == "cross":  # arms a third of the side wide
        return (np.abs(u) <= 1 / 3) | (np.abs(v) <= 1 / 3)
    raise ValueError(shape)


SHAPE_NAMES = ("circle", "square", "triangle", "diamond", "cross")
_centres = (np.arange(GRID) + 0.5) / GRID * 2 - 1
_U, _V = np.meshgrid(_centres, _centres)
TEMPLATES = {name: _outline(name, _U, _V) for name in SHAPE_NAMES}


def classify_shape(mask: np.ndarray) -> str:
    rows = np.flatnonzero(mask.sum(axis=1) >= 1)
    cols = np.flatnonzero(mask.sum(axis=0) >= 1)
    if len(rows) < 3 or len(cols) < 3:
        return "none"
    top, bottom, left, right = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    ys = top + ((np.arange(GRID) + 0.5) * (bottom - top) / GRID).astype(int)
    xs = left + ((np.arange(GRID) + 0.5) * (right - left) / GRID).astype(int)
    box = mask[np.ix_(ys, xs)]
    scores = {
        name: (box & template).sum() / max(1, (box | template).sum())
        for name, template in TEMPLATES.items()
    }
    return max(scores, key=lambda name: scores[name])


def read(image: np.ndarray) -> Reading:
    """Read an (H, W, 3) uint8 RGB image with one figure on a plain background."""
    height, width = image.shape[:2]
    mask, background = figure_mask(image)
    area = float(mask.mean())
    if area < 0.005:
        return Reading(nearest_colour(background), "none", "none", "none", (0.5, 0.5), 0.0, 0.0)
    ys, xs = np.nonzero(mask)
    cx, cy = xs.mean() / width, ys.mean() / height
    spread = float(np.sqrt(xs.var() / width**2 + ys.var() / height**2))
    cell = (min(2, int(cx * 3)), min(2, int(cy * 3)))
    return Reading(
        background=nearest_colour(background),
        colour=nearest_colour(np.median(image[mask].astype(np.float32), axis=0)),
        shape=classify_shape(mask),
        position=POSITIONS[cell],
        centroid=(float(cx), float(cy)),
        area=area,
        spread=spread,
    )
