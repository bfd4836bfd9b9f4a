"""Train the embedded demo model: the VAE, then the UNet with the text encoder, then the ControlNet.

    .venv/bin/python -m train.train_demo                    # everything, about 55 min on 2 CPU cores
    .venv/bin/python -m train.train_demo --stage controlnet # one stage, from the work folder's state

Each stage saves its weights to the work folder (default `train/work/`, ignored by git), so stages
can be re-run alone; the last step writes the two shipped fp16 files in the layouts the loaders
read (an LDM single file with its diffusers configs in the safetensors metadata, and a
`control_model.*` ControlNet). Every random draw comes from `--seed`; a GPU is used when present.
The loss of every step goes to `<work>/loss_log.tsv`.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from train import shapes
from train.models import (
    SCHEDULER_CONFIG,
    build_controlnet,
    build_text_encoder,
    build_unet,
    build_vae,
)

ROOT = Path(__file__).resolve().parents[1]
BUILTIN_MODELS = ROOT / "nodes" / "sd" / "builtin_models"
CHECKPOINT_NAME = "latentgraph-shapes.safetensors"
CONTROLNET_NAME = "latentgraph-shapes-controlnet.safetensors"
METADATA_CONFIGS = "latentgraph.configs"
# Distinct data seeds per stage, derived from --seed, so no stage trains on another's draws.
VAE_DATA, LATENT_DATA, DECODER_DATA = 1, 2, 3
POSITION_SHARE = 0.7
MIN_SNR_GAMMA = 5.0  # min-SNR loss weighting (Hang et al. 2023): faster convergence
WARMUP_STEPS = 100  # every stage's learning-rate warm-up but the VAE's
VAE_WARMUP_STEPS = 300  # the default of --vae-warmup


class LossLog:
    """Appends `stage step loss seconds` lines to a TSV file."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.file = path.open("a", encoding="utf-8")
        self.started = time.perf_counter()

    def write(self, stage: str, step: int, loss: float) -> None:
        elapsed = time.perf_counter() - self.started
        self.file.write(f"{stage}\t{step}\t{loss:.6f}\t{elapsed:.1f}\n")
        self.file.flush()


def pixels(images: np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> float (N, 3, H, W) in [-1, 1]."""
    x = torch.from_numpy(images).to(device).permute(0, 3, 1, 2).float()
    return x / 127.5 - 1.0


def warmup_cosine(step: int, total: int, warmup: int = WARMUP_STEPS) -> float:
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))


def compiled(fn: Any, args: argparse.Namespace) -> Any:
    """`fn` through torch.compile when asked: the models are so small that per-op overhead
    dominates, and fusing it made a UNet step 1.5x faster on the CPU (measured, bench-free)."""
    return torch.compile(fn, dynamic=False) if args.compile else fn


def optimizer(
    params: Iterator[torch.nn.Parameter], lr: float, total: int, warmup: int = WARMUP_STEPS
) -> tuple[Any, Any]:
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.01, fused=True)
    return opt, torch.optim.lr_scheduler.LambdaLR(opt, lambda s: warmup_cosine(s, total, warmup))


class Ema:
    """An exponential moving average of a module's parameters."""

    def __init__(self, module: torch.nn.Module, decay: float):
        self.decay = decay
        self.shadow = copy.deepcopy(module).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, module: torch.nn.Module) -> None:
        for ours, theirs in zip(self.shadow.parameters(), module.parameters(), strict=True):
            ours.lerp_(theirs, 1 - self.decay)


def run_stage(
    name: str,
    steps: int,
    loss_at: Callable[[int], torch.Tensor],
    opt: Any,
    schedule: Any,
    log: LossLog,
    *,
    clip: list[torch.nn.Parameter] | None = None,
    emas: Sequence[tuple[Ema, torch.nn.Module]] = (),
    after_step: Callable[[int], None] | None = None,
) -> None:
    """The training loop every stage shares: `loss_at(step)` draws the step's batch and returns its
    loss; gradients are clipped to norm 1 over `clip` when given, and each EMA follows its module."""
    bar = tqdm(range(steps), desc=name, unit="step")
    for step in bar:
        loss = loss_at(step)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if clip is not None:
            torch.nn.utils.clip_grad_norm_(clip, 1.0)
        opt.step()
        schedule.step()
        for ema, module in emas:
            ema.update(module)
        value = loss.item()
        log.write(name, step, value)
        bar.set_postfix(loss=f"{value:.4f}")
        if after_step is not None:
            after_step(step)


