"""The `latentgraph` command: run, validate, list nodes, print the graph schema, serve.

Only argparse is imported at module level, so `latentgraph --help` stays instant; each command
imports what it needs.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_RUN_FAILED, EXIT_INVALID = 0, 1, 2


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `latentgraph` console script."""
    args = _parser().parse_args(argv)
    if args.verbose:
        import logging

        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    handler = {
        "run": _run,
        "validate": _validate,
        "nodes": _nodes,
        "schema": _schema,
        "serve": _serve,
    }[args.command]
    return handler(args)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="latentgraph",
        description="Run Stable Diffusion node graphs from JSON files.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log what the engine does")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def with_paths(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--models",
            metavar="DIR",
            help="models folder (default: $LATENTGRAPH_MODELS or ./models)",
        )
        sub.add_argument("--input", metavar="DIR", help="input images folder (default: ./input)")

    run = commands.add_parser("run", help="run a graph and write its outputs")
    run.add_argument("graph", metavar="GRAPH.json")
    run.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="NODE.INPUT=VALUE",
        help="set an input; VALUE is read as JSON if it parses, else as text (repeatable)",
    )
    run.add_argument("--out", metavar="DIR", help="output folder (default: ./output)")
    run.add_argument(
        "--json", action="store_true", help="print one JSON event per line instead of progress bars"
    )
    with_paths(run)

    validate = commands.add_parser("validate", help="check a graph without running it")
    validate.add_argument("graph", metavar="GRAPH.json")
    validate.add_argument("--json", action="store_true", help="print the errors as JSON")
    with_paths(validate)

    nodes = commands.add_parser("nodes", help="list the available node types")
    nodes.add_argument("--json", action="store_true", help="print the full catalog as JSON")
    with_paths(nodes)

    commands.add_parser("schema", help="print the JSON Schema of graph files")

    serve = commands.add_parser("serve", help="serve the HTTP + websocket API")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8188)
    serve.add_argument(
        "--output", metavar="DIR", help="output folder, also holding the job database"
    )
    serve.add_argument("--token", help="require this bearer token; required off loopback")
    serve.add_argument(
        "--ray",
        metavar="ADDRESS",
        help="run jobs on Ray workers: 'auto' starts a local Ray on 127.0.0.1, else the "
        "address of a running cluster (needs the [ray] extra)",
    )
    serve.add_argument(
        "--ray-workers",
        type=int,
        metavar="N",
        help="number of Ray workers (default: one per GPU, else 1); CPU workers split the cores",
    )
    with_paths(serve)

    return parser


def _paths(args: argparse.Namespace) -> Any:
    from engine.config import Paths

    return Paths.resolve(
        models=getattr(args, "models", None),
        input=getattr(args, "input", None),
        output=getattr(args, "out", None) or getattr(args, "output", None),
    )


def _load(path: str, overrides: list[str]) -> dict[str, Any]:
    """The graph document with `--set` overrides applied; raises GraphValidationError."""
    from engine.errors import ErrorCode, GraphError, GraphValidationError
    from engine.graph import load_graph

    document = load_graph(path).model_dump(mode="json", exclude_none=True)
    errors = []
    for item in overrides:
        target, sep, raw = item.partition("=")
        node_id, dot, input_name = target.partition(".")
        if not sep or not dot or not node_id or not input_name:
            errors.append(
                GraphError(
                    code=ErrorCode.INVALID_GRAPH,
                    message=f"--set {item!r}: expected NODE.INPUT=VALUE",
                )
            )
            continue
        entry = document["nodes"].get(node_id)
        if entry is None:
            errors.append(
                GraphError(
                    code=ErrorCode.INVALID_GRAPH,
                    message=f"--set {item!r}: the graph has no node {node_id!r}",
                    node_id=node_id,
                )
            )
            continue
        entry.setdefault("inputs", {})[input_name] = _parse_value(raw)
        entry.get("links", {}).pop(input_name, None)
    if errors:
        raise GraphValidationError(errors)
    return document


