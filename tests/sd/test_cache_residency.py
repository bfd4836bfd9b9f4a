"""Cached models through real runs: a LoRA copy patching conv_in after its base was offloaded.

On a CUDA machine this is the device check of the cache's accounting: offloading the base
moves the weights it shares with the LoRA copy, and sampling with the copy must bring the whole
copy back, with the per-device counts equal to the bytes actually resident. On the CPU the same
run checks the accounting with everything on one device.
"""

from __future__ import annotations

import copy
import itertools
import json
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from engine.config import Paths
from engine.executor import Executor
from engine.registry import default_registry
from nodes.sd.tiny_models import TinyModels

ROOT = Path(__file__).resolve().parents[2]
TXT2IMG = json.loads((ROOT / "graphs" / "txt2img.json").read_text())


def conv_in_lora(unet: Any, path: Path) -> None:
    """A kohya LoRA file that patches only the UNet's conv_in."""
    weight = unet.conv_in.weight  # (out, in, 3, 3)
    generator = torch.Generator().manual_seed(3)
    down = torch.randn(2, weight.shape[1], 3, 3, generator=generator) * 0.1
    up = torch.randn(weight.shape[0], 2, 1, 1, generator=generator) * 0.1
    save_file(
        {
            "lora_unet_conv_in.lora_down.weight": down.contiguous(),
            "lora_unet_conv_in.lora_up.weight": up.contiguous(),
            "lora_unet_conv_in.alpha": torch.tensor(2.0),
        },
        path,
    )


def resident(values: list[Any]) -> dict[str, int]:
    """Bytes held per device by the distinct storages of every module and tensor in `values`."""
    from engine.placement import _tensors

    seen: dict[tuple[str, int], int] = {}
    for tensor in _tensors(values):
        storage = tensor.untyped_storage()
        seen[(str(tensor.device), storage.data_ptr() or id(storage))] = storage.nbytes()
    totals: dict[str, int] = {}
    for (device, _), size in seen.items():
        totals[device] = totals.get(device, 0) + size
    return totals


def test_sampling_with_a_lora_copy_after_its_base_was_offloaded(
    tiny_models: TinyModels, tmp_path: Path
) -> None:
    models = tmp_path / "models"
    shutil.copytree(tiny_models.models_dir / "checkpoints", models / "checkpoints")
    (models / "loras").mkdir()
    conv_in_lora(tiny_models.unet, models / "loras" / "conv-in.safetensors")
    paths = Paths.resolve(models=models, input=tmp_path / "input", output=tmp_path / "output")
    executor = Executor(default_registry(), paths=paths)

    base = copy.deepcopy(TXT2IMG)
    base["nodes"]["sampler"]["inputs"]["steps"] = 2
    base["nodes"]["latent"]["inputs"].update(width=64, height=64)
    assert executor.run(base).status == "finished"
    with_lora = copy.deepcopy(base)
    with_lora["nodes"]["lora"] = {
        "type": "LoadLora",
        "inputs": {"lora": "conv-in.safetensors"},
        "links": {"model": "checkpoint.model", "clip": "checkpoint.clip"},
    }
    with_lora["nodes"]["sampler"]["links"]["model"] = "lora.model"
    assert executor.run(with_lora).status == "finished"

    cache = executor.cache
    entries = [cache.get(key) for key in cache.keys()]
    values = [e.outputs for e in entries if e is not None]
    assert cache.usage() == resident(values)

    cache.offload_models()  # what POST /api/v1/free does: the base moves, and its shared weights
    assert cache.usage() == resident(values)
    with_lora["nodes"]["sampler"]["inputs"]["seed"] = 8  # sample again with the LoRA copy
    result = executor.run(with_lora)
    assert result.status == "finished", result.error
    assert result.executed[:1] == ["sampler"]
    values = [e.outputs for e in (cache.get(k) for k in cache.keys()) if e is not None]
    assert cache.usage() == resident(values)
    lora_unet = next(
        v["model"].unet for v in values if "model" in v and getattr(v["model"], "loras", ())
    )
    devices = {t.device.type for t in itertools.chain(lora_unet.parameters(), lora_unet.buffers())}
    assert len(devices) == 1  # never split between devices
