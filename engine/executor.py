"""The executor: validate, plan, then run only the nodes whose lineage keys miss the cache."""

from __future__ import annotations

import logging
import threading
import time
import traceback
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

from engine.cache import CacheEntry, OutputCache
from engine.config import ComputeOptions, Paths
from engine.context import CancelToken, Interrupted, RunContext
from engine.errors import NodeFailure, NodeInputError, ResourceLimitError
from engine.events import (
    EventSink,
    NodeFinished,
    NodesCached,
    NodeStarted,
    RunFailed,
    RunFinished,
    RunInterrupted,
    RunStarted,
)
from engine.node import Node
from engine.outputs import OutputStore
from engine.plan import Plan, plan_run
from engine.registry import Registry, default_registry
from engine.resources import memory_problem
from engine.validate import BoundNode, ValidatedGraph

log = logging.getLogger(__name__)

RunStatus = Literal["finished", "failed", "interrupted"]


@dataclass
class RunResult:
    """How a run ended, what ran, and the outputs of its target nodes."""

    run_id: str
    status: RunStatus
    executed: list[str]
    cached: list[str]
    ui: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    values: dict[str, dict[str, Any]] = field(default_factory=dict)
    error: NodeFailure | None = None
    interrupted_at: str | None = None


class NodeOutputError(TypeError):
    """A node's `run` returned something other than its declared outputs."""


class Executor:
    """Runs graphs one at a time against one shared output cache."""

    def __init__(
        self,
        registry: Registry | None = None,
        *,
        cache: OutputCache | None = None,
        paths: Paths | None = None,
        release_intermediates: bool = False,
        compute: ComputeOptions | None = None,
    ) -> None:
        self.registry = registry if registry is not None else default_registry()
        self.cache = cache if cache is not None else OutputCache()
        self.paths = paths if paths is not None else Paths.resolve()
        # Drop an intermediate output from the cache as soon as the run no longer needs it.
        self.release_intermediates = release_intermediates
        self.compute = compute if compute is not None else ComputeOptions()
        self._lock = threading.Lock()

    def validate(self, document: Any) -> ValidatedGraph:
        """Validate a graph document (sweeps and subgraphs expanded); raises GraphValidationError."""
        from engine.compose import prepare_graph

        return prepare_graph(document, self.registry, self.paths).validated

    def run(
        self,
        document: Any,
        *,
        on_event: EventSink | None = None,
        cancel: CancelToken | None = None,
        run_id: str | None = None,
        outputs: OutputStore | None = None,
    ) -> RunResult:
        """Validate and run a graph; an invalid graph raises before any node runs.

        `outputs` receives the files nodes write; by default they go into `paths.output`.
        """
        graph = document if isinstance(document, ValidatedGraph) else self.validate(document)
        with self._lock:
            return _Run(self, graph, on_event, cancel or CancelToken(), run_id, outputs).execute()

    def plan(self, document: Any) -> Plan:
        """The plan (order and lineage keys) a run of this graph would follow now."""
        graph = document if isinstance(document, ValidatedGraph) else self.validate(document)
        return plan_run(graph, lambda bound: _safe_fingerprint(bound, self.paths))


