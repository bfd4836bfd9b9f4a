"""Streaming loads: a single file goes into the model tensor by tensor, never held twice."""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import json
import os
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch.overrides import TorchFunctionMode

import nodes.sd.loading.streaming as streaming
from nodes.sd.loading.model_configs import METADATA_CONFIGS
from nodes.sd.loading.single_file import load_checkpoint
from nodes.sd.loading.weight_files import CheckpointError
from nodes.sd.tiny_models import TinyModels


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
            "fordblks", "keepcost",
        )
    ]  # fmt: skip


def _resident_file_bytes_reader() -> Any:
    """Resident pages of mapped files (statm's "shared"): a memory-mapped state dict lives there."""
    fd = os.open("/proc/self/statm", os.O_RDONLY)
    page = os.sysconf("SC_PAGE_SIZE")
    return lambda: int(os.pread(fd, 256, 0).split()[2]) * page


def _heap_bytes_counter() -> Any:
    """Bytes the C heap has handed out (glibc's mallinfo2), where torch and safetensors allocate,
    plus the resident pages of mapped files."""
    name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(name) if name else None
    if libc is None or not hasattr(libc, "mallinfo2"):
        pytest.skip("needs glibc's mallinfo2 to count heap bytes")
    libc.mallinfo2.restype = _MallInfo2
    if not Path("/proc/self/statm").is_file():
        pytest.skip("needs /proc/self/statm")
    resident_file_bytes = _resident_file_bytes_reader()

    def allocated() -> int:
        info = libc.mallinfo2()
        return int(info.uordblks + info.hblkhd) + resident_file_bytes()

    return allocated


def _fp16_copy(tiny: TinyModels, tmp_path: Path) -> Path:
    with safe_open(str(tiny.checkpoint), "pt") as handle:
        metadata = handle.metadata()
    halves = {
        k: v.half() if v.is_floating_point() else v for k, v in load_file(tiny.checkpoint).items()
    }
    path = tmp_path / "tiny-fp16.safetensors"
    save_file(halves, path, metadata=metadata)
    return path


def _model_bytes(checkpoint: Any) -> int:
    modules = [checkpoint.unet.unet, checkpoint.vae.vae, checkpoint.clip.text_encoder]
    return sum(t.numel() * t.element_size() for m in modules for t in m.state_dict().values())


def test_peak_memory_is_the_model_plus_one_tensor(tiny_models: TinyModels, tmp_path: Path) -> None:
    path = _fp16_copy(tiny_models, tmp_path)  # fp16 weights cast to fp32, as on a CPU
    with safe_open(str(path), "pt") as handle:
        largest = max(handle.get_tensor(k).nbytes for k in handle.keys())
    allocated = _heap_bytes_counter()
    load_checkpoint(path, device="cpu", dtype="fp32")  # warm-up: imports, caches, allocator arenas
    gc.collect()
    before = allocated()
    with _PeakHeap(allocated) as heap:
        checkpoint = load_checkpoint(path, device="cpu", dtype="fp32")
    peak = heap.peak - before
    model = _model_bytes(checkpoint)
    # 1 MiB of slack for tokenizers, configs, non-persistent buffers and Python objects.
    assert peak <= model + largest + 1024 * 1024, (peak, model, largest)
    # Reading the whole file first, as the loader did before streaming, needs its bytes on top.
    assert peak < model + path.stat().st_size, (peak, model)


class _PeakHeap(TorchFunctionMode):
    """Samples the heap around every torch call: a load's peaks happen between two such calls."""

    def __init__(self, allocated: Any) -> None:
        super().__init__()
        self.allocated, self.peak = allocated, 0

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        result = func(*args, **(kwargs or {}))
        self.peak = max(self.peak, self.allocated())
        return result


def test_strict_errors_come_before_the_data_is_read(
    tiny_models: TinyModels, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with safe_open(str(tiny_models.checkpoint), "pt") as handle:
        metadata = handle.metadata()
    state = load_file(tiny_models.checkpoint)
    state["model.diffusion_model.out.2.bias"] = torch.zeros(5)
    state.pop("model.diffusion_model.out.0.weight")
    path = tmp_path / "bad.safetensors"
    save_file(state, path, metadata=metadata)
    reads: list[str] = []
    original = streaming.SafetensorsSource.read

    def counted(self: streaming.SafetensorsSource, key: str) -> torch.Tensor:
        reads.append(key)
        return original(self, key)

    monkeypatch.setattr(streaming.SafetensorsSource, "read", counted)
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(path, device="cpu")
    assert caught.value.details["missing"] == ["conv_norm_out.weight"]
    assert caught.value.details["mis_shaped"] == ["conv_out.bias: file (5,) vs model (4,)"]
    assert reads == []  # the UNet's check needed shapes only


def test_fp16_file_loads_as_the_fp32_cast(tiny_models: TinyModels, tmp_path: Path) -> None:
    path = _fp16_copy(tiny_models, tmp_path)
    loaded = load_checkpoint(path, device="cpu", dtype="fp32")
    expected = {k: v.half().float() for k, v in tiny_models.unet.state_dict().items()}
    got = loaded.unet.unet.state_dict()
    assert {v.dtype for v in got.values()} == {torch.float32}
    assert all(torch.equal(got[k], expected[k]) for k in expected)
    assert (
        json.loads(streaming.SafetensorsSource(path).metadata[METADATA_CONFIGS])["family"] == "sd1"
    )


def test_trace_names_view_sources_and_copies() -> None:
    source = streaming.DictSource(
        {"a": torch.arange(6.0).reshape(2, 3, 1, 1), "b": torch.arange(4.0), "c": torch.ones(2)}
    )

    def convert(sd: dict[str, torch.Tensor]) -> dict[str, Any]:
        out: dict[str, Any] = {"x": sd["a"][:, :, 0, 0]} if "a" in sd else {}
        if "b" in sd:
            out["y"] = sd["b"][:2].clone()
            out["z"] = sd["b"][2:].clone()
        return out

    conversion = streaming.trace(source, list(source), convert)
    assert conversion.views["x"].source == "a" and conversion.computed == {"y", "z"}
    cast = streaming.caster(torch.device("cpu"), torch.float32)
    streaming.resolve_computed(conversion, source, list(source), convert, cast)
    assert conversion.unused == ["c"]
    assert torch.equal(conversion.ready["z"], torch.tensor([2.0, 3.0]))
