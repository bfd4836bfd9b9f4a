"""Files the API serves and accepts: path resolution that cannot leave its folder, and image uploads.

A name is checked before it touches the file system (no separators, `..`, hidden parts, NUL,
control characters or percent signs), then the resolved real path must lie inside the folder,
which also stops symlinks that point out of it.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlencode

from server.settings import API_PREFIX

FolderType = Literal["output", "input"]
FOLDER_TYPES: tuple[FolderType, ...] = ("output", "input")
MAX_NAME_BYTES = 255
MAX_SUBFOLDER_DEPTH = 8
# Pillow format → the extension an upload is saved with.
IMAGE_FORMATS = {"PNG": ".png", "JPEG": ".jpg", "WEBP": ".webp", "GIF": ".gif", "BMP": ".bmp"}
MIME_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".webp": "image/webp",
    ".gif": "image/gif",
    ".bmp": "image/bmp",
}
_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f/\\:%*?\"<>|]")
_UNSAFE_STEM_CHARS = re.compile(r"[^A-Za-z0-9._ -]+")


class UnsafePath(ValueError):
    """A file name or subfolder that is malformed or could leave its folder."""


class OutsideFolder(PermissionError):
    """A path that resolves (through a symlink, say) to somewhere outside its folder."""


def check_name(part: str, what: str = "filename") -> None:
    """Raise UnsafePath unless `part` is one plain, visible path component."""
    if not part:
        raise UnsafePath(f"{what} is empty")
    if len(part.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        raise UnsafePath(f"{what} is too long")
    if _FORBIDDEN.search(part):
        raise UnsafePath(f"{what} contains a path separator or a forbidden character")
    if part.startswith((".", "~")):
        raise UnsafePath(f"{what} may not start with '.' or '~'")
    if part != part.strip():
        raise UnsafePath(f"{what} has leading or trailing spaces")


def subfolder_parts(subfolder: str) -> list[str]:
    """The components of a relative subfolder ("a/b"); "" is the folder itself."""
    if subfolder == "":
        return []
    parts = subfolder.split("/")
    if len(parts) > MAX_SUBFOLDER_DEPTH:
        raise UnsafePath("subfolder is too deep")
    for part in parts:
        check_name(part, "subfolder")
    return parts


def resolve_inside(root: Path, subfolder: str, filename: str) -> Path:
    """The real path of an existing file under `root`.

    Raises UnsafePath for a bad name, FileNotFoundError if there is no such file, and
    OutsideFolder if the real path (symlinks followed) is not inside `root`.
    """
    check_name(filename)
    parts = subfolder_parts(subfolder)
    real_root = root.resolve()
    try:
        path = real_root.joinpath(*parts, filename).resolve(strict=True)
    except RuntimeError:  # Python < 3.13 reports a symlink loop this way, not as OSError
        raise FileNotFoundError(filename) from None
    if not path.is_relative_to(real_root):
        raise OutsideFolder(f"{filename} resolves outside the {root.name} folder")
    if not path.is_file():
        raise FileNotFoundError(filename)
    return path


def view_url(filename: str, subfolder: str = "", type: str = "output") -> str:
    """The view route's URL for a file, relative to the server root."""
    return f"{API_PREFIX}/view?" + urlencode(
        {"filename": filename, "subfolder": subfolder, "type": type}
    )


def with_view_urls(ui: dict[str, Any] | None) -> dict[str, Any] | None:
    """A UI result with a `url` added to every file entry ({filename, subfolder, type})."""
    if ui is None:
        return None
    shown: dict[str, Any] = {}
    for kind, items in ui.items():
        if not isinstance(items, list):
            shown[kind] = items
            continue
        shown[kind] = [_with_url(item) for item in items]
    return shown


def _with_url(item: Any) -> Any:
    if not (isinstance(item, dict) and isinstance(item.get("filename"), str)):
        return item
    folder = item.get("type", "output")
    if folder not in FOLDER_TYPES:
        return item
    return {**item, "url": view_url(item["filename"], str(item.get("subfolder", "")), folder)}


def delete_outputs(root: Path, outputs: dict[str, Any]) -> list[str]:
    """Delete the output-folder files a job's UI results name; returns the ones removed.

    Each name goes through the same checks as the view route, so a stored result can never
    make this delete anything outside the output folder.
    """
    deleted = []
    for ui in outputs.values():
        for items in (ui or {}).values():
            for item in items if isinstance(items, list) else []:
                if not isinstance(item, dict) or item.get("type", "output") != "output":
                    continue
                subfolder, filename = str(item.get("subfolder", "")), item.get("filename")
                if not isinstance(filename, str):
                    continue
                try:
                    path = resolve_inside(root, subfolder, filename)
                    path.unlink()
                except (UnsafePath, OutsideFolder, OSError):
                    continue
                deleted.append(f"{subfolder}/{filename}" if subfolder else filename)
    return deleted