class _Run:
    """The state of one run; it exists so that `Executor.run` reads as a short story."""

    def __init__(
        self,
        executor: Executor,
        graph: ValidatedGraph,
        on_event: EventSink | None,
        cancel: CancelToken,
        run_id: str | None,
        outputs: OutputStore | None = None,
    ) -> None:
        self.executor, self.cache, self.graph = executor, executor.cache, graph
        self.outputs = outputs
        self.emit: EventSink = on_event or (lambda _event: None)
        self.cancel = cancel
        self.run_id = run_id or uuid.uuid4().hex
        self.plan: Plan = plan_run(graph, lambda bound: _safe_fingerprint(bound, executor.paths))
        self.values: dict[str, dict[str, Any]] = {}  # this run's outputs, by key
        self.pinned: Counter[str] = Counter()
        self.executed: list[str] = []

    def execute(self) -> RunResult:
        started = time.perf_counter()
        keys, order = self.plan.keys, self.plan.order
        # Pin before asking what is cached: a concurrent `clear` (POST /free) skips pinned
        # entries, so an entry seen here is still there when the run reads it.
        cached = [n for n in order if self._pin_if_cached(keys[n])]
        to_run = self._nodes_to_run(set(cached))
        remaining = {n: sum(1 for c in self.plan.consumers[n] if c in to_run) for n in order}
        self.emit(RunStarted(run_id=self.run_id, nodes=order))
        self.emit(NodesCached(run_id=self.run_id, nodes=cached))
        for node_id in self.plan.targets:
            entry = self.cache.get(keys[node_id]) if node_id not in to_run else None
            if entry is not None and self.graph.nodes[node_id].cls.spec.output_node:
                self.emit(self._finished(node_id, entry.ui, cached=True))
        current: str | None = None
        try:
            for node_id in order:
                if node_id not in to_run:
                    continue
                current = node_id
                self.cancel.raise_if_cancelled()
                self._run_node(self.graph.nodes[node_id])
                # A node that ignored an interrupt (a model load) is the one it arrived in.
                self.cancel.raise_if_cancelled()
                self._release_inputs(self.graph.nodes[node_id], remaining)
            current = None
            result = self._result("finished", cached)
            self.emit(
                RunFinished(
                    run_id=self.run_id,
                    outputs=result.ui,
                    executed=self.executed,
                    cached=cached,
                    seconds=time.perf_counter() - started,
                )
            )
            return result
        except Interrupted:
            self.emit(RunInterrupted(run_id=self.run_id, node_id=current, executed=self.executed))
            return RunResult(
                self.run_id, "interrupted", self.executed, cached, interrupted_at=current
            )
        except Exception as exc:
            assert current is not None, "only nodes raise inside the run loop"
            failure = _failure(self.graph.nodes[current], exc)
            log.error(
                "node %s (%s) failed: %s",
                failure.node_id,
                failure.node_type,
                failure.message,
                extra={"node_failure": True},
            )
            self.emit(RunFailed(run_id=self.run_id, error=failure, executed=self.executed))
            return RunResult(self.run_id, "failed", self.executed, cached, error=failure)
        finally:
            for key, count in self.pinned.items():
                for _ in range(count):
                    self.cache.unpin(key)

    def _nodes_to_run(self, cached: set[str]) -> set[str]:
        """Walk back from the targets; a cached node's ancestors are not needed."""
        needed, to_run = set(self.plan.targets), set()
        for node_id in reversed(self.plan.order):
            if node_id in needed and node_id not in cached:
                to_run.add(node_id)
                needed.update(src for src, _ in self.graph.nodes[node_id].links.values())
        return to_run

    def _run_node(self, bound: BoundNode) -> None:
        key, spec = self.plan.keys[bound.id], bound.cls.spec
        if key not in self.values and (entry := self.cache.get(key)) is not None:
            # It ran earlier in this run and its first consumers already let go of it (the
            # second use of a subgraph, say): take it from the cache again.
            self._pin(key)
            self.values[key] = entry.outputs
        if key in self.values:  # a structurally identical node already ran in this run
            self.emit(self._finished(bound.id, None, cached=True))
            return
        self.emit(NodeStarted(run_id=self.run_id, node_id=bound.id, node_type=spec.type))
        started = time.perf_counter()
        for source_id in {src for src, _ in bound.links.values()}:
            # Models come to the compute device through the cache, which keeps count of them.
            self.cache.onload(self.plan.keys[source_id])
        instance = _instantiate(
            bound, {name: self._input(src, out) for name, (src, out) in bound.links.items()}
        )
        ctx = RunContext(
            run_id=self.run_id,
            node_id=bound.id,
            paths=self.executor.paths,
            cancel=self.cancel,
            emit=self.emit,
            graph=self.graph.node_documents.get(bound.id, self.graph.document),
            outputs=self.outputs,
            nodes=self.graph.nodes,
            compute=self.executor.compute,
        )
        need = instance.memory_estimate()
        if need is not None:
            problem = memory_problem(*need)
            if problem is not None:
                raise ResourceLimitError(problem)
        result = instance.run(ctx)
        if not isinstance(result, bound.cls.outputs_class):
            raise NodeOutputError(
                f"{spec.type}.run returned {type(result).__name__}, not {bound.cls.outputs_class.__name__}"
            )
        outputs = result.ports()
        self._pin(key)  # before put, so that storing it cannot evict it
        self.cache.put(key, CacheEntry(node_type=spec.type, outputs=outputs, ui=result.ui))
        self.values[key] = outputs
        self.executed.append(bound.id)
        self.emit(self._finished(bound.id, result.ui, seconds=time.perf_counter() - started))

    def _input(self, source_id: str, output: str) -> Any:
        key = self.plan.keys[source_id]
        outputs = self.values.get(key)
        if outputs is None:
            entry = self.cache.get(key)
            assert entry is not None, f"{source_id} is pinned, so it must still be cached"
            outputs = entry.outputs
        return outputs[output]

    def _release_inputs(self, bound: BoundNode, remaining: dict[str, int]) -> None:
        """Once no pending node reads an output, let the cache evict it (or drop it, if asked to)."""
        for source_id in {src for src, _ in bound.links.values()}:
            remaining[source_id] -= 1
            if remaining[source_id] > 0 or source_id in self.plan.targets:
                continue
            key = self.plan.keys[source_id]
            self.values.pop(key, None)
            if self.pinned[key] > 0:
                self.pinned[key] -= 1
                self.cache.unpin(key)
            if self.executor.release_intermediates:
                self.cache.drop(key)

    def _pin(self, key: str) -> None:
        self.cache.pin(key)
        self.pinned[key] += 1

    def _pin_if_cached(self, key: str) -> bool:
        if self.cache.pin_if_present(key):
            self.pinned[key] += 1
            return True
        return False

    def _finished(
        self, node_id: str, ui: dict[str, Any] | None, *, cached: bool = False, seconds: float = 0.0
    ) -> NodeFinished:
        return NodeFinished(
            run_id=self.run_id,
            node_id=node_id,
            node_type=self.graph.nodes[node_id].cls.spec.type,
            ui=ui,
            cached=cached,
            seconds=seconds,
        )

    def _result(self, status: RunStatus, cached: list[str]) -> RunResult:
        ui: dict[str, dict[str, Any] | None] = {}
        values: dict[str, dict[str, Any]] = {}
        for node_id in self.plan.targets:
            key = self.plan.keys[node_id]
            entry = self.cache.get(key)
            outputs = self.values.get(key) or (entry.outputs if entry else {})
            values[node_id] = outputs
            if self.graph.nodes[node_id].cls.spec.output_node:
                ui[node_id] = entry.ui if entry else None
        return RunResult(self.run_id, status, self.executed, cached, ui=ui, values=values)


def _instantiate(bound: BoundNode, linked: dict[str, Any]) -> Node:
    instance = bound.cls()
    instance.node_id = bound.id
    for name, value in {**bound.literals, **linked}.items():
        setattr(instance, name, value)
    return instance


def _safe_fingerprint(bound: BoundNode, paths: Paths) -> str:
    """A volatile node's fingerprint from its literals alone; if it raises, the node simply re-runs."""
    instance = _instantiate(bound, dict.fromkeys(bound.links))
    try:
        return str(instance.fingerprint(paths))
    except Exception:
        log.warning("fingerprint of %s failed; it will re-run", bound.id, exc_info=True)
        return uuid.uuid4().hex


def _failure(bound: BoundNode, exc: BaseException) -> NodeFailure:
    kind = type(exc)
    return NodeFailure(
        node_id=bound.id,
        node_type=bound.cls.spec.type,
        exception_type=kind.__qualname__
        if kind.__module__ == "builtins"
        else f"{kind.__module__}.{kind.__qualname__}",
        message=str(exc) or kind.__name__,
        traceback=traceback.format_exception(exc),
        input=exc.input if isinstance(exc, NodeInputError) else None,
    )
