"""The identical re-run on the server: wall time per job, and a cProfile of every server thread.

Starts `latentgraph serve` (the demo model, `graphs/txt2img.json` at 64×64) in a child process
whose threads are each profiled, runs the graph once cold, then re-runs it unchanged over HTTP
and the websocket, as a client would. Prints the median and minimum submit → `job_finished`
time, the nodes run (0 expected) and the functions with the most time across all threads.
Run: .venv/bin/python bench/rerun_profile.py [--reruns N] [--top N] [--no-profile]
or, against another checkout in the same run: ... --baseline PATH [--rounds N]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def graph() -> dict[str, Any]:
    """The demo txt2img graph at 64×64 (the size its model was trained at), one step."""
    document = copy.deepcopy(json.loads((ROOT / "graphs" / "txt2img.json").read_text()))
    document["nodes"]["latent"]["inputs"].update(width=64, height=64)
    # One step: the cold run only fills the cache (and is slow under the profiler).
    document["nodes"]["sampler"]["inputs"].update(steps=1)
    return document


# --- the profiled server (child process) ---------------------------------------------------------


def serve_profiled(stats_path: str, argv: list[str]) -> None:
    """Run `latentgraph serve` with one profiler per thread; SIGUSR1 resets, SIGUSR2 dumps them."""
    import cProfile
    import pstats
    import threading

    profilers: list[cProfile.Profile] = []
    lock = threading.Lock()

    def profiled(run: Any) -> Any:
        def wrapper(self: threading.Thread) -> None:
            profiler = cProfile.Profile()
            with lock:
                profilers.append(profiler)
            profiler.enable()
            run(self)

        return wrapper

    threading.Thread.run = profiled(threading.Thread.run)  # type: ignore[method-assign]
    main = cProfile.Profile()
    profilers.append(main)

    def reset(*_: Any) -> None:
        # Profilers of other threads cannot be restarted from here; their counts are snapshots
        # taken now and subtracted at the dump.
        with lock:
            baseline.clear()
            for p in profilers:
                p.snapshot_stats()
                baseline.append(dict(p.stats))  # type: ignore[attr-defined]

    baseline: list[dict[Any, Any]] = []

    def dump(*_: Any) -> None:
        with lock:
            merged: dict[Any, Any] = {}
            for index, p in enumerate(profilers):
                p.snapshot_stats()
                before = baseline[index] if index < len(baseline) else {}
                for func, (cc, nc, tt, ct, _callers) in p.stats.items():  # type: ignore[attr-defined]
                    b = before.get(func, (0, 0, 0.0, 0.0, {}))
                    row = (cc - b[0], nc - b[1], tt - b[2], ct - b[3], {})
                    if row[1] <= 0:
                        continue
                    if func in merged:
                        m = merged[func]
                        row = (m[0] + row[0], m[1] + row[1], m[2] + row[2], m[3] + row[3], {})
                    merged[func] = row
            holder = pstats.Stats()
            holder.stats = merged  # type: ignore[attr-defined]
            holder.dump_stats(stats_path + ".part")
            os.replace(stats_path + ".part", stats_path)

    signal.signal(signal.SIGUSR1, reset)
    signal.signal(signal.SIGUSR2, dump)
    from latentgraph_cli.main import main as cli_main

    main.enable()
    try:
        cli_main(argv)
    finally:
        main.disable()


# --- the client (parent process) -----------------------------------------------------------------


async def drive(url: str, reruns: int, pid: int | None) -> dict[str, Any]:
    import aiohttp

    client_id = uuid.uuid4().hex
    async with aiohttp.ClientSession() as http:
        async with http.ws_connect(f"{url}/ws", params={"client_id": client_id}) as ws:

            async def job(document: dict[str, Any]) -> tuple[float, int]:
                submitted = time.perf_counter()
                body = {"graph": document, "client_id": client_id}
                async with http.post(f"{url}/api/v1/jobs", json=body) as response:
                    job_id = (await response.json())["job_id"]
                executed = 0
                async for message in ws:
                    if message.type != aiohttp.WSMsgType.TEXT:
                        continue
                    event = message.json()
                    if event["data"].get("job_id") != job_id:
                        continue
                    if event["type"] == "node_finished" and not event["data"]["cached"]:
                        executed += 1
                    if event["type"] in ("job_finished", "job_failed", "job_interrupted"):
                        if event["type"] != "job_finished":
                            raise RuntimeError(f"job failed: {event['data']}")
                        return time.perf_counter() - submitted, executed
                raise RuntimeError("websocket closed")

            await job(graph())
            await job(graph())  # the first re-run warms lazy imports and code paths
            if pid is not None:
                os.kill(pid, signal.SIGUSR1)
                await asyncio.sleep(0.2)
            walls, executed = [], 0
            for _ in range(reruns):
                wall, ran = await job(graph())
                walls.append(wall)
                executed += ran
            if pid is not None:
                os.kill(pid, signal.SIGUSR2)
    return {
        "median_ms": statistics.median(walls) * 1000,
        "min_ms": min(walls) * 1000,
        "nodes_run": executed,
    }


@contextlib.contextmanager
def serving(command: list[str], root: Path) -> Iterator[tuple[str, int]]:
    """Runs a `serve` command from `root` until the block ends (SIGINT); yields its URL and pid."""
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=root
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line.startswith("serving on "):
            raise RuntimeError(f"server did not start: {line!r}")
        yield line.split()[2], process.pid
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def timed_server(root: Path, reruns: int) -> dict[str, Any]:
    """Median and minimum re-run time of `latentgraph serve` run from the checkout at `root`."""
    with tempfile.TemporaryDirectory() as scratch:
        # Older checkouts kept the command line in engine/cli.py.
        cli = "latentgraph_cli" if (root / "latentgraph_cli").is_dir() else "engine.cli"
        command = [sys.executable, "-m", cli, "serve", "--port", "0", "--output", scratch]
        with serving(command, root) as (url, _):
            return asyncio.run(drive(url, reruns, None))


def compare(baseline: Path, reruns: int, rounds: int) -> None:
    """This checkout's server against the baseline checkout's, alternating round by round."""
    medians: dict[str, list[float]] = {"this": [], "baseline": []}
    for round_ in range(rounds):
        for name, root in (("baseline", baseline), ("this", ROOT)):
            result = timed_server(root, reruns)
            medians[name].append(result["median_ms"])
            print(
                f"round {round_ + 1} {name}: median {result['median_ms']:.2f} ms, "
                f"min {result['min_ms']:.2f} ms, nodes run {result['nodes_run']}, "
                f"load {os.getloadavg()[0]:.1f}",
                flush=True,
            )
    ours, base = statistics.median(medians["this"]), statistics.median(medians["baseline"])
    print(f"median of medians: this {ours:.2f} ms, baseline {base:.2f} ms, ratio {ours / base:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reruns", type=int, default=50)
    parser.add_argument("--top", type=int, default=40, help="functions to print")
    parser.add_argument("--sort", default="tottime", help="pstats sort key")
    parser.add_argument("--no-profile", action="store_true", help="time only, no profiler")
    parser.add_argument(
        "--baseline",
        type=Path,
        help="another checkout (say, an older commit): time its server too, alternating, no profile",
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds of --baseline comparison")
    parser.add_argument("--serve", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve is not None:
        serve_profiled(args.serve[0], args.serve[1:])
        return
    if args.baseline is not None:
        compare(args.baseline.resolve(), args.reruns, args.rounds)
        return
    import pstats

    with tempfile.TemporaryDirectory() as scratch:
        stats_path = str(Path(scratch) / "rerun.prof")
        serve = ["serve", "--port", "0", "--output", str(Path(scratch) / "out")]
        if args.no_profile:
            command = [sys.executable, "-m", "latentgraph_cli", *serve]
        else:
            command = [sys.executable, __file__, "--serve", stats_path, *serve]
        with serving(command, ROOT) as (url, server_pid):
            pid = None if args.no_profile else server_pid
            result = asyncio.run(drive(url, args.reruns, pid))
            if pid is not None:
                deadline = time.monotonic() + 120
                while not Path(stats_path).exists() and time.monotonic() < deadline:
                    time.sleep(0.5)  # written by the server on SIGUSR2
        print(
            f"identical re-run ({args.reruns}x, {'profiled' if pid else 'not profiled'}): "
            f"median {result['median_ms']:.2f} ms, min {result['min_ms']:.2f} ms, "
            f"nodes run {result['nodes_run']}; load average {os.getloadavg()[0]:.1f}"
        )
        if pid is not None:
            stats = pstats.Stats(stats_path)
            stats.sort_stats(args.sort).print_stats(args.top)


if __name__ == "__main__":
    main()
