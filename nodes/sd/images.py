"""Image files: load (RGBA gives a mask), and save numbered PNGs that carry their graph."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from nodes.sd.folder_files import list_files

if TYPE_CHECKING:
    from engine.outputs import OutputStore

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")
GRAPH_CHUNK = "latentgraph.graph"
PARAMETERS_CHUNK = "parameters"


class ImageFileError(ValueError):
    """An image file that cannot be read; the message says why."""


def list_images(folder: Path) -> list[str]:
    """Image files under `folder`, as sorted relative POSIX paths (see folder_files.py)."""
    return list_files(folder, IMAGE_SUFFIXES)


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
    from engine.outputs import FolderOutputStore

    return store_pngs(FolderOutputStore(folder), pixels, prefix, text, compress_level, truncate)


def store_pngs(
    store: OutputStore,
    pixels: torch.Tensor,
    prefix: str,
    text: dict[str, str],
    compress_level: int = 4,
    truncate: bool = False,
) -> list[str]:
    """Encode each image as a PNG and let `store` number and write it; returns relative paths."""
    parent = Path(prefix).parent.as_posix()  # a prefix may name a subfolder
    subfolder = "" if parent == "." else parent
    files = encode_pngs(pixels, text, compress_level, truncate)
    return store.save_numbered(subfolder, Path(prefix).name, ".png", files)


def encode_pngs(
    pixels: torch.Tensor, text: dict[str, str], compress_level: int = 4, truncate: bool = False
) -> list[bytes]:
    """PNG bytes of each image of a (B, H, W, 3) batch in [0, 1], with `text` in text chunks."""
    from PIL import Image, PngImagePlugin

    info = PngImagePlugin.PngInfo()
    for key, value in text.items():
        info.add_text(key, value)
    encoded = []
    for image in to_8bit(pixels, truncate).numpy():
        buffer = io.BytesIO()
        Image.fromarray(image).save(
            buffer, format="PNG", pnginfo=info, compress_level=compress_level
        )
        encoded.append(buffer.getvalue())
    return encoded


def to_8bit(pixels: torch.Tensor, truncate: bool = False) -> torch.Tensor:
    """[0, 1] floats as uint8: rounded, or truncated toward zero as ComfyUI's SaveImage does."""
    scaled = pixels.detach().float().cpu().clamp(0, 1) * 255
    return (scaled if truncate else scaled.round()).to(torch.uint8)


def png_text(document: dict[str, Any], parameters: str) -> dict[str, str]:
    """The text chunks a saved PNG carries: the whole graph, and its generation parameters
    (A1111-style infotext, see `nodes.sd.infotext`)."""
    return {
        GRAPH_CHUNK: json.dumps(document, separators=(",", ":")),
        PARAMETERS_CHUNK: parameters,
    }
