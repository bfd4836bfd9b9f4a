"""Our txt2img graph against diffusers' StableDiffusionPipeline on the same tiny weights, 20 steps.

Both sides encode two prompts, run 20 Euler steps with CFG and decode with the VAE; each timed
run changes the prompts and the seed, so our cache cannot skip work the pipeline has to do.
Reported: wall time as a ratio (ours / diffusers), and the share of wall time spent outside model
forwards (UNet, text encoder, VAE decode) — the engine's overhead.
Run: .venv/bin/python bench/sampling.py
"""

from __future__ import annotations

import copy
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch

from engine.config import Paths
from engine.executor import Executor
from engine.registry import default_registry
from nodes.sd.noise import initial_noise
from nodes.sd.schedules import discrete_schedule
from nodes.sd.values import NoiseSchedule

ROOT = Path(__file__).resolve().parents[1]
STEPS, REPEATS = 20, 5
SIZES = (64, 256)


class ModelClock:
    """Accumulates the seconds spent inside the wrapped model calls."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def wrap(self, name: str, owner: Any, method: str) -> None:
        inner: Callable[..., Any] = getattr(owner, method)

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - started

        setattr(owner, method, timed)

    def total(self) -> float:
        return sum(self.seconds.values())

    def reset(self) -> None:
        self.seconds.clear()


def alternate(
    runs: dict[str, tuple[Callable[[int], None], ModelClock]],
) -> dict[str, tuple[float, float, float]]:
    """Time each side REPEATS times, alternating run by run so that load on the machine hits both.

    Returns, per side, the medians of wall seconds, seconds in model calls and seconds in the UNet.
    """
    samples: dict[str, list[tuple[float, float, float]]] = {name: [] for name in runs}
    for run, _clock in runs.values():
        run(-1)  # warm-up
    for i in range(REPEATS):
        for name, (run, clock) in runs.items():
            clock.reset()
            started = time.perf_counter()
            run(i)
            wall = time.perf_counter() - started
            samples[name].append((wall, clock.total(), clock.seconds.get("unet", 0.0)))
    return {
        name: tuple(statistics.median(column) for column in zip(*rows, strict=True))  # type: ignore[misc]
        for name, rows in samples.items()
    }


def main() -> None:
    sys.path.insert(0, str(ROOT))  # the tiny-model builder lives with the tests
    from nodes.sd.tiny_models import build_tiny_models

    torch.set_grad_enabled(False)
    models_dir = Path(tempfile.mkdtemp(prefix="lg-bench-"))
    tiny = build_tiny_models(models_dir)
    paths = Paths.resolve(models=models_dir, output=models_dir / "out", input=models_dir / "in")
    base = json.loads((ROOT / "graphs" / "txt2img.json").read_text())

    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads; tiny SD1 weights; {STEPS} Euler steps, CFG 7.5; "
        f"median of {REPEATS}"
    )
    for size in SIZES:
        measure(size, tiny.checkpoint, paths, base)


def measure(size: int, checkpoint_file: Path, paths: Paths, base: dict[str, Any]) -> None:
    """Time both sides at one image size and print the comparison."""
    from diffusers import EulerDiscreteScheduler, StableDiffusionPipeline

    from nodes.sd.loading.single_file import load_checkpoint

    # --- ours: the graph, through the executor
    executor = Executor(default_registry(), paths=paths)
    graph = copy.deepcopy(base)
    graph["outputs"] = ["checkpoint", "decode"]
    graph["nodes"]["latent"]["inputs"].update(width=size, height=size)
    graph["nodes"]["sampler"]["inputs"].update(steps=STEPS)
    loaded = executor.run(graph).values["checkpoint"]
    clock = ModelClock()
    clock.wrap("unet", loaded["model"].unet, "forward")
    clock.wrap("text", loaded["clip"].text_encoder, "forward")
    clock.wrap("vae", loaded["vae"].vae, "decode")

    def run_graph(i: int) -> None:
        g = copy.deepcopy(graph)
        g["nodes"]["positive"]["inputs"]["text"] = f"a photo of a fox, take {i}"
        g["nodes"]["negative"]["inputs"]["text"] = f"blurry {i}"
        g["nodes"]["sampler"]["inputs"]["seed"] = 100 + i
        result = executor.run(g)
        assert result.status == "finished" and "sampler" in result.executed

    # --- diffusers: the pipeline on the same weights (loaded by our loader from the same file)
    checkpoint = load_checkpoint(checkpoint_file)
    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        timestep_spacing="linspace",
        steps_offset=1,
    )
    pipe = StableDiffusionPipeline(
        vae=checkpoint.vae.vae,
        text_encoder=checkpoint.clip.text_encoder,
        tokenizer=checkpoint.clip.tokenizer,
        unet=checkpoint.unet.unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    pipe_clock = ModelClock()
    pipe_clock.wrap("unet", pipe.unet, "forward")
    pipe_clock.wrap("text", pipe.text_encoder, "forward")
    pipe_clock.wrap("vae", pipe.vae, "decode")
    sigma_max = discrete_schedule(NoiseSchedule()).sigma_max
    shape = (1, 4, size // 8, size // 8)

    def run_pipeline(i: int) -> None:
        scheduler.set_timesteps(STEPS)
        start = (
            initial_noise(100 + i, shape)
            * (1 + sigma_max**2) ** 0.5
            / float(scheduler.init_noise_sigma)
        )
        pipe(
            prompt=f"a photo of a fox, take {i}",
            negative_prompt=f"blurry {i}",
            height=size,
            width=size,
            num_inference_steps=STEPS,
            guidance_scale=7.5,
            latents=start,
            output_type="pt",
        )

    medians = alternate({"ours": (run_graph, clock), "diffusers": (run_pipeline, pipe_clock)})
    wall_o, model_o, unet_o = medians["ours"]
    wall_t, model_t, unet_t = medians["diffusers"]
    print(f"\n{size}x{size} px ({size // 8}x{size // 8} latent)")
    print(
        f"  ours:      {wall_o * 1000:8.1f} ms wall, UNet {unet_o / wall_o:6.1%}, "
        f"outside model forwards {1 - model_o / wall_o:6.2%}"
    )
    print(
        f"  diffusers: {wall_t * 1000:8.1f} ms wall, UNet {unet_t / wall_t:6.1%}, "
        f"outside model forwards {1 - model_t / wall_t:6.2%}"
    )
    print(f"  wall-time ratio ours / diffusers: {wall_o / wall_t:.3f}")


if __name__ == "__main__":
    main()
