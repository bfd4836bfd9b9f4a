"""Generation parameters: the settings each node declares for the images saved downstream of it.

A node that matters to how an image came about (a sampler, a prompt, a model loader) mixes in
`DescribesGeneration` and says, by label, what it adds; `generation_parameters` gathers those of
every node upstream of a saved image, nearest first, from the validated graph (so defaults that
the file leaves out are there too). The labels are those of A1111-style metadata ("Steps",
"CFG scale"); `nodes.sd.infotext` writes them.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any

from nodes.sd.infotext import NEGATIVE_PROMPT, PROMPT

if TYPE_CHECKING:
    from engine.validate import BoundNode

__all__ = [
    "NEGATIVE_PROMPT",
    "PROMPT",
    "DescribesGeneration",
    "Upstream",
    "file_label",
    "generation_parameters",
    "next_numbered",
]


class Upstream:
    """What a node can see of its inputs before anything runs: values and gathered settings."""

    def __init__(self, nodes: Mapping[str, BoundNode], node_id: str, gathered: _Gatherer) -> None:
        self._nodes, self._bound, self._gathered = nodes, nodes[node_id], gathered

    def value(self, name: str) -> Any:
        """The input's literal, or that of the primitive it is linked to (None if unknown)."""
        if name in self._bound.literals:
            return self._bound.literals[name]
        link = self._bound.links.get(name)
        if link is None:
            return None
        source = self._nodes[link[0]]
        if source.cls.spec.category != "primitives":
            return None  # computed while running: not known here
        return source.literals.get(link[1])  # a primitive's output is named as its input

    def parameters(self, name: str) -> dict[str, Any]:
        """The settings gathered upstream of a linked input (empty for a literal)."""
        link = self._bound.links.get(name)
        return {} if link is None else self._gathered(*link)


class DescribesGeneration:
    """Mixed into a node class whose inputs belong in a saved image's generation parameters."""

    @classmethod
    def generation_parameters(cls, inputs: Upstream) -> dict[str, Any]:
        """Settings by label; they override those gathered upstream, and None removes one."""
        return {}

    @classmethod
    def generation_inputs(cls, output: str) -> tuple[str, ...] | None:
        """The inputs whose settings reach `output`; None for all of them (the default)."""
        return None


class _Gatherer:
    """The settings that reach each node output, gathered once per output."""

    def __init__(self, nodes: Mapping[str, BoundNode]) -> None:
        self._nodes = nodes
        self._done: dict[tuple[str, str | None], dict[str, Any]] = {}

    def __call__(self, node_id: str, output: str | None = None) -> dict[str, Any]:
        found = self._done.get((node_id, output))
        if found is None:
            found = self._done[(node_id, output)] = self._gather(node_id, output)
        return found

    def _gather(self, node_id: str, output: str | None) -> dict[str, Any]:
        bound = self._nodes[node_id]
        cls = bound.cls
        describer = cls if issubclass(cls, DescribesGeneration) else None
        sources = describer.generation_inputs(output) if describer is not None and output else None
        gathered: dict[str, Any] = {}
        for name, (source, source_output) in bound.links.items():  # in input order
            if sources is None or name in sources:
                for label, value in self(source, source_output).items():
                    gathered.setdefault(label, value)
        if describer is not None:
            gathered.update(describer.generation_parameters(Upstream(self._nodes, node_id, self)))
        return gathered


def generation_parameters(nodes: Mapping[str, BoundNode], node_id: str) -> dict[str, Any]:
    """The settings of every node upstream of `node_id` (a SaveImage, say), by label."""
    gathered = _Gatherer(nodes)(node_id)
    return {label: value for label, value in gathered.items() if value is not None}


def file_label(name: str | None) -> str | None:
    """A model file as the metadata names it: its file name without folders or suffix."""
    return None if name is None else PurePosixPath(name).stem


def next_numbered(gathered: Mapping[str, Any], label: str) -> str:
    """`label N` for the first N not yet in `gathered` ("ControlNet 0", "ControlNet 1", ...)."""
    taken = {key for key in gathered if key.startswith(f"{label} ")}
    return next(f"{label} {n}" for n in range(len(taken) + 1) if f"{label} {n}" not in taken)
