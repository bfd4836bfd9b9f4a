"""Read weight files (.safetensors, .ckpt/.pt/.bin) and name every defect as a `CheckpointError`.

The format is read from the bytes, not the name. Truncated and corrupt files, pickles holding
anything but tensors and files without tensors each get their own error code.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from nodes.sd.loading.streaming import TensorSource


class CheckpointError(Exception):
    """A model file that cannot be loaded; `code` names the problem and `details` carries the specifics."""

    def __init__(self, message: str, *, code: str, path: str | Path | None = None, **details: Any):
        super().__init__(message)
        self.message = message
        self.code = code
        self.details: dict[str, Any] = {
            "code": code,
            "path": str(path) if path else None,
            **details,
        }


def read_state_dict(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and safetensors metadata of one file; the format is read from the bytes, not the name.

    .safetensors files are memory-mapped; pickles (.ckpt/.pt/.bin) load with `weights_only=True`.
    A nested "state_dict" is unwrapped and non-tensor entries (epoch, global_step) are dropped.
    """
    file = Path(path)
    if not file.is_file():
        raise CheckpointError(
            f"{file} does not exist or is not a file", code="not_found", path=file
        )
    with file.open("rb") as handle:
        head = handle.read(9)
    if len(head) == 9 and head[8:9] == b"{":
        metadata = _safetensors_metadata(file)  # names truncation before the library can
        return _read_safetensors(file), metadata
    if head[:2] == b"PK" or head[:1] == b"\x80":
        return _read_pickle(file), {}
    raise CheckpointError(
        f"{file.name} is neither a safetensors file nor a PyTorch checkpoint "
        f"(it starts with bytes {head[:8].hex()})",
        code="corrupt",
        path=file,
    )


def open_tensors(path: str | Path) -> TensorSource:
    """A file's tensors to stream from: shapes now, data one tensor at a time (see streaming.py).

    .safetensors files are read lazily, tensor by tensor. Pickles (.ckpt/.pt/.bin) are loaded
    whole first (`weights_only=True`), as `read_state_dict` does: the simpler path, so a .ckpt
    load briefly holds the file's tensors and the model.
    """
    from nodes.sd.loading.streaming import DictSource, SafetensorsSource

    file = Path(path)
    if not file.is_file():
        raise CheckpointError(
            f"{file} does not exist or is not a file", code="not_found", path=file
        )
    with file.open("rb") as handle:
        head = handle.read(9)
    if len(head) == 9 and head[8:9] == b"{":
        _safetensors_metadata(file)  # names truncation before the library can
        try:
            return SafetensorsSource(file)
        except Exception as error:  # safetensors raises its own error types for every defect
            raise CheckpointError(
                f"{file.name} could not be read as safetensors: {error}", code="corrupt", path=file
            ) from None
    if head[:2] == b"PK" or head[:1] == b"\x80":
        return DictSource(_read_pickle(file))
    raise CheckpointError(
        f"{file.name} is neither a safetensors file nor a PyTorch checkpoint "
        f"(it starts with bytes {head[:8].hex()})",
        code="corrupt",
        path=file,
    )


def _safetensors_metadata(file: Path) -> dict[str, str]:
    """Check the header against the file's size and return its `__metadata__`."""
    size = file.stat().st_size
    with file.open("rb") as handle:
        header_len = int.from_bytes(handle.read(8), "little")
        if header_len > size - 8:
            raise CheckpointError(
                f"{file.name} is truncated or not a safetensors file: its header claims "
                f"{header_len:,} bytes but the file has only {size:,}",
                code="truncated",
                path=file,
            )
        raw = handle.read(header_len)
    try:
        header = json.loads(raw)
        data_end = max(
            (int(t["data_offsets"][1]) for k, t in header.items() if k != "__metadata__"), default=0
        )
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as error:
        raise CheckpointError(
            f"{file.name} is not a valid safetensors file: its header is unreadable ({error})",
            code="corrupt",
            path=file,
        ) from None
    data_size = size - 8 - header_len
    if data_size < data_end:
        raise CheckpointError(
            f"{file.name} is truncated: its header describes {data_end:,} bytes of tensor data "
            f"but only {data_size:,} follow",
            code="truncated",
            path=file,
            expected_bytes=data_end,
            actual_bytes=data_size,
        )
    metadata = header.get("__metadata__") or {}
    return {str(k): str(v) for k, v in metadata.items()}


def _read_safetensors(file: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    try:
        return load_file(str(file), device="cpu")
    except Exception as error:  # safetensors raises its own error types for every defect
        raise CheckpointError(
            f"{file.name} could not be read as safetensors: {error}", code="corrupt", path=file
        ) from None


def _read_pickle(file: Path) -> dict[str, torch.Tensor]:
    import pickle

    import torch

    try:
        obj = torch.load(str(file), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise CheckpointError(
            f"{file.name} holds Python objects other than tensors and was refused "
            f"(weights_only=True): {first_line}. Convert it to .safetensors.",
            code="unsafe_pickle",
            path=file,
        ) from None
    except Exception as error:
        raise CheckpointError(
            f"{file.name} is corrupt or truncated: {error}", code="corrupt", path=file
        ) from None
    while isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    tensors = (
        {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
        if isinstance(obj, dict)
        else {}
    )
    if not tensors:
        raise CheckpointError(f"{file.name} holds no tensors", code="no_tensors", path=file)
    return tensors


def listing(items: list[str], limit: int = 8) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")
