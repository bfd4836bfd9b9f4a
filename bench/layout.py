"""Memory format, allocator settings and the VAE decode / UNet step at full SD1 size, on the CPU.

Each variant runs in a fresh process with random weights of the real SD1 VAE (and, with --unet,
UNet) configuration, fp32: one warm-up call, then --calls timed calls. Variants alternate round
by round, so that load on a shared machine hits each alike; the report gives each variant's
median time and peak-RSS growth over the model, as ratios to the first variant (contiguous
layout, default allocator). Run: .venv/bin/python bench/layout.py [--rounds N] [--unet]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SIZE = 256  # pixels, as bench/cold_start.py
MIB = 1024 * 1024

# name → (model, channels_last, extra environment)
VARIANTS: dict[str, tuple[str, bool, dict[str, str]]] = {
    "vae": ("vae", False, {}),
    "vae channels-last": ("vae", True, {}),
    "vae MALLOC_ARENA_MAX=2": ("vae", False, {"MALLOC_ARENA_MAX": "2"}),
    "vae MALLOC_MMAP_THRESHOLD_=1MiB": ("vae", False, {"MALLOC_MMAP_THRESHOLD_": str(MIB)}),
    "unet": ("unet", False, {}),
    "unet channels-last": ("unet", True, {}),
}


def status_mib(field: str) -> float:
    """A memory field of this process's /proc status (VmRSS, VmHWM, ...) in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(field)


def measure(model_kind: str, channels_last: bool, calls: int) -> dict[str, Any]:
    """In this process: build the model, call it once to warm up, then time `calls` calls."""
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel

    config = json.loads((ROOT / "nodes" / "sd" / "configs" / "sd1.json").read_text())
    torch.manual_seed(0)
    latent = torch.randn(1, 4, SIZE // 8, SIZE // 8)
    if model_kind == "vae":
        model: Any = AutoencoderKL.from_config(config["vae"]).eval()

        def call() -> Any:
            return model.decode(x).sample

        x = latent
    else:
        model = UNet2DConditionModel.from_config(config["unet"]).eval()
        x = latent.repeat(2, 1, 1, 1)
        context = torch.randn(2, 77, 768)
        t = torch.tensor([500.0, 500.0])

        def call() -> Any:
            return model(x, t, encoder_hidden_states=context).sample

    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    rss_before = status_mib("VmRSS")
    times = []
    with torch.inference_mode():
        for i in range(calls + 1):
            started = time.perf_counter()
            out = call()
            if i:
                times.append(time.perf_counter() - started)
            del out
    return {
        "seconds": statistics.median(times),
        "peak_growth_mib": status_mib("VmHWM") - rss_before,
        "threads": torch.get_num_threads(),
    }


def run_fresh(argv: list[str], env: dict[str, str], label: str) -> dict[str, Any]:
    """Run `python argv...` in a new interpreter with `env` added; its last line of output is JSON."""
    out = subprocess.run(
        [sys.executable, *argv],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"{label} failed:\n{out.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--calls", type=int, default=2, help="timed calls per process")
    parser.add_argument("--unet", action="store_true", help="also the UNet step (3.4 GB fp32)")
    parser.add_argument("--only", nargs="*", help="variant names to run (default: all)")
    parser.add_argument("--measure", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        kind, layout, calls = args.measure
        print(json.dumps(measure(kind, layout == "channels_last", int(calls))))
        return
    wanted = [n for n, v in VARIANTS.items() if args.unet or v[0] == "vae"]
    if args.only:
        wanted = [n for n in wanted if n in args.only]
    results: dict[str, list[dict[str, Any]]] = {}
    for round_ in range(args.rounds):
        for name in wanted:
            kind, channels_last, env = VARIANTS[name]
            layout = "channels_last" if channels_last else "contiguous"
            result = run_fresh(
                [__file__, "--measure", kind, layout, str(args.calls)], env, label=name
            )
            result["load"] = os.getloadavg()[0]
            results.setdefault(name, []).append(result)
            print(f"round {round_ + 1} {name}: {json.dumps(result)}", flush=True)
    print(
        f"\n| variant | median s | ratio | peak growth MiB | ratio | (load {os.getloadavg()[0]:.1f})"
    )
    print("|---|---|---|---|---|")
    base: dict[str, tuple[float, float]] = {}
    for name in wanted:
        seconds = statistics.median(r["seconds"] for r in results[name])
        growth = statistics.median(r["peak_growth_mib"] for r in results[name])
        kind = VARIANTS[name][0]
        base.setdefault(kind, (seconds, growth))
        b_s, b_g = base[kind]
        print(
            f"| {name} | {seconds:.2f} | {seconds / b_s:.2f} | {growth:.0f} | {growth / b_g:.2f} |"
        )


if __name__ == "__main__":
    main()
