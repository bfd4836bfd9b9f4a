"""File routes: upload an image to the input folder, and view a file from the output or input folder."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import BodyPartReader, MultipartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from server.errors import ApiError
from server.files import (
    FOLDER_TYPES,
    InvalidImage,
    OutsideFolder,
    UnsafePath,
    content_type,
    inspect_image,
    resolve_inside,
    save_upload,
    subfolder_parts,
    upload_folder,
    upload_stem,
    view_url,
)
from server.payloads import json_response
from server.schemas import UploadedImage
from server.services import services

CHUNK = 64 * 1024
MAX_FIELD_BYTES = 4096
MULTIPART_OVERHEAD = 64 * 1024
_IMAGE_ERROR_STATUS = {
    "not_an_image": 415,
    "unsupported_format": 415,
    "corrupt_image": 400,
    "too_large": 413,
}
# Served files never run as a page in the server's origin, whatever they contain.
_VIEW_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; sandbox",
    "Cache-Control": "no-cache",
}


async def upload_image(request: web.Request) -> web.Response:
    """POST /api/v1/uploads: multipart `image` (+ optional `subfolder`); stored once per content."""
    svc = services(request)
    limit = svc.settings.max_upload_bytes
    if not request.content_type.startswith("multipart/form-data"):
        raise ApiError(415, "unsupported_media_type", "send multipart/form-data with an `image`")
    if request.content_length is not None and request.content_length > limit + MULTIPART_OVERHEAD:
        raise ApiError(413, "too_large", f"uploads are limited to {limit} bytes")
    filename, data, subfolder = await _read_form(request, limit)
    try:
        stem = upload_stem(filename)
        subfolder_parts(subfolder)
    except UnsafePath as exc:
        raise ApiError(400, "bad_path", str(exc)) from None
    try:
        info = await asyncio.to_thread(inspect_image, data, svc.settings.max_upload_pixels)
    except InvalidImage as exc:
        raise ApiError(_IMAGE_ERROR_STATUS[exc.code], exc.code, str(exc)) from None
    async with svc.upload_lock:
        try:
            folder = await asyncio.to_thread(upload_folder, svc.paths.input, subfolder)
        except OutsideFolder as exc:
            raise ApiError(403, "outside_folder", str(exc)) from None
        known = await svc.store.call(lambda s: s.find_upload(subfolder, info.sha256))
        try:
            name, existing = await asyncio.to_thread(save_upload, folder, stem, info, data, known)
        except UnsafePath as exc:
            raise ApiError(409, "conflict", str(exc)) from None
        await svc.store.call(lambda s: s.record_upload(subfolder, info.sha256, name))
    uploaded = UploadedImage(
        name=name,
        subfolder=subfolder,
        url=view_url(name, subfolder, "input"),
        sha256=info.sha256,
        size=len(data),
        width=info.width,
        height=info.height,
        format=info.format,
        existing=existing,
    )
    return json_response(uploaded, status=200 if existing else 201)


async def view_file(request: web.Request) -> web.StreamResponse:
    """GET /api/v1/view?filename=&subfolder=&type=output|input: a file, never one outside its folder."""
    svc = services(request)
    kind = request.query.get("type", "output")
    if kind not in FOLDER_TYPES:
        raise ApiError(400, "bad_path", f"type must be one of {', '.join(FOLDER_TYPES)}")
    filename = request.query.get("filename")
    if filename is None:
        raise ApiError(400, "bad_path", "filename is required")
    root = svc.paths.output if kind == "output" else svc.paths.input
    try:
        path = await asyncio.to_thread(
            resolve_inside, root, request.query.get("subfolder", ""), filename
        )
    except UnsafePath as exc:
        raise ApiError(400, "bad_path", str(exc)) from None
    except OutsideFolder as exc:
        raise ApiError(403, "outside_folder", str(exc)) from None
    except (OSError, RuntimeError):  # missing, a dangling or looping symlink, a name too long
        raise ApiError(404, "not_found", f"no file {filename!r} in {kind}") from None
    headers = dict(_VIEW_HEADERS)
    mime = content_type(path)
    if mime is None:
        headers["Content-Type"] = "application/octet-stream"
        headers["Content-Disposition"] = "attachment"
    else:
        headers["Content-Type"] = mime
    return web.FileResponse(path, headers=headers)


async def _read_form(request: web.Request, limit: int) -> tuple[str | None, bytes, str]:
    """The image's client file name and bytes, and the subfolder field, read within limits."""
    try:
        reader = await request.multipart()
    except (ValueError, AssertionError, KeyError) as exc:  # no boundary, or a malformed one
        raise ApiError(400, "bad_request", f"malformed multipart body: {exc}") from None
    filename, data, subfolder = None, None, ""
    while (part := await _next_part(reader)) is not None:
        if not isinstance(part, BodyPartReader):
            raise ApiError(400, "bad_request", "nested multipart bodies are not supported")
        if part.name == "image":
            if data is not None:
                raise ApiError(400, "bad_request", "send one image per upload")
            filename = part.filename
            data = await _read_part(part, limit, "the image")
        elif part.name == "subfolder":
            try:
                subfolder = (await _read_part(part, MAX_FIELD_BYTES, "subfolder")).decode("utf-8")
            except UnicodeDecodeError:
                raise ApiError(400, "bad_path", "subfolder is not UTF-8 text") from None
        else:
            await _read_part(part, MAX_FIELD_BYTES, f"field {part.name!r}")
    if data is None:
        raise ApiError(400, "bad_request", "the form has no `image` file")
    return filename, data, subfolder


async def _next_part(reader: MultipartReader) -> Any:
    try:
        return await reader.next()
    except (ValueError, AssertionError, LookupError, RuntimeError, HttpProcessingError) as exc:
        raise ApiError(400, "bad_request", f"malformed multipart body: {exc}") from None


async def _read_part(part: BodyPartReader, limit: int, what: str) -> bytes:
    chunks, size = [], 0
    while chunk := await _read_chunk(part):
        size += len(chunk)
        if size > limit:
            raise ApiError(413, "too_large", f"{what} is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def _read_chunk(part: BodyPartReader) -> bytes:
    try:
        return await part.read_chunk(CHUNK)
    except (ValueError, AssertionError, LookupError, RuntimeError, HttpProcessingError) as exc:
        raise ApiError(400, "bad_request", f"malformed multipart body: {exc}") from None
