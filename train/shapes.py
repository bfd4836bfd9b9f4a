"""Seeded procedural training data: one coloured shape on a plain or two-tone background, captioned.

Every image is a pure function of (seed, index), so a dataset is reproducible from its seed alone.
A caption reads "a red circle on a white background, top left"; the position clause is left out of
some captions (the shape is then anywhere), and two-tone backgrounds read "on a white and gray
background". The hint for the ControlNet is the shape's silhouette, white on black.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

SIZE = 64
SUPERSAMPLE = 4  # drawn at 4x and box-filtered down, for antialiased edges

PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 170, 50),
    "blue": (30, 70, 220),
    "yellow": (245, 220, 30),
    "purple": (140, 50, 190),
    "orange": (250, 140, 20),
    "white": (245, 245, 245),
    "black": (15, 15, 15),
    "gray": (128, 128, 128),
}
SHAPE_COLOURS = ("red", "green", "blue", "yellow", "purple", "orange")
BACKGROUND_COLOURS = tuple(PALETTE)
SHAPES = ("circle", "square", "triangle", "diamond", "cross")
# Position words by (column, row) of the 3x3 grid the shape's centroid falls in.
POSITIONS: dict[tuple[int, int], str] = {
    (0, 0): "top left",
    (1, 0): "top",
    (2, 0): "top right",
    (0, 1): "left",
    (1, 1): "center",
    (2, 1): "right",
    (0, 2): "bottom left",
    (1, 2): "bottom",
    (2, 2): "bottom right",
}
# Centroid ranges per grid column/row, in pixels: kept clear of the thirds so that the position word
# is unambiguous, and the corners are reachable.
CELL_RANGES = ((13.0, 19.0), (29.0, 35.0), (45.0, 51.0))
MIN_SIDE, MAX_SIDE = 18.0, 30.0
CROSS_ARM = 1 / 3  # arm width as a fraction of the side


@dataclass(frozen=True)
class Scene:
    """One image's content: what is drawn where, and the words that say it."""

    shape: str
    colour: str
    background: tuple[str, ...]  # one colour, or two for a two-tone background
    split: str  # "vertical" or "horizontal" for two-tone backgrounds
    cx: float  # shape centroid in pixels
    cy: float
    side: float  # bounding-box side in pixels
    cell: tuple[int, int]

    @property
    def position(self) -> str:
        return POSITIONS[self.cell]

    def caption(self, with_position: bool = True) -> str:
        return caption(
            self.colour, self.shape, " and ".join(self.background),
            self.position if with_position else None,
        )  # fmt: skip


def caption(colour: str, shape: str, background: str, position: str | None = None) -> str:
    """The caption the data uses for a plain-background scene."""
    text = f"{_article(colour)} {colour} {shape} on {_article(background)} {background} background"
    return f"{text}, {position}" if position else text


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def random_scene(rng: np.random.Generator, two_tone_share: float = 0.2) -> Scene:
    """A random scene: any shape, shape colour, background (never the shape's colour) and cell."""
    shape = SHAPES[rng.integers(len(SHAPES))]
    colour = SHAPE_COLOURS[rng.integers(len(SHAPE_COLOURS))]
    others = [c for c in BACKGROUND_COLOURS if c != colour]
    if rng.random() < two_tone_share:
        first, second = rng.choice(len(others), size=2, replace=False)
        background: tuple[str, ...] = (others[first], others[second])
    else:
        background = (others[rng.integers(len(others))],)
    split = "vertical" if rng.random() < 0.5 else "horizontal"
    cell = (int(rng.integers(3)), int(rng.integers(3)))
    cx = float(rng.uniform(*CELL_RANGES[cell[0]]))
    cy = float(rng.uniform(*CELL_RANGES[cell[1]]))
    # The largest side that keeps the shape inside the image, 1 px from the border.
    up, down, sideways = _extent(shape)
    room = min(
        (cx - 1) / sideways, (SIZE - 1 - cx) / sideways, (cy - 1) / up, (SIZE - 1 - cy) / down
    )
    side = float(rng.uniform(MIN_SIDE, max(MIN_SIDE, min(MAX_SIDE, room))))
    return Scene(shape, colour, background, split, cx, cy, side, cell)