def _parse_value(raw: str) -> Any:
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def _print_errors(errors: list[Any], as_json: bool) -> None:
    if as_json:
        print(
            json.dumps(
                {"type": "invalid_graph", "errors": [e.model_dump(mode="json") for e in errors]}
            )
        )
        return
    print(f"invalid graph: {len(errors)} error(s)", file=sys.stderr)
    for error in errors:
        print("  " + error.render(), file=sys.stderr)


def _validate(args: argparse.Namespace) -> int:
    from engine.errors import GraphValidationError
    from engine.registry import default_registry
    from engine.validate import validate_graph

    try:
        validate_graph(_load(args.graph, []), default_registry(), _paths(args))
    except GraphValidationError as exc:
        _print_errors(exc.errors, args.json)
        return EXIT_INVALID
    print(json.dumps({"type": "valid"}) if args.json else "ok")
    return EXIT_OK


def _run(args: argparse.Namespace) -> int:
    from engine.context import CancelToken
    from engine.errors import GraphValidationError
    from engine.executor import Executor

    paths = _paths(args)
    executor = Executor(paths=paths)
    try:
        graph = executor.validate(_load(args.graph, args.overrides))
    except GraphValidationError as exc:
        _print_errors(exc.errors, args.json)
        return EXIT_INVALID
    cancel = CancelToken()
    signal.signal(signal.SIGINT, lambda *_: cancel.cancel())
    if args.json:
        result = executor.run(
            graph, cancel=cancel, on_event=lambda e: print(e.model_dump_json(), flush=True)
        )
    else:
        from engine.progress import TerminalProgress

        with TerminalProgress() as progress:
            result = executor.run(graph, cancel=cancel, on_event=progress.on_event)
    if result.status == "interrupted":
        if not args.json:
            print(f"interrupted at {result.interrupted_at or 'a node boundary'}", file=sys.stderr)
        return EXIT_RUN_FAILED
    if result.status == "failed":
        if not args.json:
            assert result.error is not None
            e = result.error
            where = f"{e.node_id}.{e.input}" if e.input else e.node_id
            print(
                f"node {where} ({e.node_type}) failed: {e.exception_type}: {e.message}",
                file=sys.stderr,
            )
        return EXIT_RUN_FAILED
    if not args.json:
        for line in describe_outputs(result.ui, paths.output):
            print(line)
    return EXIT_OK


def describe_outputs(ui: dict[str, dict[str, Any] | None], output_dir: Path) -> list[str]:
    """One line per output: the path of each file written, or the value an output node shows."""
    lines = []
    for node_id, shown in ui.items():
        for kind, items in (shown or {}).items():
            for item in items:
                if isinstance(item, dict) and "filename" in item:
                    folder = output_dir / item.get("subfolder", "")
                    lines.append(f"{node_id}: wrote {folder / item['filename']}")
                else:
                    lines.append(f"{node_id}: {kind} = {item}")
    return lines


def _nodes(args: argparse.Namespace) -> int:
    from engine.registry import default_registry

    registry = default_registry()
    if args.json:
        print(json.dumps(registry.catalog(_paths(args)), indent=2))
        return EXIT_OK
    for spec in registry.specs():
        ins = ", ".join(f"{i.name}: {i.type}" for i in spec.inputs)
        outs = ", ".join(f"{o.name}: {o.type}" for o in spec.outputs) or "-"
        print(f"{spec.category:<16} {spec.type:<22} ({ins}) -> {outs}")
    return EXIT_OK


def _schema(args: argparse.Namespace) -> int:
    from engine.graph import graph_json_schema

    print(json.dumps(graph_json_schema(), indent=2))
    return EXIT_OK


def _serve(args: argparse.Namespace) -> int:
    from server.cli import serve

    return serve(args, _paths(args))


if __name__ == "__main__":
    raise SystemExit(main())
