"""The node registry: finds node classes in `nodes/` and in plugin packages, and exports the catalog."""

from __future__ import annotations

import importlib
import inspect
import logging
import os
import pkgutil
from collections.abc import Iterable, Iterator
from functools import lru_cache
from importlib.metadata import entry_points
from types import ModuleType
from typing import TYPE_CHECKING, Any

from engine.node import Node, NodeSpec
from engine.ports import BUILTIN_TYPES, port_by_name

if TYPE_CHECKING:
    from engine.config import Paths
    from engine.formats import DocumentFormat

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "latentgraph.nodes"
# Comma-separated module paths of extra node modules, for node packs that are not installed.
EXTRA_MODULES_ENV = "LATENTGRAPH_NODE_MODULES"
BUILTIN_PACKAGE = "nodes"
CATALOG_VERSION = 1


class Registry:
    """Node types by name; the one place the validator, executor, CLI and server look them up."""

    def __init__(self, classes: Iterable[type[Node]] = ()) -> None:
        self._classes: dict[str, type[Node]] = {}
        # Foreign graph formats the node modules can convert (see engine/formats.py).
        self.formats: list[DocumentFormat] = []
        for cls in classes:
            self.add(cls)

    def add(self, cls: type[Node]) -> None:
        """Register a node class declared with `@node`; a second class of the same type is an error."""
        spec = getattr(cls, "spec", None)
        if not isinstance(spec, NodeSpec):
            raise TypeError(f"{cls.__qualname__} is not declared with @node(...)")
        existing = self._classes.get(spec.type)
        if existing is not None and existing is not cls:
            raise ValueError(
                f"node type {spec.type!r} is declared twice: {existing.__module__} and {cls.__module__}"
            )
        self._classes[spec.type] = cls

    def add_module(self, module: ModuleType) -> int:
        """Register every node class defined in `module`; returns how many."""
        found = [
            obj
            for _, obj in inspect.getmembers(module, inspect.isclass)
            if issubclass(obj, Node)
            and obj.__module__ == module.__name__
            and "spec" in obj.__dict__
        ]
        for cls in found:
            self.add(cls)
        for fmt in getattr(module, "DOCUMENT_FORMATS", ()):
            if all(f.name != fmt.name for f in self.formats):
                self.formats.append(fmt)
        return len(found)

    def get(self, type_name: str) -> type[Node] | None:
        """The class for a node type, if registered."""
        return self._classes.get(type_name)

    def __contains__(self, type_name: object) -> bool:
        return type_name in self._classes

    def __iter__(self) -> Iterator[type[Node]]:
        return iter(self._classes.values())

    def __len__(self) -> int:
        return len(self._classes)

    def specs(self) -> list[NodeSpec]:
        """Every node spec, sorted by category then type."""
        return sorted((c.spec for c in self), key=lambda s: (s.category, s.type))

    def catalog(self, paths: Paths | None = None) -> dict[str, Any]:
        """The node catalog as JSON-ready data: port types and node specs, with current choices."""
        nodes = {}
        for spec in self.specs():
            data = spec.model_dump()
            for item, input_spec in zip(data["inputs"], spec.inputs, strict=True):
                if input_spec.dynamic_choices:
                    item["choices"] = input_spec.current_choices(paths)
            nodes[spec.type] = data
        type_names = {i.type for s in self.specs() for i in s.inputs} | {
            o.type for s in self.specs() for o in s.outputs
        }
        types = {}
        for t in (*BUILTIN_TYPES, *(port_by_name(n) for n in sorted(type_names))):
            if t is not None:
                types[t.name] = {
                    "description": t.description,
                    "primitive": t.primitive,
                    "color": t.color,
                    "widens_to": list(t.widens_to),
                }
        return {"version": CATALOG_VERSION, "types": types, "nodes": nodes}

    @classmethod
    def discover(cls, package: str = BUILTIN_PACKAGE, plugins: bool = True) -> Registry:
        """Node classes from each top-level module of `package`, plus plugins and `$LATENTGRAPH_NODE_MODULES`."""
        registry = cls()
        for module in _package_modules(package):
            registry.add_module(module)
        for name in filter(None, os.environ.get(EXTRA_MODULES_ENV, "").split(",")):
            registry.add_module(importlib.import_module(name.strip()))
        if plugins:
            for ep in entry_points(group=ENTRY_POINT_GROUP):
                try:
                    registry.add_module(ep.load())
                except Exception:
                    # One broken plugin must not take the built-in nodes down with it.
                    log.exception("node plugin %s (%s) failed to load", ep.name, ep.value)
        return registry


@lru_cache(maxsize=1)
def default_registry() -> Registry:
    """The built-in nodes and installed plugins, discovered once per process."""
    return Registry.discover()


def _package_modules(package: str) -> Iterator[ModuleType]:
    root = importlib.import_module(package)
    for info in sorted(pkgutil.iter_modules(root.__path__), key=lambda i: i.name):
        # Subpackages hold the library code behind the nodes, not nodes.
        if not info.ispkg and not info.name.startswith("_"):
            yield importlib.import_module(f"{package}.{info.name}")
