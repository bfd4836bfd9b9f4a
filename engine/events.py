"""The one typed event stream of a run, consumed by the CLI and the server alike."""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, TypeAdapter

from engine.errors import NodeFailure


class _Event(BaseModel):
    run_id: str
    time: float = Field(default_factory=time.time)


class RunStarted(_Event):
    """A run began; `nodes` is the plan, in execution order."""

    type: Literal["run_started"] = "run_started"
    nodes: list[str]


class NodesCached(_Event):
    """These planned nodes already have cached outputs and will not run."""

    type: Literal["nodes_cached"] = "nodes_cached"
    nodes: list[str]


class NodeStarted(_Event):
    """A node began running."""

    type: Literal["node_started"] = "node_started"
    node_id: str
    node_type: str


class Progress(_Event):
    """A long node's progress, such as a sampler step, with an optional small preview image."""

    type: Literal["progress"] = "progress"
    node_id: str
    value: int
    max: int
    # A PIL image, or a zero-argument callable making one, so that a consumer that shows no
    # previews (the CLI) never pays for them. Never part of the JSON form.
    preview: Any = Field(default=None, exclude=True)


class NodeFinished(_Event):
    """A node finished, or was served from the cache (`cached`); `ui` is what it shows a person."""

    type: Literal["node_finished"] = "node_finished"
    node_id: str
    node_type: str
    ui: dict[str, Any] | None = None
    cached: bool = False
    seconds: float = 0.0


class RunFinished(_Event):
    """The run completed; `outputs` holds each output node's UI result."""

    type: Literal["run_finished"] = "run_finished"
    outputs: dict[str, dict[str, Any] | None]
    executed: list[str]
    cached: list[str]
    seconds: float


class RunFailed(_Event):
    """A node raised; nodes that completed before it stay cached."""

    type: Literal["run_failed"] = "run_failed"
    error: NodeFailure
    executed: list[str]


class RunInterrupted(_Event):
    """The run was cancelled, between nodes or inside `node_id`."""

    type: Literal["run_interrupted"] = "run_interrupted"
    node_id: str | None
    executed: list[str]


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
TERMINAL_EVENTS = ("run_finished", "run_failed", "run_interrupted")
event_adapter: TypeAdapter[Event] = TypeAdapter(Event)
