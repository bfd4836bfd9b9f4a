"""Stream a weights file into modules built on the meta device, one tensor at a time.

A converter from diffusers (`convert_ldm_unet_checkpoint` and friends) maps a dict of tensors to a
dict in the model's layout. We run it first on *meta* tensors (shapes and dtypes, no data), each the
view of its own meta base tensor, so every output that is a view of an input (a rename, a slice,
`[:, :, 0, 0]`) names its source and the exact `as_strided` that produced it. Then each source tensor
is read once, in file order, turned into its outputs with those strides, cast to the compute dtype,
assigned into the model and let go. Outputs that are not views (the converter cloned or transposed
them: OpenCLIP's split q/k/v and text projection) come from running the converter again with that
one source tensor real. Peak memory is the model plus one source tensor (plus its copies, for those
few). torch has no lazy tensor that could stand in for the file, and the converters have no
streaming mode, so this tracing is written here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger(__name__)

Convert = Callable[[dict[str, torch.Tensor]], Mapping[str, Any]]

# safetensors' dtype names (its header format) to torch dtypes.
SAFETENSORS_DTYPES: dict[str, torch.dtype] = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}


class TensorSource(Mapping[str, torch.Tensor]):
    """A file's tensors: indexing gives a meta tensor (shape and dtype); `read` gives the data."""

    metadata: dict[str, str]

    def read(self, key: str) -> torch.Tensor:
        """The tensor's data on the CPU, in the file's dtype; the caller owns it."""
        raise NotImplementedError

    def file_order(self, keys: Iterable[str]) -> list[str]:
        """`keys` in the order their bytes lie in the file, so that reads are sequential."""
        return list(keys)

    def close(self) -> None:
        """Release the file."""


class SafetensorsSource(TensorSource):
    """A .safetensors file opened with safetensors' `pread` backend.

    `pread` copies each tensor into its own buffer, which is freed when the tensor is; the `mmap`
    backend would leave every page it touched resident until the file is closed, so that a load
    would briefly hold the whole file and the whole model.
    """

    def __init__(self, path: str | Path) -> None:
        from safetensors import safe_open

        self._handle: Any = safe_open(str(path), framework="pt", device="cpu", backend="pread")
        self.metadata = {str(k): str(v) for k, v in (self._handle.metadata() or {}).items()}
        self._order = list(self._handle.offset_keys())
        self._meta: dict[str, torch.Tensor] = {}
        for key in self._order:
            view = self._handle.get_slice(key)
            dtype = SAFETENSORS_DTYPES.get(view.get_dtype())
            if dtype is None:
                raise ValueError(f"tensor {key} has unsupported dtype {view.get_dtype()}")
            self._meta[key] = torch.empty(view.get_shape(), dtype=dtype, device="meta")

    def __getitem__(self, key: str) -> torch.Tensor:
        return self._meta[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._order)

    def __len__(self) -> int:
        return len(self._order)

    def read(self, key: str) -> torch.Tensor:
        tensor: torch.Tensor = self._handle.get_tensor(key)
        return tensor

    def file_order(self, keys: Iterable[str]) -> list[str]:
        wanted = set(keys)
        return [k for k in self._order if k in wanted]

    def close(self) -> None:
        self._handle = None


class DictSource(TensorSource):
    """Tensors already in memory (a loaded pickle): reading one hands out the tensor itself."""

    def __init__(self, tensors: Mapping[str, torch.Tensor], metadata: dict[str, str] | None = None):
        self._tensors = dict(tensors)
        self.metadata = dict(metadata or {})

    def __getitem__(self, key: str) -> torch.Tensor:
        tensor = self._tensors[key]
        return torch.empty(tensor.shape, dtype=tensor.dtype, device="meta")

    def __iter__(self) -> Iterator[str]:
        return iter(self._tensors)

    def __len__(self) -> int:
        return len(self._tensors)

    def read(self, key: str) -> torch.Tensor:
        return self._tensors[key]


@dataclass(frozen=True)
class _View:
    """A model tensor that is `source.as_strided(size, stride, offset)`."""

    source: str
    size: tuple[int, ...]
    stride: tuple[int, ...]
    offset: int


@dataclass
class Conversion:
    """What a converter makes of some source keys, worked out on meta tensors."""

    targets: dict[str, torch.Tensor]  # model key -> meta tensor (shape and dtype)
    views: dict[str, _View]
    computed: set[str]  # model keys the converter computed (copies), not views of one source
    unclaimed: list[str]  # source keys no view came from
    ready: dict[str, torch.Tensor] = field(default_factory=dict)  # computed, resolved and cast
    unused: list[str] = field(default_factory=list)  # source keys the converter did not use


