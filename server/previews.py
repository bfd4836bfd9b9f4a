"""Preview images for the websocket: a PIL image from a Progress event, as small JPEG bytes."""

from __future__ import annotations

import io
import logging
from typing import Any

log = logging.getLogger(__name__)

MAX_PREVIEW_SIDE = 512
JPEG_QUALITY = 85
PREVIEW_MIME = "image/jpeg"


def encode_preview(image: Any) -> bytes | None:
    """JPEG bytes of a PIL image (or of a callable making one), shrunk to fit 512 px; else None.

    Called on the worker thread, never on the event loop. Bytes pass through: a remote worker
    encodes its previews before they cross the network.
    """
    from PIL import Image

    if isinstance(image, bytes):
        return image
    if callable(image):  # nodes hand over a thunk, so that nobody pays for unwatched previews
        image = image()
    if not isinstance(image, Image.Image):
        log.warning("ignoring a preview of type %s; previews must be PIL images", type(image))
        return None
    picture = image if image.mode == "RGB" else image.convert("RGB")
    if max(picture.size) > MAX_PREVIEW_SIDE:
        picture = picture.copy()
        picture.thumbnail((MAX_PREVIEW_SIDE, MAX_PREVIEW_SIDE))
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()
