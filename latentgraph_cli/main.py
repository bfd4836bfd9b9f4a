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

from nodes.sd.offline import stay_offline

EXIT_OK, EXIT_RUN_FAILED, EXIT_INVALID = 0, 1, 2


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `latentgraph` console script."""
    # Until `run` installs its own handlers, SIGTERM stops the command as Ctrl-C does.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    stay_offline()  # before any command imports diffusers or transformers
    args: argparse.Namespace | None = None
    try:
        args = _parser().parse_args(argv)
        _configure_logging(args.verbose, args.command == "serve")
        handler = {
            "run": _run,
            "validate": _validate,
            "nodes": _nodes,
            "schema": _schema,
            "serve": _serve,
            "import": _import,
        }[args.command]
        return handler(args)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return EXIT_RUN_FAILED
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_RUN_FAILED
    except _ConfigProblem as exc:
        if getattr(args, "json", False):
            print(json.dumps({"type": "invalid_config", "message": str(exc)}))
        else:
            print(f"config error: {exc}", file=sys.stderr)
        return EXIT_INVALID


class _ConfigProblem(Exception):
    """A folder setting (flag, environment or config file) that cannot be used."""


def _configure_logging(verbose: bool, serving: bool) -> None:
    import logging

    if verbose:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
        return
    if serving:
        return  # the server sets up its own log
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    # The command prints a failed node itself; the executor's log line would repeat it.
    logging.getLogger("engine.executor").addFilter(
        lambda record: not getattr(record, "node_failure", False)
    )


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that the interpreter's final flush cannot fail again."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="latentgraph",
        description="Run Stable Diffusion node graphs from JSON files.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log what the engine does")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def with_compile(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--compile",
            action="store_true",
            help="run UNet and ControlNet forwards through torch.compile: the first run of each "
            "model and size compiles (minutes on a CPU), later ones reuse it; if compiling "
            "fails, a warning is logged and the model runs as usual",
        )

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
    run.add_argument(
        "--sweep",
        action="append",
        default=[],
        metavar="NODE.INPUT=V1,V2,...",
        help="run once per value (JSON or text; @FILE reads one per line); repeatable: every combination",
    )
    run.add_argument("--zip", action="store_true", help="pair the --sweep values instead")
    run.add_argument("--out", metavar="DIR", help="output folder (default: ./output)")
    run.add_argument(
        "--json", action="store_true", help="print one JSON event per line instead of progress bars"
    )
    with_compile(run)
    with_paths(run)

    validate = commands.add_parser("validate", help="check a graph without running it")
    validate.add_argument("graph", metavar="GRAPH.json")
    validate.add_argument("--json", action="store_true", help="print the errors as JSON")
    with_paths(validate)

    imports = commands.add_parser(
        "import", help="convert a ComfyUI workflow (API, editor or PNG) into a graph file"
    )
    imports.add_argument("workflow", metavar="WORKFLOW")
    imports.add_argument("-o", "--output", required=True, metavar="GRAPH.json")

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
    with_compile(serve)
    with_paths(serve)

    return parser


def _paths(args: argparse.Namespace) -> Any:
    from engine.config import ConfigError, Paths
    from engine.limits import limits

    try:
        limits()  # a malformed limit variable is reported now, not in the middle of a run
        paths = Paths.resolve(
            models=getattr(args, "models", None),
            input=getattr(args, "input", None),
            output=getattr(args, "out", None) or getattr(args, "output", None),
        )
    except (ConfigError, ValueError, OSError) as exc:
        raise _ConfigProblem(str(exc)) from None
    if paths.output.exists() and not paths.output.is_dir():
        raise _ConfigProblem(f"the output folder {paths.output} is a file, not a folder")
    return paths


def _load(path: str, overrides: list[str]) -> tuple[Any, list[Any], Any]:
    """The graph document with `--set` overrides applied, the overrides' errors, and the conversion.

    Any registered document format is accepted (ComfyUI workflows and PNGs, say). A bad `--set`
    is reported together with the graph's own errors, never instead of them.
    """
    from engine.documents import DocumentError, NotJson, parse_json
    from engine.errors import ErrorCode, GraphError
    from engine.formats import convert_document, read_document
    from engine.registry import default_registry

    registry = default_registry()
    converted = convert_document(read_document(path, registry), registry)
    document = converted.document
    nodes = document.get("nodes") if isinstance(document, dict) else None
    errors = []

    def error(message: str, node_id: str | None = None, input_name: str | None = None) -> None:
        errors.append(
            GraphError(
                code=ErrorCode.INVALID_GRAPH, message=message, node_id=node_id, input=input_name
            )
        )

    for item in overrides:
        target, sep, raw = item.partition("=")
        node_id, dot, input_name = target.partition(".")
        shown = item if len(item) <= 80 else item[:77] + "..."
        if not sep or not dot or not node_id or not input_name:
            error(f"--set {shown!r}: expected NODE.INPUT=VALUE")
            continue
        entry = nodes.get(node_id) if isinstance(nodes, dict) else None
        if not isinstance(entry, dict):
            error(f"--set {shown!r}: the graph has no node {node_id!r}", node_id)
            continue
        try:
            value: Any = parse_json(raw, f"--set {node_id}.{input_name}")
        except NotJson:
            value = raw  # not JSON at all: the value is the text itself
        except DocumentError as exc:
            error(str(exc), node_id, input_name)
            continue
        inputs = entry.setdefault("inputs", {})
        if isinstance(inputs, dict):
            inputs[input_name] = value
        links = entry.get("links")
        if isinstance(links, dict):
            links.pop(input_name, None)
    return document, errors, converted


def _with_sweep(document: dict[str, Any], sweeps: list[str], zipped: bool) -> dict[str, Any]:
    """The document with `--sweep NODE.INPUT=VALUES` added to its sweep; raises GraphValidationError."""
    from engine.errors import ErrorCode, GraphError, GraphValidationError
    from engine.sweep import parse_values

    values = dict(document.get("sweep", {}).get("values", {}))
    for item in sweeps:
        target, sep, raw = item.partition("=")
        try:
            parsed = parse_values(raw) if sep else []
        except OSError as exc:
            parsed, sep = [], ""
            item = f"{item} ({exc.strerror})"
        if not sep or "." not in target or not parsed:
            message = f"--sweep {item!r}: expected NODE.INPUT=V1,V2,... or NODE.INPUT=@FILE"
            raise GraphValidationError([GraphError(code=ErrorCode.INVALID_GRAPH, message=message)])
        values[target] = parsed
    if values:
        mode = "zip" if zipped else document.get("sweep", {}).get("mode", "product")
        document["sweep"] = {"values": values, "mode": mode}
    return document


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
    from engine.compose import prepare_graph
    from engine.errors import GraphValidationError
    from engine.registry import default_registry

    paths = _paths(args)
    try:
        document, _, converted = _load(args.graph, [])
        try:
            prepare_graph(document, default_registry(), paths, [Path(args.graph).parent])
        except GraphValidationError as exc:
            raise converted.blamed(exc) from None
    except GraphValidationError as exc:
        _print_errors(exc.errors, args.json)
        return EXIT_INVALID
    print(json.dumps({"type": "valid"}) if args.json else "ok")
    return EXIT_OK


def _run(args: argparse.Namespace) -> int:
    from engine.compose import prepare_graph
    from engine.config import ComputeOptions
    from engine.errors import GraphValidationError
    from engine.executor import Executor
    from engine.interrupts import RunInThread

    paths = _paths(args)
    executor = Executor(paths=paths, compute=ComputeOptions(compile=args.compile))
    try:
        document, set_errors, converted = _load(args.graph, args.overrides)
        try:
            document = _with_sweep(document, args.sweep, args.zip)
            graph = prepare_graph(
                document, executor.registry, paths, [Path(args.graph).parent]
            ).validated
        except GraphValidationError as exc:
            raise GraphValidationError([*set_errors, *converted.blamed(exc).errors]) from None
        if set_errors:
            raise GraphValidationError(set_errors)
    except GraphValidationError as exc:
        _print_errors(exc.errors, args.json)
        return EXIT_INVALID
    runner = RunInThread()
    if args.json:
        sink = _JsonLines(runner)
        result = runner.run(lambda cancel: executor.run(graph, cancel=cancel, on_event=sink))
        if sink.closed:
            _silence_stdout()
            return EXIT_RUN_FAILED
    else:
        from engine.progress import TerminalProgress

        with TerminalProgress() as progress:
            runner.on_stop = progress.close
            result = runner.run(
                lambda cancel: executor.run(
                    graph, cancel=cancel, on_event=runner.watching(progress.on_event)
                )
            )
    if result.status == "interrupted":
        if not args.json:
            print(f"interrupted {runner.where(result.interrupted_at)}", file=sys.stderr)
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


class _JsonLines:
    """Prints each event as one JSON line; a closed stdout stops the run instead of failing a node."""

    def __init__(self, runner: Any) -> None:
        self.closed = False
        self._runner = runner
        self._watch = runner.watching(lambda _event: None)

    def __call__(self, event: Any) -> None:
        self._watch(event)
        if self.closed:
            return
        try:
            print(event.model_dump_json(), flush=True)
        except (BrokenPipeError, ValueError):  # ValueError: stdout itself was closed
            self.closed = True
            self._runner.cancel.cancel()


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


def _import(args: argparse.Namespace) -> int:
    """Convert a workflow into our graph file format; its types and links are checked first."""
    from engine.errors import GraphValidationError
    from engine.registry import default_registry
    from engine.validate import validate_graph

    try:
        document, _, converted = _load(args.workflow, [])
        try:
            validate_graph(document, default_registry())
        except GraphValidationError as exc:
            raise converted.blamed(exc) from None
    except GraphValidationError as exc:
        _print_errors(exc.errors, as_json=False)
        return EXIT_INVALID
    Path(args.output).write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.output} ({converted.format}, {len(document['nodes'])} nodes)")
    return EXIT_OK


def _nodes(args: argparse.Namespace) -> int:
    from engine.registry import default_registry
    from engine.subgraph import list_subgraphs

    registry = default_registry()
    subgraphs = list_subgraphs(registry)
    if args.json:
        print(json.dumps({**registry.catalog(_paths(args)), "subgraphs": subgraphs}, indent=2))
        return EXIT_OK
    specs = [(s.category, s.type, s.inputs, s.outputs) for s in registry.specs()]
    for name, entry in subgraphs.items():  # used as {"type": "Subgraph", "subgraph": NAME}
        specs.append(("subgraphs", name, entry["inputs"], entry["outputs"]))
    for category, type_name, inputs, outputs in specs:
        ins = ", ".join(f"{_field(i, 'name')}: {_field(i, 'type')}" for i in inputs)
        outs = ", ".join(f"{_field(o, 'name')}: {_field(o, 'type')}" for o in outputs) or "-"
        print(f"{category:<16} {type_name:<22} ({ins}) -> {outs}")
    return EXIT_OK


def _field(item: Any, name: str) -> Any:
    return item[name] if isinstance(item, dict) else getattr(item, name)


def _schema(args: argparse.Namespace) -> int:
    from engine.graph import graph_json_schema

    print(json.dumps(graph_json_schema(), indent=2))
    return EXIT_OK


def _serve(args: argparse.Namespace) -> int:
    from server.cli import serve

    return serve(args, _paths(args))