def content_type(path: Path) -> str | None:
    """The image MIME type for a file name, or None for anything else (served as a download)."""
    return MIME_TYPES.get(path.suffix.lower())


# --- Uploads. ---


class InvalidImage(ValueError):
    """Uploaded bytes that are not an image we accept, or a corrupt one; `code` says which."""

    def __init__(
        self,
        code: Literal["not_an_image", "unsupported_format", "corrupt_image", "too_large"],
        message: str,
    ) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class ImageInfo:
    """What verification found out about an uploaded image."""

    format: str
    width: int
    height: int
    sha256: str

    @property
    def extension(self) -> str:
        return IMAGE_FORMATS[self.format]


def inspect_image(data: bytes, max_pixels: int) -> ImageInfo:
    """Verify that `data` is one whole PNG, JPEG, WebP, GIF or BMP image; raises InvalidImage."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as image:
                kind, (width, height) = image.format, image.size
                if kind not in IMAGE_FORMATS:
                    raise InvalidImage(
                        "unsupported_format",
                        f"unsupported image format {kind}; use one of {', '.join(IMAGE_FORMATS)}",
                    )
                if width * height > max_pixels:
                    raise InvalidImage(
                        "too_large", f"the image has too many pixels: {width}x{height}"
                    )
                image.verify()
            # verify() checks structure only; decoding catches truncated pixel data.
            with Image.open(io.BytesIO(data)) as image:
                image.load()
    except InvalidImage:
        raise
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        raise InvalidImage("too_large", f"the image has too many pixels: {exc}") from None
    except UnidentifiedImageError:
        raise InvalidImage("not_an_image", "the file is not an image Pillow can read") from None
    except Exception as exc:
        raise InvalidImage("corrupt_image", f"the image is corrupt: {exc}") from None
    return ImageInfo(kind, width, height, hashlib.sha256(data).hexdigest())


def upload_stem(filename: str | None) -> str:
    """A safe file stem from the client's file name; raises UnsafePath for a traversal attempt."""
    if not filename:
        return "upload"
    check_name(filename)
    stem = _UNSAFE_STEM_CHARS.sub("_", Path(filename).stem).strip(" ._")[:100]
    return stem or "upload"


def upload_folder(root: Path, subfolder: str) -> Path:
    """The real folder an upload goes to, created if needed; raises UnsafePath or OutsideFolder."""
    parts = subfolder_parts(subfolder)
    real_root = root.resolve()
    real_root.mkdir(parents=True, exist_ok=True)
    folder = real_root
    for part in parts:
        # Check each level before creating the next, so a symlinked subfolder is never written to.
        folder = folder / part
        if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
            raise OutsideFolder(f"subfolder {subfolder!r} is not a plain folder")
        folder.mkdir(exist_ok=True)
    if not folder.resolve().is_relative_to(real_root):
        raise OutsideFolder(f"subfolder {subfolder!r} resolves outside the input folder")
    return folder


def save_upload(
    folder: Path, stem: str, info: ImageInfo, data: bytes, known: str | None
) -> tuple[str, bool]:
    """Store an image in `folder` once per content; returns (file name, whether it already existed).

    `known` is a name the same content was stored under before. A name taken by different bytes
    gets the content hash appended, so an upload never overwrites another image.
    """
    candidates = [f"{stem}{info.extension}", f"{stem}-{info.sha256[:16]}{info.extension}"]
    if known is not None:
        candidates.insert(0, known)
    for name in candidates:
        path = folder / name
        if path.is_symlink() or (path.exists() and not path.is_file()):
            continue  # a folder (or anything else) under this name: never write over it
        if path.is_file():
            if _sha256(path) == info.sha256:
                return name, True
            continue
        if name == known:
            continue  # it was deleted; store under the client's name again
        _write_atomically(path, data)
        return name, False
    name = f"{stem}-{info.sha256}{info.extension}"
    path = folder / name
    if path.is_symlink() or (path.exists() and not path.is_file()):
        raise UnsafePath(f"every name for {stem!r} is taken by a folder or link; rename the file")
    if path.is_file() and _sha256(path) == info.sha256:
        return name, True
    _write_atomically(path, data)
    return name, False


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _write_atomically(path: Path, data: bytes) -> None:
    # A hidden temporary name in the same folder, so a reader never sees half a file.
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".upload-")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