def trace(source: TensorSource, keys: Iterable[str], convert: Convert) -> Conversion:
    """Run `convert` on meta views of `keys` and record where each output comes from."""
    bases: dict[int, str] = {}
    inputs: dict[str, torch.Tensor] = {}
    for key in keys:
        meta = source[key]
        base = torch.empty(meta.numel(), dtype=meta.dtype, device="meta")
        bases[id(base)] = key
        inputs[key] = base.view(meta.shape)
    targets = {k: v for k, v in convert(dict(inputs)).items() if v is not None}
    views: dict[str, _View] = {}
    computed: set[str] = set()
    for name, tensor in targets.items():
        root = tensor._base if tensor._base is not None else tensor
        origin = bases.get(id(root))
        if origin is None or tensor.device.type != "meta":
            computed.add(name)
            continue
        views[name] = _View(
            origin, tuple(tensor.size()), tuple(tensor.stride()), tensor.storage_offset()
        )
    claimed = {view.source for view in views.values()}
    unclaimed = [k for k in inputs if k not in claimed]
    return Conversion(targets, views, computed, unclaimed)


def resolve_computed(
    conversion: Conversion,
    source: TensorSource,
    keys: Iterable[str],
    convert: Convert,
    cast: Callable[[torch.Tensor], torch.Tensor],
) -> None:
    """Compute the outputs that are not views by converting each unclaimed source tensor for real.

    Fills `conversion.ready` (cast) and `conversion.unused` (unclaimed keys that produced nothing).
    The converter first gets the one real tensor alone; if that fails or disagrees with the traced
    shapes, it gets all the meta inputs plus that one real tensor.
    """
    pending = set(conversion.computed)
    if not pending:
        conversion.unused = list(conversion.unclaimed)
        return
    metas: dict[str, torch.Tensor] | None = None
    for key in conversion.unclaimed:
        if not pending:
            conversion.unused.append(key)
            continue
        real = source.read(key)
        produced = _convert_one(convert, {key: real}, conversion.targets, pending)
        if produced is None:
            if metas is None:
                metas = {k: source[k] for k in keys}
            produced = _convert_one(convert, {**metas, key: real}, conversion.targets, pending)
        del real
        if not produced:
            conversion.unused.append(key)
            continue
        for name, value in produced.items():
            conversion.ready[name] = cast(value)
            pending.discard(name)
    if pending:
        raise RuntimeError(
            f"could not trace where {len(pending)} converted tensors come from: {sorted(pending)[:5]}"
        )


def _convert_one(
    convert: Convert,
    inputs: dict[str, torch.Tensor],
    targets: Mapping[str, torch.Tensor],
    pending: set[str],
) -> dict[str, torch.Tensor] | None:
    """The real outputs of `convert(inputs)` that are pending; None if they are not trustworthy."""
    try:
        outputs = convert(inputs)
    except Exception:
        return None
    produced = {
        k: v
        for k, v in outputs.items()
        if v is not None and isinstance(v, torch.Tensor) and v.device.type != "meta"
    }
    for name, value in produced.items():
        if name not in pending or tuple(value.shape) != tuple(targets[name].shape):
            return None
    return produced


def stream_views(
    model: Any,
    conversion: Conversion,
    source: TensorSource,
    wanted: set[str],
    cast: Callable[[torch.Tensor], torch.Tensor],
) -> None:
    """Assign the computed tensors, then read each source once, in file order, into its views."""
    for name, value in conversion.ready.items():
        if name in wanted:
            assign(model, name, value)
    conversion.ready.clear()
    by_source: dict[str, list[tuple[str, _View]]] = {}
    for name, view in conversion.views.items():
        if name in wanted:
            by_source.setdefault(view.source, []).append((name, view))
    for key in source.file_order(by_source):
        flat = source.read(key).contiguous().reshape(-1)
        start = flat.storage_offset()
        for name, view in by_source[key]:
            assign(model, name, cast(flat.as_strided(view.size, view.stride, start + view.offset)))
        del flat


def caster(device: torch.device, dtype: torch.dtype) -> Callable[[torch.Tensor], torch.Tensor]:
    """Move a tensor to `device`, floating-point ones in `dtype`, never sharing a partial buffer."""

    def cast(tensor: torch.Tensor) -> torch.Tensor:
        target = dtype if tensor.is_floating_point() else tensor.dtype
        out = tensor.to(device=device, dtype=target).contiguous()
        if out.untyped_storage().nbytes() > out.numel() * out.element_size():
            out = out.clone()  # a slice would keep its whole source tensor alive
        return out

    return cast


def assign(model: Any, name: str, value: torch.Tensor) -> None:
    """Put `value` in place of the (meta) parameter or buffer `name` of `model`."""
    owner, _, attr = name.rpartition(".")
    module = model.get_submodule(owner) if owner else model
    if attr in module._parameters:
        module._parameters[attr] = torch.nn.Parameter(value, requires_grad=False)
    else:
        module._buffers[attr] = value
