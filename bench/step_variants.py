"""UNet step and VAE decode under layout, attention and torch.compile variants, as ratios to eager.

One process measures, for `--model demo` (the shipped demo checkpoint) or `--model sd15` (a
full-size SD1.5 UNet and VAE with random weights, fp32), the UNet step (batch 2, as classifier-free
guidance runs it) and the VAE decode at --size pixels under each variant, interleaved round by
round, each as a ratio to the eager contiguous baseline of the same run, with the largest output
difference from it. torch.compile's compile time (its first call less a compiled call) and the
number of calls that pay it back are given separately. Then each decode variant runs once more in
a fresh process (as bench/layout.py does) to give the peak-RSS growth of a decode.

Run: .venv/bin/python bench/step_variants.py --model demo|sd15 [--steps N] [--decodes N]
     [--rounds N] [--no-compile] [--no-rss] [--only NAME ...]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from cold_start import random_sd15  # noqa: E402
from layout import run_fresh, status_mib  # noqa: E402

DEMO_CHECKPOINT = (
    ROOT / "nodes" / "sd" / "builtin_models" / "checkpoints" / "latentgraph-shapes.safetensors"
)
PROMPT_TOKENS = 77


@dataclass(frozen=True)
class Variant:
    """One way of running the same model: memory format, attention, or torch.compile."""

    name: str
    channels_last: bool = False
    # diffusers attention processor: "plain" AttnProcessor (baddbmm + softmax), "sliced"
    # SlicedAttnProcessor, "fused" FusedAttnProcessor2_0 (one QKV projection); None keeps SDPA.
    processor: str | None = None
    # SDPA kernel forced on the CPU: "math" (the reference) or "flash" (the fused CPU kernel).
    sdpa: str | None = None
    compile: bool = False


VARIANTS = (
    Variant("eager contiguous (SDPA, default)"),
    Variant("channels-last (model and input)", channels_last=True),
    Variant("SDPA math kernel", sdpa="math"),
    Variant("SDPA flash kernel (CPU)", sdpa="flash"),
    Variant("AttnProcessor (plain matmul)", processor="plain"),
    Variant("SlicedAttnProcessor", processor="sliced"),
    Variant("fused QKV (FusedAttnProcessor2_0)", processor="fused"),
    Variant("torch.compile (Inductor)", compile=True),
)
BASELINE = VARIANTS[0].name


# --- the models ----------------------------------------------------------------------------------


def load_models(model: str, parts: tuple[str, ...]) -> dict[str, Any]:
    """The UNet and/or VAE of the demo checkpoint or of a random full-size SD1.5, fp32, eval."""
    if model == "sd15":
        return {part: random_sd15(part) for part in parts}
    from nodes.sd.loading.single_file import load_checkpoint

    loaded = load_checkpoint(DEMO_CHECKPOINT, device="cpu", dtype="fp32")
    models = {"unet": loaded.unet.unet.eval(), "vae": loaded.vae.vae.eval()}
    return {part: models[part] for part in parts}


def unet_inputs(unet: Any, size: int) -> tuple[Any, ...]:
    """A batch of 2 latents (uncond + cond), timesteps and text embeddings, seeded."""
    import torch

    generator = torch.Generator().manual_seed(0)
    latent = torch.randn(2, unet.config.in_channels, size // 8, size // 8, generator=generator)
    context = torch.randn(2, PROMPT_TOKENS, unet.config.cross_attention_dim, generator=generator)
    return latent, torch.tensor([500.0, 500.0]), context


def vae_input(vae: Any, size: int) -> Any:
    import torch

    generator = torch.Generator().manual_seed(0)
    return torch.randn(1, vae.config.latent_channels, size // 8, size // 8, generator=generator)


# --- variants ------------------------------------------------------------------------------------


@contextlib.contextmanager
def applied(model: Any, variant: Variant) -> Iterator[None]:
    """`model` set up as `variant` asks while the block runs, and put back as it was after."""
    import torch
    from diffusers.models.attention_processor import AttnProcessor, SlicedAttnProcessor
    from torch.nn.attention import SDPBackend, sdpa_kernel

    saved = model.attn_processors
    try:
        if variant.channels_last:
            model.to(memory_format=torch.channels_last)
        if variant.processor == "plain":
            model.set_attn_processor(AttnProcessor())
        elif variant.processor == "sliced":
            if hasattr(model, "set_attention_slice"):
                model.set_attention_slice("auto")  # diffusers' choice: half the heads at a time
            else:  # the VAE's single-head attention: one batch row at a time
                model.set_attn_processor(SlicedAttnProcessor(slice_size=1))
        elif variant.processor == "fused":
            model.fuse_qkv_projections()
        backend = {"math": SDPBackend.MATH, "flash": SDPBackend.FLASH_ATTENTION}.get(
            variant.sdpa or ""
        )
        with sdpa_kernel(backend) if backend is not None else contextlib.nullcontext():
            yield
    finally:
        if variant.processor == "fused":
            model.unfuse_qkv_projections()
        model.set_attn_processor(saved)
        if variant.channels_last:
            model.to(memory_format=torch.contiguous_format)


def caller(part: str, model: Any, variant: Variant, size: int, compiled: dict[str, Any]) -> Any:
    """A no-argument call of the UNet step or the VAE decode as `variant` runs it."""
    import torch

    layout = torch.channels_last if variant.channels_last else torch.contiguous_format
    if part == "unet":
        latent, t, context = unet_inputs(model, size)
        latent = latent.contiguous(memory_format=layout)
        forward = model
        if variant.compile:
            from nodes.sd.compiled import compiled_forward

            forward = compiled_forward(model)  # what `--compile` runs

        def step() -> Any:
            return forward(latent, t, encoder_hidden_states=context, return_dict=False)[0]

        return step
    z = vae_input(model, size).contiguous(memory_format=layout)
    decode = model.decode
    if variant.compile:
        decode = compiled.setdefault("vae", torch.compile(model.decode))

    def run_decode() -> Any:
        return decode(z, return_dict=False)[0]

    return run_decode


# --- timing in this process ----------------------------------------------------------------------


@dataclass
class Timing:
    """One variant's calls on one part: timed seconds, a first (warm-up or compile) call, output."""

    seconds: list[float]
    first_s: list[float]
    output: Any = None


