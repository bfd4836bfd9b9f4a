"""Image nodes: load from the input folder, save or preview into the output folder, rescale."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Literal

from engine.config import Paths
from engine.context import RunContext
from engine.errors import NodeInputError
from engine.node import Input, Node, Outputs, node
from nodes.sd.values import Image, Mask

PREVIEW_FOLDER = "previews"


def _input_images(paths: Paths) -> list[str]:
    from nodes.sd.images import list_images

    return list_images(paths.input)


class ImageMaskOut(Outputs):
    image: Image
    mask: Mask


class ImageOut(Outputs):
    image: Image


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
        path = (root / self.image).resolve()
        if not path.is_relative_to(root):
            raise NodeInputError("image", f"{self.image!r} is outside the input folder")
        return path


@node("SaveImage", category="image", output_node=True)
class SaveImage(Node):
    """Save images as numbered PNGs in the output folder, with the graph and settings inside."""

    images: Image = Input()
    prefix: str = Input("latentgraph", tooltip="file name prefix; may include a subfolder")

    def run(self, ctx: RunContext) -> Outputs:
        return Outputs(ui={"images": _save(self.images, ctx, self.prefix)})


@node("PreviewImage", category="image", output_node=True)
class PreviewImage(Node):
    """Show images without keeping them: they go to the output folder's previews/ subfolder."""

    images: Image = Input()

    def run(self, ctx: RunContext) -> Outputs:
        return Outputs(ui={"images": _save(self.images, ctx, f"{PREVIEW_FOLDER}/preview", level=1)})


def _save(images: Image, ctx: RunContext, prefix: str, level: int = 4) -> list[dict[str, str]]:
    from nodes.sd.images import png_text, store_pngs

    if ".." in Path(prefix).parts or Path(prefix).is_absolute():
        raise NodeInputError("prefix", f"{prefix!r} must stay inside the output folder")
    names = store_pngs(ctx.output_store(), images.pixels, prefix, png_text(ctx.graph), level)
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

    def run(self, ctx: RunContext) -> ImageOut:
        import torch
        import torch.nn.functional as F

        pixels = self.image.pixels  # (B, H, W, 3)
        h, w = pixels.shape[1], pixels.shape[2]
        if self.width == 0 and self.height == 0:
            raise NodeInputError("width", "width and height cannot both be 0")
        out_w = self.width or round(w * self.height / h)
        out_h = self.height or round(h * self.width / w)
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
