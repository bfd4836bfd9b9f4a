"""The demo model's training command, run for a few steps: it writes files the loaders read, logs
every step's loss, and two runs with the same seed write the same weights."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from nodes.sd.loading.controlnet_file import load_controlnet
from nodes.sd.loading.single_file import load_checkpoint
from train.train_demo import (
    CHECKPOINT_NAME,
    CONTROLNET_NAME,
    alphas_cumprod,
    caption_ids,
    latent_balance,
    main,
    noisy_batch,
    parse_args,
    warmup_cosine,
)

FEW_STEPS = [
    "--vae-steps", "2", "--decoder-steps", "2", "--unet-steps", "2", "--v-steps", "2",
    "--layout-steps", "2", "--controlnet-steps", "2",
    "--scenes", "8", "--batch", "4", "--vae-batch", "2", "--snapshot-every", "0",
    "--no-compile", "--no-parallel-decoder",
]  # fmt: skip


@pytest.fixture(autouse=True)
def keep_torch_threads() -> Iterator[None]:
    threads = torch.get_num_threads()  # the command sets its own thread counts
    yield
    torch.set_num_threads(threads)


def train(folder: Path, *extra: str) -> Path:
    main(["--out", str(folder / "models"), "--work", str(folder / "work"), *FEW_STEPS, *extra])
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
    # The default run trains for epsilon, then converts the UNet to v-prediction.
    assert checkpoint.unet.prediction_type == "v_prediction"
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
        [stage, str(step)]
        for stage in ("vae", "unet", "unet-v", "unet-layout", "controlnet", "decoder")
        for step in (0, 1)
    ]


def test_without_v_steps_the_run_writes_an_epsilon_model(tmp_path: Path) -> None:
    models = train(tmp_path, "--v-steps", "0", "--layout-steps", "0")
    checkpoint = load_checkpoint(
        models / "checkpoints" / CHECKPOINT_NAME, device="cpu", dtype="fp32"
    )
    assert checkpoint.unet.prediction_type == "epsilon"
    log = (tmp_path / "work" / "loss_log.tsv").read_text()
    assert "unet-v\t" not in log and "unet\t" in log


def test_the_same_seed_writes_the_same_weights(tmp_path: Path) -> None:
    first = load_file(train(tmp_path / "a") / "checkpoints" / CHECKPOINT_NAME)
    second = load_file(train(tmp_path / "b") / "checkpoints" / CHECKPOINT_NAME)
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)


@pytest.mark.parametrize(("flag", "value"), [("--vae-warmup", "1"), ("--caption-dropout", "1.0")])
def test_a_training_setting_reaches_the_weights(tmp_path: Path, flag: str, value: str) -> None:
    # The same seed writes the same weights (above), so a difference is the setting's doing.
    plain = load_file(train(tmp_path / "a") / "checkpoints" / CHECKPOINT_NAME)
    changed = load_file(train(tmp_path / "b", flag, value) / "checkpoints" / CHECKPOINT_NAME)
    assert not all(torch.equal(plain[k], changed[k]) for k in plain)


def test_one_command_writes_what_a_run_resumed_at_the_layout_phase_writes(tmp_path: Path) -> None:
    # The resumed path is how the shipped weights were made; the default command must match it.
    one = train(tmp_path / "one")
    resumed = train(tmp_path / "resumed", "--layout-steps", "0")
    for stage in (
        ["--stage", "unet", "--resume", "2"],
        ["--stage", "controlnet"],
        ["--stage", "export"],
    ):
        train(tmp_path / "resumed", *stage)
    for folder, name in (("checkpoints", CHECKPOINT_NAME), ("controlnet", CONTROLNET_NAME)):
        first, second = load_file(one / folder / name), load_file(resumed / folder / name)
        assert first.keys() == second.keys()
        assert all(torch.equal(first[k], second[k]) for k in first), name


def test_a_v_prediction_run_writes_a_checkpoint_the_loader_reads_as_v_prediction(
    tmp_path: Path,
) -> None:
    models = train(tmp_path, "--prediction", "v_prediction", "--high-noise-share", "0.5")
    checkpoint = load_checkpoint(
        models / "checkpoints" / CHECKPOINT_NAME, device="cpu", dtype="fp32"
    )
    assert checkpoint.unet.prediction_type == "v_prediction"
    # A later stage run alone (here: export) keeps the saved UNet's target, not the default.
    main(["--stage", "export", "--out", str(tmp_path / "again"), "--work", str(tmp_path / "work")])
    again = load_checkpoint(
        tmp_path / "again" / "checkpoints" / CHECKPOINT_NAME, device="cpu", dtype="fp32"
    )
    assert again.unet.prediction_type == "v_prediction"


def latent_data(count: int) -> Any:
    """The two fields `noisy_batch` reads of a `LatentData`, without a VAE to make them."""
    mean = torch.randn(count, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    return SimpleNamespace(mean=mean, scaling_factor=0.5)


def test_the_v_target_gives_back_the_clean_latent_and_the_high_noise_share_is_drawn_high() -> None:
    data = latent_data(256)
    args = parse_args(["--prediction", "v_prediction", "--high-noise-share", "1.0"])
    ab = alphas_cumprod()
    torch.manual_seed(0)
    noisy, t, target, weight = noisy_batch(
        data, np.arange(256), torch.device("cpu"), ab, args, args.prediction, args.high_noise_share
    )
    assert int(t.min()) >= args.high_noise_from
    a = ab[t].view(-1, 1, 1, 1)
    clean = a.sqrt() * noisy - (1 - a).sqrt() * target  # x0 from v, as the sampler reads it
    assert torch.allclose(clean, data.mean * data.scaling_factor, atol=1e-5)
    # High noise keeps a weight near 1 in x0 terms (min(1 + SNR, 5) / (1 + SNR) in v terms).
    assert torch.allclose(weight, torch.ones_like(weight), atol=1e-6)


def test_without_a_high_noise_share_the_timesteps_cover_the_whole_schedule() -> None:
    data = latent_data(512)
    args = parse_args([])
    torch.manual_seed(0)
    _, t, target, _ = noisy_batch(
        data,
        np.arange(512),
        torch.device("cpu"),
        alphas_cumprod(),
        args,
        args.prediction,
        args.high_noise_share,
    )
    assert int(t.min()) < 100 and int(t.max()) > 900
    assert args.prediction == "epsilon" and target.shape == data.mean.shape


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--high-noise-share", "1.5"], "--high-noise-share must be between 0 and 1"),
        (["--high-noise-from", "1000"], "--high-noise-from must be a timestep from 0 to 999"),
        (["--v-steps", "-1"], "--v-steps must be 0 or more"),
        (["--layout-steps", "-1"], "--layout-steps must be 0 or more"),
        (["--layout-high-noise-share", "1.5"], "--layout-high-noise-share must be between 0 and 1"),
        (["--balance-weight", "-0.1"], "--balance-weight must be 0 or more"),
        (["--caption-dropout", "1.5"], "--caption-dropout must be between 0 and 1"),
        (["--vae-warmup", "-1"], "--vae-warmup must be 0 or more"),
        (["--resume", "3"], "--resume must be a UNet phase from 0 to 2"),
        (["--resume", "2", "--layout-steps", "0"], "--resume must be a UNet phase from 0 to 1"),
    ],
)
def test_an_objective_setting_out_of_range_is_refused_by_name(
    flags: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stop:
        parse_args(flags)
    assert stop.value.code == 2 and message in capsys.readouterr().err


def test_the_latent_balance_is_zero_only_for_uncorrelated_equally_spread_channels() -> None:
    torch.manual_seed(0)
    white = torch.randn(64, 4, 8, 8)
    assert float(latent_balance(white)) < 0.01
    assert float(latent_balance(white * 7 + 3)) < 0.01  # scale and offset do not matter
    # Two channels carrying one signal (as the VAE's had without the term): far from balanced.
    correlated = white.clone()
    correlated[:, 2] = -correlated[:, 1]
    assert float(latent_balance(correlated)) > 1.0
    # One channel with a tenth of the others' spread: unbalanced too.
    narrow = white.clone()
    narrow[:, 3] *= 0.1
    assert float(latent_balance(narrow)) > 0.5


def test_caption_dropout_sets_the_share_of_empty_captions() -> None:
    count = 4000
    data = SimpleNamespace(
        empty=torch.zeros(3, dtype=torch.long),
        ids_with=torch.ones(count, 3, dtype=torch.long),
        ids_without=torch.full((count, 3), 2, dtype=torch.long),
    )

    def empty_share(dropout: float) -> float:
        rows = caption_ids(data, np.arange(count), np.random.default_rng(0), 0.7, dropout)
        return float((rows == 0).all(dim=1).float().mean())

    assert empty_share(0.0) == 0.0 and empty_share(1.0) == 1.0
    assert abs(empty_share(0.3) - 0.3) < 0.03 and abs(empty_share(0.1) - 0.1) < 0.02


def test_the_warm_up_ramps_the_learning_rate_over_its_steps_then_decays() -> None:
    assert warmup_cosine(0, 6000, warmup=300) == pytest.approx(1 / 300)
    assert warmup_cosine(149, 6000, warmup=300) == pytest.approx(0.5)
    assert warmup_cosine(300, 6000, warmup=300) == pytest.approx(1.0)
    assert warmup_cosine(5999, 6000, warmup=300) == pytest.approx(0.1, abs=1e-3)
    assert warmup_cosine(99, 6000) == pytest.approx(1.0)  # the default: 100 steps
