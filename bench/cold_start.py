"""Cold start and memory on a full-size SD1.5-architecture checkpoint: CLI, server and baselines.

Builds, once, a deterministic random SD1.5 checkpoint in the original single-file layout (fp16,
about 2.1 GB) in ~/.cache/latentgraph-bench/ (or $LATENTGRAPH_BENCH_CACHE), with a diffusers config
folder beside it so that diffusers can load the same file offline. Then, each in a fresh process
and one full-size process at a time: the floor (every tensor read into fp32 with safetensors,
nothing else), diffusers' `StableDiffusionPipeline.from_single_file`, our `load_checkpoint`, the
headless CLI on txt2img 256x256 (euler, 4 steps, cfg 7.5, fp32) and the server (cold image,
identical re-runs, a seed change, peak and settled RSS). Medians over --repeat runs are printed
with ratios to the baselines. Run: .venv/bin/python bench/cold_start.py [--repeat N] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import math
import os
import platform
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CACHE = Path(
    os.environ.get("LATENTGRAPH_BENCH_CACHE", Path.home() / ".cache" / "latentgraph-bench")
)
NAME = "sd15-random.safetensors"
CHECKPOINT = CACHE / "models" / "checkpoints" / NAME
DIFFUSERS_CONFIG = CACHE / "sd15-config"
SIZE, STEPS = 256, 4
# Fresh-process measures, in the order each round runs them; "ours:fp16" is the low-memory
# mode's load alone, "cli-lowmem" the CLI with precision fp16-weights.
KINDS = ("floor", "diffusers", "ours", "ours:fp16", "cli", "cli-lowmem", "server")
MIB = 1024 * 1024

# Measured in the issue on this machine kind, same file shape and graph (ComfyUI 0.3.64).
COMFYUI = {
    "server start → ready (s)": 8.2,
    "cold first image (s)": 19.6,
    "load node (s)": 2.4,
    "sampler step (s)": 3.12,
    "VAE decode (s)": 3.64,
    "seed change (s)": 16.7,
    "identical re-run (ms)": 5.1,
    "peak RSS (MiB)": 6410,
    "settled RSS (MiB)": 4517,
}


# --- the checkpoint ------------------------------------------------------------------------------


def random_weights(state: dict[str, Any]) -> dict[str, Any]:
    """Deterministic random fp16 tensors shaped like `state` (meta tensors will do), one per key."""
    import torch

    block = torch.randn(1 << 22, generator=torch.Generator().manual_seed(1234))
    # Default-init-like scales keep activations O(1) (no denormals to slow the CPU down).
    out = {}
    for index, (key, meta) in enumerate(state.items()):
        n = meta.numel()
        start = (index * 7919) % block.numel()
        reps = math.ceil((start + n) / block.numel())
        values = block.repeat(reps)[start : start + n].reshape(meta.shape)
        if meta.ndim >= 2:
            values = values / math.sqrt(n / meta.shape[0])
        elif key.endswith("weight"):
            values = 1 + 0.02 * values
        else:
            values = 0.02 * values
        out[key] = values.to(torch.float16).contiguous()
    return out


def random_sd15(part: str) -> Any:
    """The SD1.5 UNet ("unet") or VAE ("vae") with `random_weights`, built on the meta device, fp32."""
    import torch

    from nodes.sd.loading.model_configs import shipped_config
    from nodes.sd.loading.strict import build_unet, build_vae

    build = {"unet": build_unet, "vae": build_vae}[part]
    model = build(shipped_config("sd1")[part])
    weights = random_weights(model.state_dict())
    for key in weights:  # one at a time, so that the fp16 copy goes as the fp32 one comes
        weights[key] = weights[key].to(torch.float32)
    model.load_state_dict(weights, strict=True, assign=True)
    return model.eval()


def build_checkpoint() -> None:
    """Write the random SD1.5 single file and the diffusers config folder, if missing."""
    if CHECKPOINT.is_file() and (DIFFUSERS_CONFIG / "model_index.json").is_file():
        return
    from safetensors.torch import save_file

    from nodes.sd.ldm_keys import clip_to_ldm, unet_to_ldm, vae_to_ldm
    from nodes.sd.loading.model_configs import shipped_config
    from nodes.sd.loading.strict import build_text_encoder, build_unet, build_vae

    started = time.perf_counter()
    config = shipped_config("sd1")
    unet = random_weights(build_unet(config["unet"]).state_dict())
    vae = random_weights(build_vae(config["vae"]).state_dict())
    text = random_weights(build_text_encoder(config["text_encoder"], False).state_dict())
    single = {
        **unet_to_ldm(unet, config["unet"]),
        **vae_to_ldm(vae, config["vae"]),
        **clip_to_ldm(text),
    }
    CHECKPOINT.parent.mkdir(parents=True, exist_ok=True)
    partial = CHECKPOINT.with_suffix(".partial")
    save_file(single, partial)
    partial.rename(CHECKPOINT)
    _write_diffusers_config(config)
    print(
        f"built {CHECKPOINT} ({CHECKPOINT.stat().st_size:,} bytes, {len(single)} tensors) "
        f"in {time.perf_counter() - started:.1f} s",
        flush=True,
    )


def _write_diffusers_config(config: dict[str, Any]) -> None:
    """The config folder `from_single_file(config=...)` needs to stay offline."""
    folder = DIFFUSERS_CONFIG
    for part in ("unet", "vae", "text_encoder", "tokenizer", "scheduler"):
        (folder / part).mkdir(parents=True, exist_ok=True)

    def write(path: str, data: dict[str, Any]) -> None:
        (folder / path).write_text(json.dumps(data, indent=1))

    write(
        "model_index.json",
        {
            "_class_name": "StableDiffusionPipeline",
            "_diffusers_version": "0.42.1",
            "feature_extractor": [None, None],
            "safety_checker": [None, None],
            "requires_safety_checker": False,
            "scheduler": ["diffusers", "EulerDiscreteScheduler"],
            "text_encoder": ["transformers", "CLIPTextModel"],
            "tokenizer": ["transformers", "CLIPTokenizer"],
            "unet": ["diffusers", "UNet2DConditionModel"],
            "vae": ["diffusers", "AutoencoderKL"],
        },
    )
    write("unet/config.json", {"_class_name": "UNet2DConditionModel", **config["unet"]})
    write("vae/config.json", {"_class_name": "AutoencoderKL", **config["vae"]})
    write(
        "text_encoder/config.json",
        {
            "architectures": ["CLIPTextModel"],
            "model_type": "clip_text_model",
            **config["text_encoder"],
        },
    )
    write(
        "scheduler/scheduler_config.json",
        {"_class_name": "EulerDiscreteScheduler", **config["scheduler"]},
    )
    tokens = ROOT / "nodes" / "sd" / "tokenizer_data"
    for name in ("vocab.json", "merges.txt"):
        shutil.copy(tokens / name, folder / "tokenizer" / name)
    write(
        "tokenizer/tokenizer_config.json",
        {"model_max_length": 77, "tokenizer_class": "CLIPTokenizer"},
    )


def graph(seed: int = 7, precision: str = "auto") -> dict[str, Any]:
    """txt2img 256x256, euler, 4 steps, on the full-size checkpoint (the issue's measurement)."""
    document = json.loads((ROOT / "graphs" / "txt2img.json").read_text())
    nodes = document["nodes"]
    nodes["checkpoint"]["inputs"].update(checkpoint=NAME, precision=precision)
    nodes["latent"]["inputs"].update(width=SIZE, height=SIZE)
    nodes["sampler"]["inputs"].update(seed=seed, steps=STEPS)
    nodes["save"]["inputs"]["prefix"] = "cold"
    document.pop("editor", None)
    return document


# --- measures in a fresh process -----------------------------------------------------------------


def _memory() -> dict[str, float]:
    fields = dict(
        line.split(":", 1)
        for line in Path("/proc/self/status").read_text().splitlines()
        if ":" in line
    )
    return {
        "peak_mib": int(fields["VmHWM"].split()[0]) / 1024,
        "rss_mib": int(fields["VmRSS"].split()[0]) / 1024,
    }


def measure_in_process(kind: str) -> dict[str, Any]:
    """One measure; runs in its own process (see `fresh`)."""
    import gc

    import torch

    if kind != "floor":  # imports are not part of a load (the CLI and server figures include them)
        import diffusers.loaders.single_file_utils  # noqa: F401
        from diffusers import AutoencoderKL, StableDiffusionPipeline, UNet2DConditionModel  # noqa: F401
        from transformers import CLIPTextModel  # noqa: F401
    started, cpu = time.perf_counter(), _cpu_seconds()
    if kind == "floor":
        from safetensors import safe_open

        with safe_open(str(CHECKPOINT), "pt", device="cpu") as handle:
            kept = {k: handle.get_tensor(k).float() for k in handle.offset_keys()}
        seconds = time.perf_counter() - started
        held = sum(t.numel() * t.element_size() for t in kept.values())
    elif kind == "diffusers":
        from diffusers import StableDiffusionPipeline

        pipe = StableDiffusionPipeline.from_single_file(
            str(CHECKPOINT),
            config=str(DIFFUSERS_CONFIG),
            local_files_only=True,
            torch_dtype=torch.float32,
            safety_checker=None,
            requires_safety_checker=False,
        )
        seconds = time.perf_counter() - started
        held = sum(
            t.numel() * t.element_size()
            for m in (pipe.unet, pipe.vae, pipe.text_encoder)
            for t in m.state_dict().values()
        )
    elif kind.startswith("ours"):
        from nodes.sd.loading.single_file import load_checkpoint

        precision = kind.partition(":")[2] or None
        loaded = load_checkpoint(CHECKPOINT, device="cpu", dtype=precision)
        seconds = time.perf_counter() - started
        held = sum(
            t.numel() * t.element_size()
            for m in (loaded.unet.unet, loaded.vae.vae, loaded.clip.text_encoder)
            for t in m.state_dict().values()
        )
    else:
        raise ValueError(kind)
    cpu = _cpu_seconds() - cpu
    gc.collect()
    return {"seconds": seconds, "cpu_s": cpu, "model_mib": held / MIB, **_memory()}


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def fresh(kind: str) -> dict[str, Any]:
    """Run `measure_in_process(kind)` in a new interpreter and return its result."""
    out = subprocess.run(
        [sys.executable, __file__, "--measure", kind], capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        raise RuntimeError(f"{kind} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# --- the CLI -------------------------------------------------------------------------------------


def run_cli(work: Path, precision: str = "auto") -> dict[str, Any]:
    """`latentgraph run --json` as a whole cold process: ready, first image, node times, peak RSS."""
    work.mkdir(parents=True, exist_ok=True)
    graph_file = work / "graph.json"
    graph_file.write_text(json.dumps(graph(precision=precision)))
    started = time.time()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "latentgraph_cli",
            "run",
            str(graph_file),
            "--json",
            "--models",
            str(CACHE / "models"),
            "--out",
            str(work / "out"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=ROOT,
    )
    assert process.stdout is not None
    events = [json.loads(line) for line in process.stdout if line.startswith("{")]
    _, status, usage = os.wait4(process.pid, 0)
    done = time.time()
    if status != 0 or events[-1]["type"] != "run_finished":
        raise RuntimeError(f"CLI run failed: {events[-1]}")
    result = _node_times(events)
    first = next(e for e in events if e["type"] == "run_started")
    result.update(
        ready_s=first["time"] - started,
        first_image_s=done - started,
        peak_mib=usage.ru_maxrss / 1024,
        cpu_s=usage.ru_utime + usage.ru_stime,
    )
    return result


def _node_times(events: list[dict[str, Any]]) -> dict[str, Any]:
    """Load, per-step and decode seconds from one run's events (the server's or the CLI's)."""
    finished = {e["node_id"]: e for e in events if e["type"] in ("node_finished",)}
    started = {e["node_id"]: e for e in events if e["type"] == "node_started"}
    steps = [e["time"] for e in events if e["type"] == "progress" and e["node_id"] == "sampler"]
    times = [started["sampler"]["time"], *steps] if "sampler" in started else steps
    per_step = [b - a for a, b in itertools.pairwise(times)]
    return {
        "load_s": finished["checkpoint"]["seconds"] if "checkpoint" in started else None,
        "step_s": statistics.median(per_step) if per_step else None,
        "steps_s": per_step,
        "decode_s": finished["decode"]["seconds"] if "decode" in started else None,
        "executed": [
            e["node_id"] for e in events if e["type"] == "node_finished" and not e["cached"]
        ],
    }


# --- the server ----------------------------------------------------------------------------------


def run_server(work: Path, reruns: int) -> dict[str, Any]:
    """`latentgraph serve`: start to ready, cold image, identical re-runs, seed change, RSS."""
    started = time.time()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "latentgraph_cli",
            "serve",
            "--port",
            "0",
            "--models",
            str(CACHE / "models"),
            "--output",
            str(work / "out"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=ROOT,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        ready = time.time() - started
        if not line.startswith("serving on "):
            raise RuntimeError(f"server did not start: {line!r}")
        url = line.split()[2]
        result = asyncio.run(_drive(url, reruns))
        time.sleep(3)  # let the allocator settle after the last job
        status = dict(
            entry.split(":", 1)
            for entry in Path(f"/proc/{process.pid}/status").read_text().splitlines()
            if ":" in entry
        )
        result.update(
            ready_s=ready,
            peak_mib=int(status["VmHWM"].split()[0]) / 1024,
            settled_mib=int(status["VmRSS"].split()[0]) / 1024,
        )
        return result
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def _drive(url: str, reruns: int) -> dict[str, Any]:
    import aiohttp

    client_id = uuid.uuid4().hex
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(f"{url}/ws", params={"client_id": client_id}) as ws:

            async def job(document: dict[str, Any]) -> tuple[float, list[dict[str, Any]]]:
                submitted = time.perf_counter()
                body = {"graph": document, "client_id": client_id}
                async with http.post(f"{url}/api/v1/jobs", json=body) as response:
                    job_id = (await response.json())["job_id"]
                events: list[dict[str, Any]] = []
                async for message in ws:
                    if message.type == aiohttp.WSMsgType.BINARY:
                        continue
                    event = message.json()
                    data = event["data"]
                    if data.get("job_id") != job_id:
                        continue
                    events.append({"type": event["type"], **data})
                    if event["type"] in ("job_finished", "job_failed", "job_interrupted"):
                        wall = time.perf_counter() - submitted
                        if event["type"] != "job_finished":
                            raise RuntimeError(f"job failed: {data}")
                        return wall, events
                raise RuntimeError("websocket closed")

            cold_wall, cold_events = await job(graph())
            rerun_walls, rerun_executed = [], []
            for _ in range(reruns):
                wall, events = await job(graph())
                rerun_walls.append(wall)
                rerun_executed.extend(_node_times(events)["executed"])
            seed_wall, seed_events = await job(graph(seed=8))
    result = {"first_image_s": cold_wall, **_node_times(cold_events)}
    result.update(
        rerun_ms=statistics.median(rerun_walls) * 1000,
        rerun_min_ms=min(rerun_walls) * 1000,
        rerun_nodes_run=len(rerun_executed),
        seed_change_s=seed_wall,
        seed_executed=_node_times(seed_events)["executed"],
    )
    return result


# --- report --------------------------------------------------------------------------------------


def median_of(runs: list[dict[str, Any]], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    parser.add_argument("--repeat", type=int, default=3, help="fresh processes per measure")
    parser.add_argument("--reruns", type=int, default=30, help="identical re-runs on the server")
    parser.add_argument(
        "--only", nargs="*", help="measures to run (floor diffusers ours cli server)"
    )
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure_in_process(args.measure)))
        return
    build_checkpoint()
    wanted = set(args.only or [k for k in KINDS if k != "ours:fp16"])
    results: dict[str, list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory(dir=CACHE) as scratch:
        for i in range(args.repeat):  # interleaved, so that load on the machine hits every measure
            for kind in KINDS:
                if kind not in wanted:
                    continue
                if kind == "cli":
                    result = run_cli(Path(scratch) / f"cli{i}")
                elif kind == "cli-lowmem":
                    result = run_cli(Path(scratch) / f"lowmem{i}", precision="fp16-weights")
                elif kind == "server":
                    result = run_server(Path(scratch) / f"server{i}", args.reruns)
                else:
                    result = fresh(kind)
                results.setdefault(kind, []).append(result)
                print(f"{kind} #{i + 1}: {json.dumps(_rounded(result))}", flush=True)
    report(results)


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


def report(results: dict[str, list[dict[str, Any]]]) -> None:
    """Print the medians and ratios as a Markdown table for bench/RESULTS.md."""
    import torch

    print(
        f"\nmachine: {platform.machine()} {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"torch {torch.__version__}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    rows: list[tuple[str, str, float | None]] = []

    def row(label: str, kind: str, key: str, comfy: str | None = None) -> None:
        if kind in results and all(r.get(key) is not None for r in results[kind]):
            value = median_of(results[kind], key)
            rows.append((label, f"{value:,.3f}", COMFYUI.get(comfy) if comfy else None))
            values = ", ".join(f"{r[key]:,.3f}" for r in results[kind])
            print(f"{label}: median {value:,.3f} (runs: {values})")

    for kind in ("floor", "diffusers", "ours", "ours:fp16"):
        row(f"{kind}: load seconds", kind, "seconds")
        row(f"{kind}: load CPU seconds", kind, "cpu_s")
        row(f"{kind}: peak MiB", kind, "peak_mib")
        row(f"{kind}: settled MiB", kind, "rss_mib")
    if "floor" in results and "ours" in results:
        floor = median_of(results["floor"], "seconds")
        print(f"load / floor: {median_of(results['ours'], 'seconds') / floor:.2f}")
        floor_cpu = median_of(results["floor"], "cpu_s")
        print(f"load CPU / floor CPU: {median_of(results['ours'], 'cpu_s') / floor_cpu:.2f}")
        if "diffusers" in results:
            print(f"diffusers / floor: {median_of(results['diffusers'], 'seconds') / floor:.2f}")
        if "cli" in results:
            print(f"CLI load node / floor: {median_of(results['cli'], 'load_s') / floor:.2f}")
        if "server" in results:
            print(f"server load node / floor: {median_of(results['server'], 'load_s') / floor:.2f}")
    for kind in ("cli", "cli-lowmem", "server"):
        row(f"{kind}: start → ready s", kind, "ready_s", "server start → ready (s)")
        row(f"{kind}: cold first image s", kind, "first_image_s", "cold first image (s)")
        row(f"{kind}: load node s", kind, "load_s", "load node (s)")
        row(f"{kind}: sampler step s", kind, "step_s", "sampler step (s)")
        row(f"{kind}: VAE decode s", kind, "decode_s", "VAE decode (s)")
        row(f"{kind}: peak RSS MiB", kind, "peak_mib", "peak RSS (MiB)")
        row(f"{kind}: CPU seconds", kind, "cpu_s")
    row("server: identical re-run ms", "server", "rerun_ms", "identical re-run (ms)")
    row("server: seed change s", "server", "seed_change_s", "seed change (s)")
    row("server: settled RSS MiB", "server", "settled_mib", "settled RSS (MiB)")
    print("\n| measure | Latentgraph (median) | ComfyUI (issue) | ratio |\n|---|---|---|---|")
    for label, value, comfy in rows:
        ratio = f"{float(value.replace(',', '')) / comfy:.2f}" if comfy else ""
        print(f"| {label} | {value} | {comfy if comfy is not None else ''} | {ratio} |")


if __name__ == "__main__":
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    main()