def time_variant(
    part: str, model: Any, variant: Variant, size: int, calls: int, compiled: dict[str, Any]
) -> tuple[list[float], float, Any]:
    """One warm-up call (the compile, for torch.compile), then `calls` timed ones."""
    import torch

    with applied(model, variant), torch.inference_mode():
        call = caller(part, model, variant, size, compiled)
        started = time.perf_counter()
        output = call()
        first = time.perf_counter() - started
        seconds = []
        for _ in range(calls):
            started = time.perf_counter()
            call()
            seconds.append(time.perf_counter() - started)
    if variant.compile and part == "unet":
        from nodes.sd.compiled import compiled_forward

        if compiled_forward(model).failed:  # it ran eagerly: its times are not compile's
            raise RuntimeError("torch.compile failed (see the warning above)")
    return seconds, first, output.float().contiguous()


def measure_part(
    part: str, model: Any, variants: list[Variant], args: argparse.Namespace
) -> dict[str, Timing]:
    """Every variant on one part, interleaved over rounds so that machine load hits each alike."""
    calls = args.steps if part == "unet" else args.decodes
    compiled: dict[str, Any] = {}
    timings: dict[str, Timing] = {}
    for round_ in range(args.rounds):
        for variant in variants:
            try:
                seconds, first, output = time_variant(
                    part, model, variant, args.size, calls, compiled
                )
            except Exception as exc:  # a variant the model or torch does not support
                print(f"{part} {variant.name}: failed: {type(exc).__name__}: {exc}", flush=True)
                continue
            timing = timings.setdefault(variant.name, Timing([], []))
            timing.seconds += seconds
            timing.first_s.append(first)
            if timing.output is None:
                timing.output = output
            print(
                f"round {round_ + 1} {part} {variant.name}: first {first:.3f} s, "
                f"calls {', '.join(f'{s:.3f}' for s in seconds)} s "
                f"(load {os.getloadavg()[0]:.1f})",
                flush=True,
            )
    return timings


# --- peak RSS of a decode in a fresh process -----------------------------------------------------


def reset_peak_rss() -> bool:
    """Set VmHWM back to the current RSS (Linux >= 4.0); False where /proc does not allow it."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def decode_rss_in_process(model: str, variant_name: str, size: int) -> dict[str, Any]:
    """In a fresh process: the peak RSS of a first and of a second decode over the model's RSS."""
    import torch

    variant = next(v for v in VARIANTS if v.name == variant_name)
    vae = load_models(model, ("vae",))["vae"]
    growth = []
    with applied(vae, variant), torch.inference_mode():
        call = caller("vae", vae, variant, size, {})
        before = status_mib("VmRSS")
        for _ in range(2):
            # Without a reset VmHWM would still hold the load's peak (or the first decode's,
            # which includes compiling for torch.compile).
            reset = reset_peak_rss()
            output = call()
            growth.append(status_mib("VmHWM") - before)
            del output
    return {"first_mib": growth[0], "second_mib": growth[1], "reset": reset}


# --- report --------------------------------------------------------------------------------------


def ratio(value: float | None, base: float | None) -> str:
    return "" if value is None or not base else f"{value / base:.2f}"