def _extent(shape: str) -> tuple[float, float, float]:
    """How far the shape reaches above, below and sideways of its centroid, per unit of side."""
    if shape == "triangle":  # the centroid sits a third of the height above the base
        return 2 / 3, 1 / 3, 1 / 2
    return 1 / 2, 1 / 2, 1 / 2


def _polygon(shape: str, cx: float, cy: float, side: float) -> list[tuple[float, float]] | None:
    h = side / 2
    if shape == "square":
        return [(cx - h, cy - h), (cx + h, cy - h), (cx + h, cy + h), (cx - h, cy + h)]
    if shape == "diamond":
        return [(cx, cy - h), (cx + h, cy), (cx, cy + h), (cx - h, cy)]
    if shape == "triangle":
        return [(cx, cy - 2 * side / 3), (cx + h, cy + side / 3), (cx - h, cy + side / 3)]
    if shape == "cross":
        a = side * CROSS_ARM / 2
        return [
            (cx - a, cy - h), (cx + a, cy - h), (cx + a, cy - a), (cx + h, cy - a),
            (cx + h, cy + a), (cx + a, cy + a), (cx + a, cy + h), (cx - a, cy + h),
            (cx - a, cy + a), (cx - h, cy + a), (cx - h, cy - a), (cx - a, cy - a),
        ]  # fmt: skip
    return None


def silhouette(scene: Scene) -> np.ndarray:
    """The shape's coverage in [0, 1], (SIZE, SIZE) float32, antialiased."""
    k = SUPERSAMPLE
    canvas = Image.new("L", (SIZE * k, SIZE * k), 0)
    draw = ImageDraw.Draw(canvas)
    cx, cy, side = scene.cx * k, scene.cy * k, scene.side * k
    points = _polygon(scene.shape, cx, cy, side)
    if points is None:  # circle
        r = side / 2
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=255)
    else:
        draw.polygon(points, fill=255)
    small = canvas.resize((SIZE, SIZE), Image.Resampling.BOX)
    return np.asarray(small, dtype=np.float32) / 255.0


def render(scene: Scene, cover: np.ndarray | None = None) -> np.ndarray:
    """The scene as an (SIZE, SIZE, 3) uint8 RGB image (`cover`: its silhouette, if already made)."""
    image = np.empty((SIZE, SIZE, 3), dtype=np.float32)
    image[:] = PALETTE[scene.background[0]]
    if len(scene.background) == 2:
        half = SIZE // 2
        if scene.split == "vertical":
            image[:, half:] = PALETTE[scene.background[1]]
        else:
            image[half:, :] = PALETTE[scene.background[1]]
    cover = (silhouette(scene) if cover is None else cover)[..., None]
    image = image * (1 - cover) + np.asarray(PALETTE[scene.colour], dtype=np.float32) * cover
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def scene_at(seed: int, index: int, two_tone_share: float = 0.2) -> Scene:
    """The scene number `index` of the dataset with this seed."""
    return random_scene(np.random.default_rng((seed, index)), two_tone_share)


def batch(
    seed: int, start: int, count: int, position_share: float = 0.7
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Images (N, 64, 64, 3) uint8, silhouettes (N, 64, 64) float32 and captions of scenes start.. .

    A caption names the position with probability `position_share` (drawn from the same seed).
    """
    images, masks, captions = [], [], []
    for index in range(start, start + count):
        scene = scene_at(seed, index)
        mask = silhouette(scene)
        images.append(render(scene, mask))
        masks.append(mask)
        with_position = np.random.default_rng((seed, index, 1)).random() < position_share
        captions.append(scene.caption(with_position))
    return np.stack(images), np.stack(masks), captions
