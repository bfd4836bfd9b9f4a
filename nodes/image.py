"""Image nodes: load from the input folder, save or preview into the output folder, rescale."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Literal

from engine.config import Paths
from engine.context import RunContext
from engine.errors import NodeInputError
from engine.node import Input, Node, Outputs, node
from nodes.sd.values import Image, Mask
from nodes.shared_outputs import ImageOut

PREVIEW_FOLDER = "previews"
Quantize = Literal["round", "truncate"]
QUANTIZE_HELP = "how [0, 1] becomes 8 bits; ComfyUI truncates"


def _input_images(paths: Paths) -> list[str]:
    from nodes.sd.images import list_images

    return list_images(paths.input)


_input_images.where = lambda paths: f"the input folder {paths.input}"  # type: ignore[attr-defined]
MAX_PREFIX_CHARS = 200
# The numbered suffix save_pngs adds ("_00001.png"), which must still fit a file name.
_SUFFIX_BYTES = 16
_NAME_BYTES = 255


def check_prefix(prefix: str, paths: Paths | None) -> str | None:
    """What is wrong with a SaveImage prefix, before anything runs; None if it is usable."""
    if not prefix.strip():
        return "the prefix is empty"
    if len(prefix) > MAX_PREFIX_CHARS:
        return f"the prefix is longer than {MAX_PREFIX_CHARS} characters"
    if any(ord(c) < 32 or ord(c) == 127 for c in prefix):
        return "the prefix contains a control character (such as NUL or a newline)"
    path = Path(prefix)
    if path.is_absolute() or ".." in path.parts or "\\" in prefix:
        return f"{prefix!r} must stay inside the output folder (no absolute path, '..' or '\\')"
    if any(len(part.encode()) > _NAME_BYTES - _SUFFIX_BYTES for part in path.parts):
        return "a part of the prefix is too long for a file name"
    if prefix.endswith("/") or not path.name or path.name.startswith("."):
        return "the prefix must end in a visible file name (like 'portraits/cat')"
    if paths is None:
        return None
    return _check_output_path(paths.output, path.parent)


def _check_output_path(output: Path, subfolder: Path) -> str | None:
    """A subfolder of the output folder that can be created: no file in the way, no link out."""
    folder = output
    for part in (".", *subfolder.parts):  # "." keeps the output folder itself first
        folder = folder / part
        if folder.exists() and not folder.is_dir():
            return f"{folder} is a file, so images cannot be saved inside it"
        if not folder.exists():
            break
    try:
        inside = (output / subfolder).resolve().is_relative_to(output.resolve())
    except (OSError, RuntimeError):
        return f"{output / subfolder} cannot be resolved (a symlink loop?)"
    return None if inside else f"{subfolder} leads out of the output folder {output}"


class ImageMaskOut(Outputs):
    image: Image
    mask: Mask


@node("LoadImage", category="image", volatile=True)
class LoadImage(Node):
    """Load an image from the input folder; transparent pixels become the mask (1 = masked)."""

    image: str = Input(choices=_input_images, tooltip="a file in the input folder")

    def fingerprint(self, paths: Paths) -> str:
        # Re-run when the file's bytes change, not just its name.
        return hashlib.sha256(self._path(paths).read_bytes()).hexdigest()

    def run(self, ctx: RunContext) -> ImageMaskOut:
        from nodes.sd.images import ImageFileError, load_image

        try:
            pixels, mask = load_image(self._path(ctx.paths))
        except ImageFileError as exc:
            raise NodeInputError("image", str(exc)) from None
        return ImageMaskOut(image=Image(pixels=pixels), mask=Mask(mask=mask))

    def _path(self, paths: Paths) -> Path:
        root = paths.input.resolve()
        try:
            path = (root / self.image).resolve()
        except RuntimeError:  # a symlink loop, before Python 3.13
            raise NodeInputError("image", f"{self.image!r} is a symlink loop") from None
        if not path.is_relative_to(root):
            raise NodeInputError("image", f"{self.image!r} is outside the input folder")
        return path


@node("SaveImage", category="image", output_node=True)
class SaveImage(Node):
    """Save images as numbered PNGs in the output folder, with the graph and settings inside."""

    images: Image = Input()
    prefix: str = Input(
        "latentgraph", tooltip="file name prefix; may include a subfolder", check=check_prefix
    )
    quantize: Quantize = Input("round", tooltip=QUANTIZE_HELP)

    def run(self, ctx: RunContext) -> Outputs:
        return Outputs(ui={"images": _save(self.images, ctx, self.prefix, quantize=self.quantize)})


@node("PreviewImage", category="image", output_node=True)
class PreviewImage(Node):
    """Show images without keeping them: they go to the output folder's previews/ subfolder."""

    images: Image = Input()
    quantize: Quantize = Input("round", tooltip=QUANTIZE_HELP)

    def run(self, ctx: RunContext) -> Outputs:
        prefix = f"{PREVIEW_FOLDER}/preview"
        return Outputs(ui={"images": _save(self.images, ctx, prefix, 1, self.quantize)})


