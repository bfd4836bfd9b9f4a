"""ComfyUI workflows (API format, editor format, PNGs) accepted wherever a graph is."""

from __future__ import annotations

from nodes.comfy.document import ComfyUIFormat

DOCUMENT_FORMATS = (ComfyUIFormat(),)
