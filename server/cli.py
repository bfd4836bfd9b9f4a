"""`latentgraph serve`: run the server until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import logging
import os
import signal
import sys

from aiohttp import web

from engine.config import ComputeOptions, Paths
from nodes.sd.offline import stay_offline
from server.settings import ServerSettings, is_loopback, token_problem

TOKEN_ENV = "LATENTGRAPH_TOKEN"
# Comma-separated origins besides the server's own that may drive it (an editor served elsewhere).
ORIGINS_ENV = "LATENTGRAPH_ALLOWED_ORIGINS"
EXIT_OK, EXIT_FAILED, EXIT_REFUSED = 0, 1, 2
# Server limits that an environment variable may change (see docs/limits.md).
LIMIT_ENV = {
    "max_json_bytes": "LATENTGRAPH_MAX_JSON_BYTES",
    "max_upload_bytes": "LATENTGRAPH_MAX_UPLOAD_BYTES",
    "max_upload_pixels": "LATENTGRAPH_MAX_UPLOAD_PIXELS",
    "ws_max_queued": "LATENTGRAPH_WS_MAX_QUEUED",
    "ws_max_connections": "LATENTGRAPH_WS_MAX_CONNECTIONS",
    "history_max_jobs": "LATENTGRAPH_HISTORY_MAX_JOBS",
    "history_max_age_s": "LATENTGRAPH_HISTORY_MAX_AGE_S",
}


def limits_from_env(env: dict[str, str]) -> dict[str, int]:
    """The server limits set by environment variables; raises ValueError naming a bad one."""
    chosen = {}
    for name, var in LIMIT_ENV.items():
        raw = env.get(var, "").strip()
        if not raw:
            continue
        if not raw.isdigit() or int(raw) <= 0:
            raise ValueError(f"${var} must be a positive whole number, not {raw!r}")
        chosen[name] = int(raw)
    return chosen


log = logging.getLogger(__name__)


def serve(args: argparse.Namespace, paths: Paths) -> int:
    """Serve the API on `args.host`:`args.port`; refuses a non-loopback address without a token."""
    stay_offline()
    token = args.token or os.environ.get(TOKEN_ENV) or None
    origins = frozenset(o.strip() for o in os.environ.get(ORIGINS_ENV, "").split(",") if o.strip())
    if token is not None and (problem := token_problem(token)) is not None:
        print(f"refusing --token (or ${TOKEN_ENV}): {problem}", file=sys.stderr)
        return EXIT_REFUSED
    try:
        limits = limits_from_env(dict(os.environ))
    except ValueError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    settings = ServerSettings(
        host=args.host, port=args.port, token=token, allowed_origins=origins, **limits
    )
    if not is_loopback(settings.host) and settings.token is None:
        print(
            f"refusing to listen on {settings.host} without --token (or ${TOKEN_ENV}): anyone "
            "who can reach it could run graphs and read your output folder",
            file=sys.stderr,
        )
        return EXIT_REFUSED
    ray_address = getattr(args, "ray", None)
    ray_workers = getattr(args, "ray_workers", None)
    if ray_workers is not None and (ray_address is None or ray_workers < 1):
        print("--ray-workers needs --ray and a count of at least 1", file=sys.stderr)
        return EXIT_REFUSED
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from engine.executor import Executor
    from server.app import create_app

    compute = ComputeOptions(compile=bool(getattr(args, "compile", False)))
    backend = None
    if ray_address is not None:
        if importlib.util.find_spec("ray") is None:
            print("--ray needs Ray: pip install -c constraints.txt -e '.[ray]'", file=sys.stderr)
            return EXIT_REFUSED
        from server.backends.ray_backend import RayBackend, RayOptions

        options = RayOptions(address=ray_address, workers=ray_workers, compute=compute)
        backend = RayBackend(paths, options)
    app = create_app(Executor(paths=paths, compute=compute), settings, backend)
    try:
        return asyncio.run(_run(app, settings, paths))
    except KeyboardInterrupt:
        return EXIT_OK


async def _run(app: web.Application, settings: ServerSettings, paths: Paths) -> int:
    from server.app import make_runner

    runner = make_runner(app)
    await runner.setup()
    try:
        await web.TCPSite(runner, settings.host, settings.port).start()
    except OSError as exc:
        print(f"cannot listen on {settings.host}:{settings.port}: {exc.strerror}", file=sys.stderr)
        await runner.cleanup()
        return EXIT_FAILED
    for address in runner.addresses:
        host, port = address[0], address[1]
        shown = f"[{host}]" if ":" in host else host
        print(f"serving on http://{shown}:{port} (output: {paths.output})", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(signum, stop.set)
        except (NotImplementedError, RuntimeError):
            pass  # Windows: Ctrl-C arrives as KeyboardInterrupt instead
    try:
        await stop.wait()
    finally:
        log.info("shutting down")
        await runner.cleanup()
    return EXIT_OK
