"""The demo model's training command, run for a few steps: it writes files the loaders read, logs
every step's loss, and two runs with the same seed write the same weights."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from nodes.sd.loading.controlnet_file import load_controlnet
from nodes.sd.loading.single_file import load_checkpoint
from train.train_demo import CHECKPOINT_NAME, CONTROLNET_NAME, main

FEW_STEPS = [
    "--vae-steps", "2", "--decoder-steps", "2", "--unet-steps", "2", "--controlnet-steps", "2",
    "--scenes", "8", "--batch", "4", "--vae-batch", "2", "--snapshot-every", "0",
    "--no-compile", "--no-parallel-decoder",
]  # fmt: skip


@pytest.fixture(autouse=True)
def keep_torch_threads() -> Iterator[None]:
    threads = torch.get_num_threads()  # the command sets its own thread counts
    yield
    torch.set_num_threads(threads)


def train(folder: Path) -> Path:
    main(["--out", str(folder / "models"), "--work", str(folder / "work"), *FEW_STEPS])
    return folder / "models"


def test_the_training_command_writes_files_the_loaders_read(tmp_path: Path) -> None:
    models = train(tmp_path)
    checkpoint = load_checkpoint(
        models / "checkpoints" / CHECKPOINT_NAME, device="cpu", dtype="fp32"
    )
    controlnet = load_controlnet(
        models / "controlnet" / CONTROLNET_NAME, device="cpu", dtype="fp32"
    )
    assert checkpoint.unet.family == "sd1"
    assert checkpoint.unet.unet.config.cross_attention_dim == 64
    assert (
        controlnet.controlnet.config.block_out_channels
        == checkpoint.unet.unet.config.block_out_channels
    )
    for file in (CHECKPOINT_NAME, CONTROLNET_NAME):
        folder = "checkpoints" if file == CHECKPOINT_NAME else "controlnet"
        weights = load_file(models / folder / file)
        assert {t.dtype for t in weights.values()} == {torch.float16}
    log = (tmp_path / "work" / "loss_log.tsv").read_text().splitlines()
    steps = [line.split("\t")[:2] for line in log]
    assert steps == [
        [stage, str(step)] for stage in ("vae", "unet", "controlnet", "decoder") for step in (0, 1)
    ]


def test_the_same_seed_writes_the_same_weights(tmp_path: Path) -> None:
    first = load_file(train(tmp_path / "a") / "checkpoints" / CHECKPOINT_NAME)
    second = load_file(train(tmp_path / "b") / "checkpoints" / CHECKPOINT_NAME)
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)
