"""Image files: load (RGBA gives a mask), and save numbered PNGs that carry their graph."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import torch

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")
GRAPH_CHUNK = "latentgraph.graph"
PARAMETERS_CHUNK = "parameters"


class ImageFileError(ValueError):
    """An image file that cannot be read; the message says why."""


def list_images(folder: Path) -> list[str]:
    """Image files under `folder`, as sorted relative POSIX paths."""
    if not folder.is_dir():
        return []
    return sorted(
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")
    )


def load_image(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixels (B, H, W, 3) in [0, 1] and mask (B, H, W), 1 where alpha is 0; frames become a batch."""
    from PIL import Image, ImageOps, ImageSequence, UnidentifiedImageError

    from engine.limits import limits

    allowed = limits().max_pixels
    try:
        with Image.open(path) as opened:
            # Image.open reads only the header: refuse before decoding what cannot fit.
            width, height = opened.size
            frame_count = getattr(opened, "n_frames", 1)
            if width * height > allowed:
                raise ImageFileError(
                    f"{path.name} is {width}x{height}, more than the {allowed:,} pixels allowed "
                    "(LATENTGRAPH_MAX_PIXELS)"
                )
            if width * height * frame_count > allowed * 4:
                raise ImageFileError(
                    f"{path.name} has {frame_count} frames of {width}x{height}, too many to load"
                )
            frames = [
                ImageOps.exif_transpose(frame.copy()) for frame in ImageSequence.Iterator(opened)
            ]
    except ImageFileError:
        raise
    except FileNotFoundError:
        raise ImageFileError(f"{path.name} does not exist") from None
    except (
        UnidentifiedImageError,
        Image.DecompressionBombError,
        OSError,
        SyntaxError,
        ValueError,
        RuntimeError,
    ) as exc:
        raise ImageFileError(f"{path.name} is not a readable image ({exc})") from None
    size = frames[0].size
    frames = [f for f in frames if f.size == size]  # frames of another size cannot share a batch
    pixels, masks = [], []
    for frame in frames:
        rgba = frame.convert("RGBA")
        data = torch.frombuffer(bytearray(rgba.tobytes()), dtype=torch.uint8)
        data = data.reshape(size[1], size[0], 4).float() / 255.0  # (H, W, 4)
        pixels.append(data[..., :3])
        has_alpha = "A" in frame.getbands() or "transparency" in frame.info
        masks.append(1.0 - data[..., 3] if has_alpha else torch.zeros(size[1], size[0]))
    return torch.stack(pixels), torch.stack(masks)


def save_pngs(
    pixels: torch.Tensor,
    folder: Path,
    prefix: str,
    text: dict[str, str],
    compress_level: int = 4,
    truncate: bool = False,
) -> list[str]:
    """Write each image as `<prefix>_00001.png`, numbering on from files already there.

    `text` goes into PNG text chunks (the graph and the generation parameters, say). Values are
    rounded to 8 bits, or truncated (as ComfyUI does) with `truncate`.
    """
    from PIL import Image, PngImagePlugin

    stem = Path(prefix).name  # a prefix may name a subfolder; keep it inside `folder`
    subfolder = folder / Path(prefix).parent
    subfolder.mkdir(parents=True, exist_ok=True)
    counter = _next_counter(subfolder, stem)
    info = PngImagePlugin.PngInfo()
    for key, value in text.items():
        info.add_text(key, value)
    names = []
    array = to_8bit(pixels, truncate).numpy()
    for image in array:
        # Exclusive create: another process saving to the same folder takes its own numbers.
        while True:
            name = f"{stem}_{counter:05d}.png"
            counter += 1
            try:
                file = (subfolder / name).open("xb")
            except FileExistsError:
                continue
            try:
                with file:
                    Image.fromarray(image).save(
                        file, format="PNG", pnginfo=info, compress_level=compress_level
                    )
            except BaseException:
                (subfolder / name).unlink(missing_ok=True)  # never leave half a picture
                raise
            break
        names.append((Path(prefix).parent / name).as_posix())
    return names


def to_8bit(pixels: torch.Tensor, truncate: bool = False) -> torch.Tensor:
    """[0, 1] floats as uint8: rounded, or truncated toward zero as ComfyUI's SaveImage does."""
    scaled = pixels.detach().float().cpu().clamp(0, 1) * 255
    return (scaled if truncate else scaled.round()).to(torch.uint8)


def _next_counter(folder: Path, stem: str) -> int:
    pattern = re.compile(rf"^{re.escape(stem)}_(\d+)\.png$")
    numbers = [int(m.group(1)) for p in folder.iterdir() if (m := pattern.match(p.name))]
    return max(numbers, default=0) + 1


def generation_parameters(document: dict[str, Any]) -> dict[str, Any]:
    """The settings a person wants to see in a saved image: prompts, sampler settings, models."""
    nodes = document.get("nodes", {})
    found: dict[str, Any] = {}
    for node_id, entry in nodes.items():
        kind, inputs = entry.get("type"), entry.get("inputs", {})
        if kind == "Sample":
            found.setdefault("sampling", {})[node_id] = inputs
            for role in ("positive", "negative"):
                text = _prompt_text(nodes, entry.get("links", {}).get(role))
                if text is not None:
                    found.setdefault(f"{role}_prompt", text)
        elif kind in ("LoadCheckpoint", "LoadLora", "LoadVAE", "LoadControlNet"):
            found.setdefault("models", {})[node_id] = inputs
        elif kind == "EmptyLatent":
            found["size"] = [inputs.get("width"), inputs.get("height")]
    return found


def _prompt_text(nodes: dict[str, Any], link: str | None, depth: int = 0) -> str | None:
    """Follow a conditioning link back to the text it was encoded from."""
    if link is None or depth > 8:
        return None
    entry = nodes.get(link.split(".")[0], {})
    if "text" in entry.get("inputs", {}):
        return str(entry["inputs"]["text"])
    links = entry.get("links", {})
    for name in ("tokens", "conditioning", "text"):
        if name in links:
            return _prompt_text(nodes, links[name], depth + 1)
    return None


def png_text(document: dict[str, Any]) -> dict[str, str]:
    """The text chunks a saved PNG carries: the whole graph, and its generation parameters."""
    return {
        GRAPH_CHUNK: json.dumps(document, separators=(",", ":")),
        PARAMETERS_CHUNK: json.dumps(generation_parameters(document), separators=(",", ":")),
    }
