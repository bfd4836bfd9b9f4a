"""The workflow a ComfyUI PNG carries: its `prompt` (API format) and `workflow` (editor) text chunks."""

from __future__ import annotations

import io
import json
from typing import Any

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CHUNKS = ("prompt", "workflow")


def read_png_workflow(data: bytes) -> dict[str, Any] | None:
    """`{"prompt": ..., "workflow": ...}` from a PNG's text chunks; None if it carries neither."""
    if not data.startswith(PNG_SIGNATURE):
        return None
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            text = dict(getattr(image, "text", {}) or {})
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        return None
    found: dict[str, Any] = {}
    for key in CHUNKS:
        if key in text:
            try:
                found[key] = json.loads(text[key])
            except json.JSONDecodeError:
                continue
    return found or None