def _save(
    images: Image, ctx: RunContext, prefix: str, level: int = 4, quantize: str = "round"
) -> list[dict[str, str]]:
    from nodes.generation import generation_parameters
    from nodes.sd.images import png_text, store_pngs
    from nodes.sd.infotext import format_infotext

    problem = check_prefix(prefix, ctx.paths)  # checked at validation; the folder may have changed
    if problem is not None:
        raise NodeInputError("prefix", problem)
    _, height, width, _ = images.pixels.shape
    parameters = generation_parameters(ctx.nodes, ctx.node_id) | {"Size": f"{width}x{height}"}
    names = store_pngs(
        ctx.output_store(),
        images.pixels,
        prefix,
        png_text(ctx.graph, format_infotext(parameters)),
        level,
        truncate=quantize == "truncate",
    )
    return [
        {
            "filename": Path(n).name,
            "subfolder": Path(n).parent.as_posix().strip("."),
            "type": "output",
        }
        for n in names
    ]


@node("ScaleImage", category="image/transform")
class ScaleImage(Node):
    """Resize images to a new size (0 keeps the aspect ratio from the other side)."""

    image: Image = Input()
    method: Literal["nearest-exact", "bilinear", "area", "bicubic", "lanczos"] = "bilinear"
    width: int = Input(512, ge=0, le=16384)
    height: int = Input(512, ge=0, le=16384)

    @classmethod
    def check_literals(cls, literals: dict[str, Any]) -> list[tuple[str, str]]:
        from nodes.latent import pixel_problem

        size = pixel_problem(literals.get("width"), literals.get("height"))
        return [] if size is None else [("width", size)]

    def run(self, ctx: RunContext) -> ImageOut:
        import torch
        import torch.nn.functional as F

        from nodes.latent import pixel_problem

        pixels = self.image.pixels  # (B, H, W, 3)
        h, w = pixels.shape[1], pixels.shape[2]
        if self.width == 0 and self.height == 0:
            raise NodeInputError("width", "width and height cannot both be 0")
        out_w = self.width or round(w * self.height / h)
        out_h = self.height or round(h * self.width / w)
        size = pixel_problem(out_w, out_h)
        if size is not None:
            raise NodeInputError("width", size)
        if self.method == "lanczos":
            import numpy as np
            from PIL import Image as PILImage

            array = (pixels.cpu().clamp(0, 1) * 255).round().to(torch.uint8).numpy()
            frames = [
                PILImage.fromarray(a).resize((out_w, out_h), PILImage.Resampling.LANCZOS)
                for a in array
            ]
            resized = torch.stack([torch.from_numpy(np.asarray(f)) for f in frames])
            return ImageOut(image=Image(pixels=resized.float() / 255.0))
        chw = pixels.permute(0, 3, 1, 2)
        resized = F.interpolate(chw, size=(out_h, out_w), mode=self.method)
        return ImageOut(image=Image(pixels=resized.permute(0, 2, 3, 1).clamp(0, 1).contiguous()))