def report_times(
    results: dict[str, dict[str, Timing]], variants: list[Variant], args: argparse.Namespace
) -> None:
    """The markdown table of median times and ratios, then torch.compile's cost and break-even."""
    print(
        f"\n| variant | UNet step s | ratio | max abs diff | VAE decode {args.size}² s | ratio | max abs diff |"
    )
    print("|---|---|---|---|---|---|---|")
    medians: dict[str, dict[str, float]] = {}
    for part, timings in results.items():
        medians[part] = {n: statistics.median(t.seconds) for n, t in timings.items() if t.seconds}
    for variant in variants:
        cells = []
        for part in ("unet", "vae"):
            timing = results.get(part, {}).get(variant.name)
            base = results.get(part, {}).get(BASELINE)
            if timing is None or not timing.seconds:
                cells += ["", "", ""]
                continue
            median = medians[part][variant.name]
            diff = ""
            if base is not None and base.output is not None:
                diff = f"{(timing.output - base.output).abs().max().item():.1e}"
            cells += [f"{median:.3f}", ratio(median, medians[part].get(BASELINE)), diff]
        print(f"| {variant.name} | {' | '.join(cells)} |")
    compile_name = next((v.name for v in variants if v.compile), None)
    if compile_name is None:
        return
    print("\n| torch.compile | compile s (first call − a compiled call) | break-even calls |")
    print("|---|---|---|")
    for part, label in (("unet", "UNet step"), ("vae", "VAE decode")):
        timing = results.get(part, {}).get(compile_name)
        eager = medians.get(part, {}).get(BASELINE)
        if timing is None or not timing.seconds or eager is None:
            continue
        step = medians[part][compile_name]
        compile_s = timing.first_s[0] - step
        saved = eager - step
        even = f"{compile_s / saved:.0f}" if saved > 0 else "never (not faster)"
        print(f"| {label} | {compile_s:.1f} | {even} |")


def report_rss(rss: dict[str, dict[str, Any]], size: int) -> None:
    base = rss.get(BASELINE)
    print(
        f"\n| variant (fresh process) | peak RSS over the model, first decode {size}² MiB | ratio "
        "| second decode MiB | ratio |"
    )
    print("|---|---|---|---|---|")
    for name, result in rss.items():
        first, second = result["first_mib"], result["second_mib"]
        print(
            f"| {name} | {first:.0f} | {ratio(first, base and base['first_mib'])} "
            f"| {second:.0f} | {ratio(second, base and base['second_mib'])} |"
        )
    if not all(r["reset"] for r in rss.values()):
        print("(VmHWM could not be reset here: growth is over the process's earlier peak)")


# --- main ----------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("demo", "sd15"), default="demo")
    parser.add_argument("--size", type=int, default=256, help="image pixels each way (256)")
    parser.add_argument(
        "--steps", type=int, default=3, help="timed UNet calls per variant and round"
    )
    parser.add_argument(
        "--decodes", type=int, default=2, help="timed decodes per variant and round"
    )
    parser.add_argument("--rounds", type=int, default=1, help="rounds over every variant")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile")
    parser.add_argument("--no-rss", action="store_true", help="skip the fresh-process decodes")
    parser.add_argument("--parts", nargs="+", choices=("unet", "vae"), default=["unet", "vae"])
    parser.add_argument("--only", nargs="*", help="variant names to run (the baseline always runs)")
    parser.add_argument("--rss-child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.rss_child:
        model, name, size = args.rss_child
        print(json.dumps(decode_rss_in_process(model, name, int(size))))
        return
    variants = [
        v
        for v in VARIANTS
        if v.name == BASELINE
        or ((not args.only or v.name in args.only) and not (v.compile and args.no_compile))
    ]
    print(
        f"{args.model}: {platform.machine()} {os.cpu_count()} CPUs, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    started = time.perf_counter()
    results: dict[str, dict[str, Timing]] = {}
    for part in args.parts:  # one model at a time: the full-size UNet alone is 3.4 GB
        model = load_models(args.model, (part,))[part]
        results[part] = measure_part(part, model, variants, args)
        del model
    report_times(results, variants, args)
    if not args.no_rss and "vae" in args.parts:
        rss = {}
        for variant in variants:
            argv = [__file__, "--rss-child", args.model, variant.name, str(args.size)]
            if args.threads:
                argv += ["--threads", str(args.threads)]
            try:
                rss[variant.name] = run_fresh(argv, {}, label=variant.name)
            except RuntimeError as exc:
                print(f"rss {variant.name}: {exc}", flush=True)
                continue
            print(f"rss {variant.name}: {json.dumps(rss[variant.name])}", flush=True)
        report_rss(rss, args.size)
    print(f"\n{time.perf_counter() - started:.0f} s in all, load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
