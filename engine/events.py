"""The one typed event stream of a run, consumed by the CLI and the server alike.

Each event is an envelope (`run_id`, `time`, `type`) around its fields. The fields live in their
own `*Fields` models so that the server's job messages reuse them as their payloads, with a job
id and sequence number in place of the run id; the generic ones let the server show outputs and
errors in its own types.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, Field, TypeAdapter

from engine.errors import NodeFailure

OutputT = TypeVar("OutputT")
ErrorT = TypeVar("ErrorT")


class _Event(BaseModel):
    run_id: str
    time: float = Field(default_factory=time.time)
    type: str  # each event narrows it to a literal; declared here so that it comes before fields


class RunStartedFields(BaseModel):
    nodes: list[str] = Field(description="The planned nodes, in execution order.")


class NodesCachedFields(BaseModel):
    nodes: list[str] = Field(description="Planned nodes served from the cache; they do not run.")


class NodeStartedFields(BaseModel):
    node_id: str
    node_type: str


class ProgressFields(BaseModel):
    node_id: str
    value: int
    max: int


class NodeFinishedFields(BaseModel):
    node_id: str
    node_type: str


class RunFinishedFields(BaseModel, Generic[OutputT]):
    outputs: dict[str, OutputT | None]
    executed: list[str]
    cached: list[str]
    seconds: float


class RunFailedFields(BaseModel, Generic[ErrorT]):
    error: ErrorT
    executed: list[str]


class RunInterruptedFields(BaseModel):
    node_id: str | None
    executed: list[str]


class RunStarted(RunStartedFields, _Event):
    """A run began; `nodes` is the plan, in execution order."""

    type: Literal["run_started"] = "run_started"


class NodesCached(NodesCachedFields, _Event):
    """These planned nodes already have cached outputs and will not run."""

    type: Literal["nodes_cached"] = "nodes_cached"


class NodeStarted(NodeStartedFields, _Event):
    """A node began running."""

    type: Literal["node_started"] = "node_started"


class Progress(ProgressFields, _Event):
    """A long node's progress, such as a sampler step, with an optional small preview image."""

    type: Literal["progress"] = "progress"
    # A PIL image, or a zero-argument callable making one, so that a consumer that shows no
    # previews (the CLI) never pays for them. Never part of the JSON form.
    preview: Any = Field(default=None, exclude=True)


class NodeFinished(NodeFinishedFields, _Event):
    """A node finished, or was served from the cache (`cached`); `ui` is what it shows a person."""

    type: Literal["node_finished"] = "node_finished"
    ui: dict[str, Any] | None = None
    cached: bool = False
    seconds: float = 0.0


class RunFinished(RunFinishedFields[dict[str, Any]], _Event):
    """The run completed; `outputs` holds each output node's UI result."""

    type: Literal["run_finished"] = "run_finished"


class RunFailed(RunFailedFields[NodeFailure], _Event):
    """A node raised; nodes that completed before it stay cached."""

    type: Literal["run_failed"] = "run_failed"


class RunInterrupted(RunInterruptedFields, _Event):
    """The run was cancelled, between nodes or inside `node_id`."""

    type: Literal["run_interrupted"] = "run_interrupted"


Event = Annotated[
    RunStarted
    | NodesCached
    | NodeStarted
    | Progress
    | NodeFinished
    | RunFinished
    | RunFailed
    | RunInterrupted,
    Field(discriminator="type"),
]
TerminalEvent = RunFinished | RunFailed | RunInterrupted
event_adapter: TypeAdapter[Event] = TypeAdapter(Event)
EventSink = Callable[[Event], None]
"""Where a run's events go, in order (the CLI's printer, the server's recorder)."""
