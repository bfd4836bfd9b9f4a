"""POST /upload/mask: ComfyUI's mask editor saves a painted alpha channel onto an input image."""

from __future__ import annotations

import asyncio
import io
import json
from typing import Any

from aiohttp import BodyPartReader, web

from server.api_files import MAX_FIELD_BYTES, _read_part
from server.errors import ApiError
from server.files import (
    InvalidImage,
    OutsideFolder,
    UnsafePath,
    inspect_image,
    resolve_inside,
    save_upload,
    upload_folder,
    upload_stem,
)
from server.services import services


async def upload_mask(request: web.Request) -> dict[str, Any]:
    """Read `image` and `original_ref`, store the original with the new alpha; `{name, subfolder, type}`."""
    svc = services(request)
    if not request.content_type.startswith("multipart/form-data"):
        raise ApiError(415, "unsupported_media_type", "send multipart/form-data with an `image`")
    reader = await request.multipart()
    data, ref, subfolder = None, None, ""
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader):
            raise ApiError(400, "bad_request", "nested multipart bodies are not supported")
        if part.name == "image":
            data = await _read_part(part, svc.settings.max_upload_bytes, "the image")
        elif part.name == "original_ref":
            raw = await _read_part(part, MAX_FIELD_BYTES, "original_ref")
            try:
                ref = json.loads(raw)
            except json.JSONDecodeError:
                raise ApiError(400, "bad_request", "original_ref must be JSON") from None
        elif part.name == "subfolder":
            subfolder = (await _read_part(part, MAX_FIELD_BYTES, "subfolder")).decode()
        else:
            await _read_part(part, MAX_FIELD_BYTES, f"field {part.name!r}")
    if data is None or not isinstance(ref, dict) or not isinstance(ref.get("filename"), str):
        raise ApiError(400, "bad_request", "send an `image` and an `original_ref` with a filename")
    limit = svc.settings.max_upload_pixels
    try:
        await asyncio.to_thread(inspect_image, data, limit)
        original = await asyncio.to_thread(
            resolve_inside, svc.paths.input, str(ref.get("subfolder", "")), ref["filename"]
        )
        merged = await asyncio.to_thread(_with_alpha, original.read_bytes(), data)
        info = await asyncio.to_thread(inspect_image, merged, limit)
        stem = upload_stem(ref["filename"])
        async with svc.upload_lock:
            folder = await asyncio.to_thread(upload_folder, svc.paths.input, subfolder)
            name, _ = await asyncio.to_thread(save_upload, folder, stem, info, merged, None)
    except InvalidImage as exc:
        raise ApiError(400, exc.code, str(exc)) from None
    except UnsafePath as exc:
        raise ApiError(400, "bad_path", str(exc)) from None
    except OutsideFolder as exc:
        raise ApiError(403, "outside_folder", str(exc)) from None
    except OSError:
        raise ApiError(404, "not_found", f"no input image {ref['filename']!r}") from None
    return {"name": name, "subfolder": subfolder, "type": "input"}


def _with_alpha(original: bytes, mask: bytes) -> bytes:
    """The original image as RGBA PNG, its alpha taken from the mask image (resized to fit)."""
    from PIL import Image

    with Image.open(io.BytesIO(original)) as base, Image.open(io.BytesIO(mask)) as painted:
        rgba = base.convert("RGBA")
        alpha = painted.convert("RGBA").getchannel("A").resize(rgba.size)
        rgba.putalpha(alpha)
        out = io.BytesIO()
        rgba.save(out, format="PNG")
        return out.getvalue()