def reconstruction_loss(
    reconstruction: torch.Tensor, x: torch.Tensor, edge_weight: float
) -> torch.Tensor:
    """L1 + MSE, plus L1 on the horizontal and vertical pixel differences: the edge term is
    what keeps a square's corners square instead of rounded."""

    def edges(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return t[..., 1:, :] - t[..., :-1, :], t[..., :, 1:] - t[..., :, :-1]

    (rows, cols), (rows_x, cols_x) = edges(reconstruction), edges(x)
    edge = F.l1_loss(rows, rows_x) + F.l1_loss(cols, cols_x)
    return F.l1_loss(reconstruction, x) + F.mse_loss(reconstruction, x) + edge_weight * edge


# --- stage 1: VAE --------------------------------------------------------------------------------


def latent_balance(latents: torch.Tensor) -> torch.Tensor:
    """How far the latent channels' covariance (over batch and positions) is from a multiple of the
    identity: 0 when the channels are uncorrelated and equally spread, whatever their scale."""
    flat = latents.transpose(0, 1).reshape(latents.shape[1], -1)
    flat = flat - flat.mean(dim=1, keepdim=True)
    covariance = flat @ flat.T / flat.shape[1]
    scaled = covariance / (covariance.diagonal().mean() + 1e-8)
    return ((scaled - torch.eye(len(scaled), device=scaled.device)) ** 2).sum()


def train_vae(args: argparse.Namespace, device: torch.device, log: LossLog) -> Any:
    """Reconstruction (L1 + MSE + edges) with a small KL term and the optional balance term, on
    decoded posterior means."""
    torch.manual_seed(args.seed)
    vae = build_vae().to(device).train()
    # This VAE (blocks 16-32-64-64) needs --vae-warmup 300: with 100 its loss stayed at the
    # starting value for most of the stage at seed 0 (measured; the model card has the runs).
    opt, schedule = optimizer(vae.parameters(), args.vae_lr, args.vae_steps, args.vae_warmup)

    def vae_loss(x: torch.Tensor) -> torch.Tensor:
        posterior = vae.encode(x).latent_dist
        # Decoding the posterior mean, not a sample: with the small KL weight the sampled noise
        # only slowed learning (measured), and the project encodes with the mean anyway.
        reconstruction = vae.decode(posterior.mean).sample
        kl = posterior.kl().mean() / x[0].numel()
        # Without the balance term three of the four channels carried one signal (|correlation|
        # 0.9-1.0) and the fourth about a fifteenth of the spread: the UNet, which adds the same
        # noise to every channel, then saw shape and colour details only at the lowest noise.
        balance = latent_balance(posterior.mean) if args.balance_weight else 0.0
        return (
            reconstruction_loss(reconstruction, x, args.edge_weight)
            + args.kl_weight * kl
            + args.balance_weight * balance
        )

    def loss_at(step: int) -> torch.Tensor:
        images, _, _ = shapes.batch(
            args.seed * 1000 + VAE_DATA, step * args.vae_batch, args.vae_batch
        )
        x = pixels(images, device)
        if step < args.vae_steps * args.vae_crop_share:
            # Most steps see 32 px crops, 4x cheaper; the last ones see whole images.
            top, left = np.random.default_rng((args.seed, step)).integers(0, 33, size=2)
            x = x[:, :, top : top + 32, left : left + 32].contiguous()
        return vae_loss(x)  # eager: convolutions dominate here, compiling gained little

    run_stage("vae", args.vae_steps, loss_at, opt, schedule, log)
    return vae.eval().requires_grad_(False)


def finetune_decoder(args: argparse.Namespace, vae: Any, device: torch.device, log: LossLog) -> Any:
    """More decoder training with the encoder frozen: the latent space the UNet learnt stays put.

    The joint stage leaves the decoder blurry; its latents keep more detail than it draws, and
    sharpening it (as SD's ft-MSE VAE did) costs no UNet retraining.
    """
    torch.manual_seed(args.seed + 4)
    vae.requires_grad_(False).eval()
    decoder = [vae.decoder, vae.post_quant_conv]
    for part in decoder:
        part.requires_grad_(True).train()
    params = [p for part in decoder for p in part.parameters()]
    opt, schedule = optimizer(iter(params), args.decoder_lr, args.decoder_steps)

    def decoder_loss(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            latents = vae.encode(x).latent_dist.mean
        return reconstruction_loss(vae.decode(latents).sample, x, args.edge_weight)

    def loss_at(step: int) -> torch.Tensor:
        images, _, _ = shapes.batch(
            args.seed * 1000 + DECODER_DATA, step * args.vae_batch, args.vae_batch
        )
        x = pixels(images, device)
        if step < args.decoder_steps * args.vae_crop_share:
            # Crops of whole latent cells (multiples of 8 px), so the encoder sees what it saw.
            top, left = np.random.default_rng((args.seed, 4, step)).integers(0, 5, size=2) * 8
            x = x[:, :, top : top + 32, left : left + 32].contiguous()
        return decoder_loss(x)

    run_stage("decoder", args.decoder_steps, loss_at, opt, schedule, log)
    return vae.eval().requires_grad_(False)


# --- shared data for the UNet and ControlNet stages ----------------------------------------------


class LatentData:
    """A fixed set of scenes: VAE posterior means (the VAE is trained on them, as the project's
    VAEEncode uses them), silhouettes and tokenized captions."""

    def __init__(self, vae: Any, seed: int, count: int, device: torch.device):
        from nodes.sd.tokenizer import tokenize

        means, masks = [], []
        self.ids_with, self.ids_without = [], []
        cache: dict[str, torch.Tensor] = {}

        def ids(text: str) -> torch.Tensor:
            if text not in cache:
                cache[text] = tokenize(text, "sd1").ids[0]
            return cache[text]

        chunk = 256
        for start in tqdm(range(0, count, chunk), desc="encode", unit="chunk"):
            n = min(chunk, count - start)
            images, silhouettes, _ = shapes.batch(seed, start, n)
            with torch.no_grad():
                posterior = vae.encode(pixels(images, device)).latent_dist
            means.append(posterior.mean.cpu())
            masks.append(torch.from_numpy(np.rint(silhouettes * 255).astype(np.uint8)))
            for index in range(start, start + n):
                scene = shapes.scene_at(seed, index)
                self.ids_with.append(ids(scene.caption(True)))
                self.ids_without.append(ids(scene.caption(False)))
        self.mean, self.masks = torch.cat(means), torch.cat(masks)
        self.empty = ids("")
        self.count = count
        self.scaling_factor = float(1.0 / self.mean.std())


def caption_ids(
    data: LatentData,
    index: np.ndarray,
    rng: np.random.Generator,
    position_share: float,
    dropout: float,
) -> torch.Tensor:
    """The batch's token ids: an empty caption with probability `dropout` (what teaches the
    unconditional prediction CFG needs), else the caption with or without its position clause."""
    rows = []
    for i in index:
        draw = rng.random()
        if draw < dropout:
            rows.append(data.empty)
        elif draw < dropout + (1 - dropout) * position_share:
            rows.append(data.ids_with[i])
        else:
            rows.append(data.ids_without[i])
    return torch.stack(rows)


def alphas_cumprod() -> torch.Tensor:
    """SD1's scaled-linear schedule, as in the shipped scheduler config."""
    c = SCHEDULER_CONFIG
    betas = (
        torch.linspace(c["beta_start"] ** 0.5, c["beta_end"] ** 0.5, c["num_train_timesteps"]) ** 2
    )
    return torch.cumprod(1.0 - betas, dim=0)


def noisy_batch(
    data: LatentData,
    index: np.ndarray,
    device: torch.device,
    ab: torch.Tensor,
    args: argparse.Namespace,
    prediction: str,
    high_noise_share: float,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(noisy latents, timesteps, target, loss weights) for scenes `index`.

    A share `high_noise_share` of the timesteps is drawn from `--high-noise-from` up: the
    layout, and so the position words, is decided there. The weights are min-SNR's in x0 terms,
    min(SNR, 5) for epsilon; for v-prediction min(1 + SNR, 5), which keeps the high-noise steps'
    weight at about 1 instead of their SNR (~0.005), or the words that place the shape get no say.
    """
    idx = torch.from_numpy(index)
    z0 = data.mean[idx] * data.scaling_factor
    t = torch.randint(0, len(ab), (len(index),))
    if high_noise_share > 0:  # (no extra draws otherwise: earlier runs stay reproducible)
        high = torch.randint(args.high_noise_from, len(ab), (len(index),))
        t = torch.where(torch.rand(len(index)) < high_noise_share, high, t)
    a = ab[t].view(-1, 1, 1, 1)
    noise = torch.randn_like(z0)
    noisy = a.sqrt() * z0 + (1 - a).sqrt() * noise
    snr = ab[t] / (1 - ab[t])
    if prediction == "v_prediction":
        target = a.sqrt() * noise - (1 - a).sqrt() * z0
        weight = torch.clamp(snr + 1, max=MIN_SNR_GAMMA) / (snr + 1)
    else:
        target = noise
        weight = torch.clamp(snr, max=MIN_SNR_GAMMA) / snr
    return noisy.to(device), t.to(device), target.to(device), weight.to(device)


def weighted_mse(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    return (weight * ((pred - target) ** 2).mean(dim=(1, 2, 3))).mean()


# --- stage 2: UNet + text encoder ----------------------------------------------------------------


class Phase(NamedTuple):
    """One phase of the UNet stage: its loss-log name, target, step count, learning rate, the share
    of its timesteps drawn from `--high-noise-from` up, and the round whose random streams it
    draws from (0: the first phase, seeded before the initial weights)."""

    name: str
    prediction: str
    steps: int
    lr: float
    high_noise_share: float
    streams: int
    replays_resume: bool = False


def unet_phases(args: argparse.Namespace) -> list[Phase]:
    """The UNet stage's phases in order; a phase with no steps is left out."""
    first = Phase("unet", args.prediction, args.unet_steps, args.unet_lr, args.high_noise_share, 0)
    v = Phase("unet-v", "v_prediction", args.v_steps, args.v_lr, args.high_noise_share, 1)
    # The layout phase replays the random streams of a run resumed at round 1 (see `fit_unet`).
    layout = Phase(
        "unet-layout",
        "v_prediction",
        args.layout_steps,
        args.layout_lr,
        args.layout_high_noise_share,
        streams=1,
        replays_resume=True,
    )
    return [first] + [phase for phase in (v, layout) if phase.steps]


def save_unet(state: Path, unet: Any, text_encoder: Any, prediction: str) -> None:
    """The UNet stage's weights and the target they were trained for, which later stages follow."""
    torch.save(unet.state_dict(), state / "unet.pt")
    torch.save(text_encoder.state_dict(), state / "text_encoder.pt")
    (state / "prediction.json").write_text(json.dumps({"prediction": prediction}))


def train_unet(
    args: argparse.Namespace, data: LatentData, device: torch.device, log: LossLog
) -> tuple[Any, Any, str]:
    """The `--prediction` phase, then `--v-steps` converting the UNet to v-prediction (how SD 2
    turned an epsilon model into a v one), then `--layout-steps` weighted towards the high-noise
    steps where the layout is decided; returns the EMA UNet and text encoder and their target.
    `--resume K` starts at phase K from the weights the stage saved last."""
    torch.manual_seed(args.seed + 2)  # seeds the initial weights, too
    unet, text_encoder = build_unet(), build_text_encoder()
    phases = unet_phases(args)
    if args.resume:
        state = args.work / "state"
        unet.load_state_dict(torch.load(state / "unet.pt", map_location=device))
        text_encoder.load_state_dict(torch.load(state / "text_encoder.pt", map_location=device))
    for phase in phases[args.resume :]:
        unet, text_encoder = fit_unet(args, data, device, log, (unet, text_encoder), phase)
    return unet, text_encoder, phases[-1].prediction


def fit_unet(
    args: argparse.Namespace,
    data: LatentData,
    device: torch.device,
    log: LossLog,
    start: tuple[Any, Any],
    phase: Phase,
) -> tuple[Any, Any]:
    """One phase of the UNet stage from the weights `start`, with caption dropout; returns the
    phase's EMA UNet and text encoder."""
    if phase.streams:  # the first phase's seed was set before its weights were made
        torch.manual_seed(args.seed + 2 + 10 * phase.streams)
        if phase.replays_resume:
            # An earlier shipped layout phase ran as `--resume 1`, which drew a fresh UNet and
            # text encoder before loading the saved weights over them; the phase still draws (and
            # drops) them, because the shipped weights were trained on the random stream after it
            # and one command must rewrite them bit for bit.
            build_unet(), build_text_encoder()
    rng = np.random.default_rng((args.seed, 2, phase.streams))
    unet, text_encoder = (m.to(device).train().requires_grad_(True) for m in start)
    params = list(unet.parameters()) + list(text_encoder.parameters())
    opt, schedule = optimizer(iter(params), phase.lr, phase.steps)
    ema_unet, ema_text = Ema(unet, args.ema), Ema(text_encoder, args.ema)
    ab = alphas_cumprod()

    def unet_loss(
        noisy: torch.Tensor,
        t: torch.Tensor,
        target: torch.Tensor,
        weight: torch.Tensor,
        ids: torch.Tensor,
    ) -> torch.Tensor:
        context = text_encoder(input_ids=ids).last_hidden_state
        return weighted_mse(unet(noisy, t, encoder_hidden_states=context).sample, target, weight)

    step_loss = compiled(unet_loss, args)

    def loss_at(step: int) -> torch.Tensor:
        index = rng.integers(data.count, size=args.batch)
        noisy, t, target, weight = noisy_batch(
            data, index, device, ab, args, phase.prediction, phase.high_noise_share
        )
        ids = caption_ids(data, index, rng, POSITION_SHARE, args.caption_dropout).to(device)
        return step_loss(noisy, t, target, weight, ids)

    def snapshot(step: int) -> None:
        if args.snapshot_every and (step + 1) % args.snapshot_every == 0:
            # The EMA weights so far, for watching a long run from outside.
            save_unet(args.work / "state", ema_unet.shadow, ema_text.shadow, phase.prediction)

    run_stage(
        phase.name, phase.steps, loss_at, opt, schedule, log,
        clip=params, emas=((ema_unet, unet), (ema_text, text_encoder)), after_step=snapshot,
    )  # fmt: skip
    return ema_unet.shadow, ema_text.shadow


# --- stage 3: ControlNet -------------------------------------------------------------------------


def train_controlnet(
    args: argparse.Namespace,
    data: LatentData,
    unet: Any,
    text_encoder: Any,
    device: torch.device,
    log: LossLog,
    prediction: str,
) -> Any:
    """A ControlNet on the frozen UNet, for the UNet's target `prediction`; its hint is the shape's
    silhouette, white on black."""
    torch.manual_seed(args.seed + 3)
    rng = np.random.default_rng((args.seed, 3))
    controlnet = build_controlnet(unet).to(device).train()
    opt, schedule = optimizer(controlnet.parameters(), args.controlnet_lr, args.controlnet_steps)
    ema = Ema(controlnet, args.ema)
    ab = alphas_cumprod()

    def controlnet_loss(
        noisy: torch.Tensor,
        t: torch.Tensor,
        target: torch.Tensor,
        weight: torch.Tensor,
        ids: torch.Tensor,
        hint: torch.Tensor,
    ) -> torch.Tensor:
        with torch.no_grad():
            context = text_encoder(input_ids=ids).last_hidden_state
        down, mid = controlnet(
            noisy, t, encoder_hidden_states=context, controlnet_cond=hint, return_dict=False
        )
        pred = unet(
            noisy,
            t,
            encoder_hidden_states=context,
            down_block_additional_residuals=down,
            mid_block_additional_residual=mid,
        ).sample
        return weighted_mse(pred, target, weight)

    step_loss = compiled(controlnet_loss, args)

    def loss_at(step: int) -> torch.Tensor:
        index = rng.integers(data.count, size=args.batch)
        noisy, t, target, weight = noisy_batch(
            data, index, device, ab, args, prediction, args.high_noise_share
        )
        # The hint gives the position, so most captions leave it out.
        ids = caption_ids(data, index, rng, position_share=0.3, dropout=args.caption_dropout).to(
            device
        )
        hint = (
            (data.masks[torch.from_numpy(index)].float() / 255).unsqueeze(1).expand(-1, 3, -1, -1)
        )
        return step_loss(noisy, t, target, weight, ids, hint.contiguous().to(device))

    run_stage(
        "controlnet", args.controlnet_steps, loss_at, opt, schedule, log,
        clip=list(controlnet.parameters()), emas=((ema, controlnet),),
    )  # fmt: skip
    return ema.shadow


# --- writing the shipped files -------------------------------------------------------------------


def _public(config: Any) -> dict[str, Any]:
    return json.loads(json.dumps({k: v for k, v in dict(config).items() if not k.startswith("_")}))


def _half(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", torch.float16).contiguous() for k, v in state_dict.items()}


def export(
    out: Path,
    vae: Any,
    text_encoder: Any,
    unet: Any,
    controlnet: Any,
    scaling: float,
    prediction: str = "epsilon",
) -> None:
    """The checkpoint (LDM single file) and the ControlNet (`control_model.*`), fp16."""
    from safetensors.torch import save_file

    # The diffusers -> LDM key mapping the tiny models use (written independently of diffusers).
    from nodes.sd.ldm_keys import clip_to_ldm, controlnet_to_ldm, unet_to_ldm, vae_to_ldm

    configs = {
        "family": "sd1",
        "prediction_type": prediction,
        "unet": _public(unet.config),
        "vae": {**_public(vae.config), "scaling_factor": scaling},
        "text_encoder": text_encoder.config.to_dict(),
        "scheduler": dict(SCHEDULER_CONFIG),
    }
    (out / "checkpoints").mkdir(parents=True, exist_ok=True)
    (out / "controlnet").mkdir(parents=True, exist_ok=True)
    single_file = {
        **unet_to_ldm(unet.state_dict(), configs["unet"]),
        **vae_to_ldm(vae.state_dict(), configs["vae"]),
        **clip_to_ldm(text_encoder.state_dict()),
    }
    save_file(
        _half(single_file),
        out / "checkpoints" / CHECKPOINT_NAME,
        metadata={METADATA_CONFIGS: json.dumps(configs)},
    )
    control = controlnet_to_ldm(controlnet.state_dict(), configs["unet"])
    save_file(
        _half(control),
        out / "controlnet" / CONTROLNET_NAME,
        metadata={METADATA_CONFIGS: json.dumps({"controlnet": _public(controlnet.config)})},
    )


# --- main ----------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--stage", choices=("all", "vae", "unet", "controlnet", "decoder", "export"), default="all"
    )
    parser.add_argument("--out", type=Path, default=BUILTIN_MODELS, help="models folder to write")
    parser.add_argument("--work", type=Path, default=ROOT / "train" / "work")
    parser.add_argument("--seed", type=int, default=0)
    # One thread: on a shared, busy 2-core machine two threads ran 5-10x slower (they wait on each other).
    parser.add_argument("--threads", type=int, default=1, help="CPU threads per process")
    parser.add_argument("--vae-threads", type=int, default=2, help="CPU threads, VAE stage")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--vae-batch", type=int, default=16)
    parser.add_argument("--vae-steps", type=int, default=6000)
    parser.add_argument("--vae-crop-share", type=float, default=0.85)
    parser.add_argument("--vae-lr", type=float, default=2e-3)
    parser.add_argument(
        "--vae-warmup",
        type=int,
        default=VAE_WARMUP_STEPS,
        help="learning-rate warm-up steps, VAE stage",
    )
    parser.add_argument("--decoder-steps", type=int, default=12000)
    parser.add_argument("--decoder-lr", type=float, default=1e-3)
    parser.add_argument("--kl-weight", type=float, default=1e-3)
    parser.add_argument(
        "--balance-weight",
        type=float,
        default=0.1,
        help="VAE: weight of the term that keeps the latent channels uncorrelated and equally "
        "spread (0.1 kept the reconstructions, 1 lost them; 0 leaves it out)",
    )
    parser.add_argument("--scenes", type=int, default=8000, help="scenes encoded for stages 2-3")
    parser.add_argument("--unet-steps", type=int, default=6000)
    parser.add_argument(
        "--resume",
        type=int,
        default=0,
        help="UNet stage: start at phase N (0 is the first), from the weights it saved last",
    )
    parser.add_argument("--unet-lr", type=float, default=2e-3)
    parser.add_argument(
        "--caption-dropout",
        type=float,
        default=0.1,
        help="share of UNet and ControlNet captions left empty, for classifier-free guidance",
    )
    parser.add_argument(
        "--prediction", choices=("epsilon", "v_prediction"), default="epsilon", help="UNet target"
    )
    parser.add_argument(
        "--high-noise-share",
        type=float,
        default=0.0,
        help="share of UNet and ControlNet timesteps drawn from --high-noise-from up",
    )
    parser.add_argument("--high-noise-from", type=int, default=600)
    parser.add_argument("--v-steps", type=int, default=3000, help="then N v-prediction UNet steps")
    parser.add_argument("--v-lr", type=float, default=1e-3, help="learning rate of --v-steps")
    parser.add_argument(
        "--layout-steps",
        type=int,
        default=6000,
        help="then N v-prediction UNet steps weighted towards high noise, where the layout is set",
    )
    parser.add_argument(
        "--layout-lr", type=float, default=5e-4, help="learning rate, --layout-steps"
    )
    parser.add_argument(
        "--layout-high-noise-share",
        type=float,
        default=0.25,
        help="share of the --layout-steps timesteps drawn from --high-noise-from up",
    )
    parser.add_argument("--controlnet-steps", type=int, default=1500)
    parser.add_argument("--controlnet-lr", type=float, default=1e-3)
    parser.add_argument("--ema", type=float, default=0.995)
    parser.add_argument("--edge-weight", type=float, default=1.0, help="VAE edge-loss weight")
    parser.add_argument(
        "--compile",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="torch.compile each training step (the first steps wait for the compiler)",
    )
    parser.add_argument(
        "--snapshot-every", type=int, default=1000, help="save the UNet's EMA weights every N steps"
    )
    parser.add_argument(
        "--parallel-decoder",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="with --stage all: fine-tune the decoder in a second process beside the UNet",
    )
    args = parser.parse_args(argv)
    for name in ("high_noise_share", "layout_high_noise_share", "caption_dropout"):
        if not 0.0 <= getattr(args, name) <= 1.0:
            flag = "--" + name.replace("_", "-")
            parser.error(f"{flag} must be between 0 and 1, not {getattr(args, name)}")
    for name in ("v_steps", "layout_steps", "balance_weight", "vae_warmup"):
        if getattr(args, name) < 0:
            parser.error(f"--{name.replace('_', '-')} must be 0 or more, not {getattr(args, name)}")
    phases = len(unet_phases(args))
    if not 0 <= args.resume < phases:
        parser.error(f"--resume must be a UNet phase from 0 to {phases - 1}, not {args.resume}")
    steps = int(SCHEDULER_CONFIG["num_train_timesteps"])
    if not 0 <= args.high_noise_from < steps:
        parser.error(
            f"--high-noise-from must be a timestep from 0 to {steps - 1}, not {args.high_noise_from}"
        )
    return args


def start_decoder_process(argv: list[str] | None) -> subprocess.Popen[bytes]:
    """The decoder stage in its own process (the other core): it only needs the saved VAE."""
    rest = [a for a in (argv if argv is not None else sys.argv[1:]) if not a.startswith("--stage")]
    command = [sys.executable, "-m", "train.train_demo", *rest, "--stage", "decoder"]
    return subprocess.Popen(command, cwd=ROOT)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    args.work.mkdir(parents=True, exist_ok=True)
    log = LossLog(args.work / "loss_log.tsv")
    started = time.perf_counter()
    all_stages = ("vae", "unet", "controlnet", "decoder", "export")
    stages = all_stages if args.stage == "all" else (args.stage,)
    state = args.work / "state"
    state.mkdir(exist_ok=True)

    def saved(name: str, module: Any) -> Any:
        module.load_state_dict(torch.load(state / f"{name}.pt", map_location=device))
        return module.to(device).eval().requires_grad_(False)

    if "vae" in stages:
        torch.set_num_threads(args.vae_threads)  # nothing else runs yet: use every core
        vae = train_vae(args, device, log)
        torch.set_num_threads(args.threads)
        torch.save(vae.state_dict(), state / "vae.pt")
    else:
        vae = saved("vae", build_vae())
    decoder_process = None
    if args.stage == "all" and args.parallel_decoder and device.type == "cpu":
        decoder_process = start_decoder_process(argv)
        stages = tuple(s for s in stages if s != "decoder")
    data = None
    prediction = args.prediction  # the UNet's target: what it was trained for, once known
    if "unet" in stages or "controlnet" in stages:
        data = LatentData(vae, args.seed * 1000 + LATENT_DATA, args.scenes, device)
        (state / "scaling.json").write_text(json.dumps({"scaling_factor": data.scaling_factor}))
    if "unet" in stages:
        assert data is not None
        unet, text_encoder, prediction = train_unet(args, data, device, log)
        save_unet(state, unet, text_encoder, prediction)
    elif "controlnet" in stages or "export" in stages:
        unet, text_encoder = (
            saved("unet", build_unet()),
            saved("text_encoder", build_text_encoder()),
        )
        # The saved UNet's target decides the ControlNet's target and the exported label.
        if (state / "prediction.json").exists():
            prediction = json.loads((state / "prediction.json").read_text())["prediction"]
    if "controlnet" in stages:
        assert data is not None
        controlnet = train_controlnet(args, data, unet, text_encoder, device, log, prediction)
        torch.save(controlnet.state_dict(), state / "controlnet.pt")
    elif "export" in stages:
        controlnet = saved("controlnet", build_controlnet(unet))
    # The decoder stage needs only the VAE, so it can also run beside the UNet and ControlNet.
    if "decoder" in stages:
        vae = finetune_decoder(args, vae, device, log)
        torch.save(vae.state_dict(), state / "vae_decoder.pt")
    if decoder_process is not None and decoder_process.wait() != 0:
        raise SystemExit("the decoder stage failed")
    if "export" in stages:
        if "decoder" not in stages:
            vae = saved("vae_decoder", build_vae())
        scaling = json.loads((state / "scaling.json").read_text())["scaling_factor"]
        export(args.out, vae, text_encoder, unet, controlnet, scaling, prediction)
        print(f"wrote {args.out / 'checkpoints' / CHECKPOINT_NAME} and the ControlNet")
    print(f"{'+'.join(stages)} done in {(time.perf_counter() - started) / 60:.1f} min on {device}")


if __name__ == "__main__":
    main()
