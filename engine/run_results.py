"""What a Python run gives back: output values as Python objects, saved files, and sweep combinations."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.compose import PreparedGraph, prepare_graph
from engine.events import EventSink
from engine.executor import Executor, RunResult

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

    from engine.builder import Graph, NodeHandle, Port
    from engine.context import CancelToken


class RunError(RuntimeError):
    """A run that did not finish: a node failed (`result.error`) or it was interrupted."""

    def __init__(self, result: RunResult) -> None:
        self.result = result
        if result.error is not None:
            e = result.error
            where = f"{e.node_id}.{e.input}" if e.input else e.node_id
            message = f"node {where} ({e.node_type}) failed: {e.exception_type}: {e.message}"
        else:
            message = f"the run was interrupted at {result.interrupted_at or 'a node boundary'}"
        super().__init__(message)


@dataclass(frozen=True)
class View:
    """The outputs of one run, or of one combination of a sweep, read by the original node ids."""

    result: RunResult
    prepared: PreparedGraph
    output_dir: Path
    ids: dict[str, str]  # original node id → its id in the run
    values_of_sweep: dict[str, Any]

    @property
    def sweep_values(self) -> dict[str, Any]:
        """The swept inputs' values here ({} outside a sweep), as {"node.input": value}."""
        return dict(self.values_of_sweep)

    def value(self, port: Port[Any]) -> Any:
        """The Python value of an output (a Latent, an Image, a model, ...); fetch its node first."""
        node_id, output = self.prepared.source(self.ids.get(port.node_id, port.node_id), port.name)
        outputs = self.result.values.get(node_id)
        if outputs is None:
            raise KeyError(f"{port.link} was not computed: pass its node to run(fetch=[...])")
        return outputs[output]

    def images(self, port: Port[Any]) -> list[PILImage]:
        """An IMAGE output as PIL images, one per batch item."""
        from PIL import Image

        pixels = self.value(port).pixels.detach().float().cpu().clamp(0, 1)
        array = (pixels * 255).round().to(dtype=_uint8()).numpy()
        return [Image.fromarray(item) for item in array]

    def files(self, node: NodeHandle | None = None) -> list[Path]:
        """The files output nodes wrote (all of them, or those of `node`)."""
        if node is not None:
            wanted: set[str] | None = {self.ids.get(node.id, node.id)}
        else:  # a sweep combination sees its own copies and the nodes all combinations share
            wanted = set(self.ids.values()) if self.ids else None
        found = []
        for node_id, shown in self.result.ui.items():
            if wanted is not None and node_id.split("/")[0] not in wanted:
                continue
            for items in (shown or {}).values():
                for item in items:
                    if isinstance(item, dict) and "filename" in item:
                        found.append(self.output_dir / item.get("subfolder", "") / item["filename"])
        return found


class Results(View):
    """A finished run: `value`, `images` and `files` of the whole run, and each sweep combination."""

    @property
    def combinations(self) -> list[View]:
        """One view per sweep combination, in order (empty without a sweep)."""
        sweep = self.prepared.sweep
        if sweep is None:
            return []
        return [
            View(self.result, self.prepared, self.output_dir, c.nodes, c.values)
            for c in sweep.combinations
        ]

    @property
    def status(self) -> str:
        """finished, failed or interrupted."""
        return self.result.status


def run_graph(
    graph: Graph,
    executor: Executor,
    fetch: Iterable[NodeHandle | Port[Any]],
    *,
    on_event: EventSink | None,
    cancel: CancelToken | None,
    check: bool,
) -> Results:
    """Prepare and run a built graph on `executor`; see `Graph.run`."""
    document = graph.document_for_run(list(fetch))
    prepared = prepare_graph(document, executor.registry, executor.paths)
    result = executor.run(prepared.validated, on_event=on_event, cancel=cancel)
    if check and result.status != "finished":
        raise RunError(result)
    return Results(result, prepared, executor.paths.output, {}, {})


def _uint8() -> Any:
    import torch

    return torch.uint8
