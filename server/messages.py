"""What the job queue sends: typed job messages, made from engine events, logged as `JobEvent`s.

Each job message is encoded once as JSON text, with an optional binary preview frame, and a
`Codec` (server/codec.py) turns the `JobEvent` into the frames a connection sends. The messages
of the websocket conversation itself (hello, subscribe, ping) are in server/connection_messages.py.
"""

from __future__ import annotations

import json
import struct
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, Field, TypeAdapter
from typing_extensions import assert_never

from engine.errors import NodeFailure
from engine.events import (
    Event,
    NodeFinishedFields,
    NodesCachedFields,
    NodeStartedFields,
    ProgressFields,
    RunFailed,
    RunFailedFields,
    RunFinished,
    RunFinishedFields,
    RunInterrupted,
    RunInterruptedFields,
    RunStarted,
    RunStartedFields,
)
from engine.events import NodeFinished as EngineNodeFinished
from engine.events import NodesCached as EngineNodesCached
from engine.events import NodeStarted as EngineNodeStarted
from engine.events import Progress as EngineProgress
from server.files import with_view_urls
from server.schemas import InterruptReason, JobError, UiOutput

if TYPE_CHECKING:
    from server.codec import Codec

FRAME_PREVIEW = 1
PREVIEW_PREFIX = struct.Struct(">II")  # frame type, then the JSON header's length in bytes
TERMINAL_TYPES = frozenset({"job_finished", "job_failed", "job_interrupted", "job_cancelled"})
Frame = str | bytes
D = TypeVar("D", bound=BaseModel)


# --- Job messages: each carries the job id, its per-job sequence number and creation time. ---


class JobData(BaseModel):
    """Fields every job message has."""

    job_id: str
    seq: int = Field(description="Per-job sequence number: 1, 2, 3, ... with no gaps.")
    time: float = Field(description="Unix time the event was created.")


class JobQueuedData(JobData):
    position: int = Field(description="Pending jobs ahead of this one when it was queued.")


# The payloads of messages that report an engine event are that event's own fields (a base
# class listed first puts its fields after the job fields, as the protocol documents them).


class JobStartedData(RunStartedFields, JobData):
    pass


class NodesCachedData(NodesCachedFields, JobData):
    pass


class NodeStartedData(NodeStartedFields, JobData):
    pass


class ProgressData(ProgressFields, JobData):
    preview: bool = Field(description="A binary preview frame with the same seq follows.")


class NodeFinishedData(NodeFinishedFields, JobData):
    # Always present on the wire, where the engine event has defaults; `output` replaces `ui`.
    cached: bool
    seconds: float
    output: UiOutput | None = Field(description="What the node shows; files carry a `url`.")


class JobFinishedData(RunFinishedFields[UiOutput], JobData):
    pass


class JobFailedData(RunFailedFields[JobError], JobData):
    pass


class JobInterruptedData(RunInterruptedFields, JobData):
    reason: InterruptReason


class JobCancelledData(JobData):
    pass


class JobQueued(BaseModel):
    """The job was accepted and waits in the queue (always seq 1)."""

    type: Literal["job_queued"] = "job_queued"
    data: JobQueuedData


class JobStarted(BaseModel):
    """The worker began the job."""

    type: Literal["job_started"] = "job_started"
    data: JobStartedData


class NodesCached(BaseModel):
    """These nodes have cached outputs and will not run."""

    type: Literal["nodes_cached"] = "nodes_cached"
    data: NodesCachedData


class NodeStarted(BaseModel):
    """A node began running."""

    type: Literal["node_started"] = "node_started"
    data: NodeStartedData


class Progress(BaseModel):
    """A step of a long node."""

    type: Literal["progress"] = "progress"
    data: ProgressData


class NodeFinished(BaseModel):
    """A node finished or came from the cache, with its UI output (images with view URLs)."""

    type: Literal["node_finished"] = "node_finished"
    data: NodeFinishedData


class JobFinished(BaseModel):
    """Terminal: the job completed."""

    type: Literal["job_finished"] = "job_finished"
    data: JobFinishedData


class JobFailed(BaseModel):
    """Terminal: a node raised, the graph no longer validated, or the server stopped mid-job."""

    type: Literal["job_failed"] = "job_failed"
    data: JobFailedData


class JobInterrupted(BaseModel):
    """Terminal: the running job was interrupted on request or by a server shutdown."""

    type: Literal["job_interrupted"] = "job_interrupted"
    data: JobInterruptedData


class JobCancelled(BaseModel):
    """Terminal: the job was cancelled before it started."""

    type: Literal["job_cancelled"] = "job_cancelled"
    data: JobCancelledData


JobMessage = Annotated[
    JobQueued
    | JobStarted
    | NodesCached
    | NodeStarted
    | Progress
    | NodeFinished
    | JobFinished
    | JobFailed
    | JobInterrupted
    | JobCancelled,
    Field(discriminator="type"),
]
job_message_adapter: TypeAdapter[JobMessage] = TypeAdapter(JobMessage)


# --- Queue counts: sent to every connection, so they carry no job id. ---


class QueueStatusData(BaseModel):
    pending: int
    running: int


class QueueStatus(BaseModel):
    """Queue counts; sent on connect and whenever the queue changes, to every connection."""

    type: Literal["queue"] = "queue"
    data: QueueStatusData


# --- Encoding. ---


@dataclass
class JobEvent:
    """One entry of a job's log, ready to fan out: the encoded message and an optional preview."""

    job_id: str
    seq: int
    type: str
    text: str
    client_id: str | None
    preview: bytes | None = None  # a complete binary preview frame
    _frames: dict[str, list[Frame]] = field(default_factory=dict, repr=False)

    @property
    def terminal(self) -> bool:
        """Whether this is the job's last event."""
        return self.type in TERMINAL_TYPES

    def frames(self, codec: Codec) -> list[Frame]:
        """The frames `codec` sends for this event, encoded once however many clients get them."""
        frames = self._frames.get(codec.name)
        if frames is None:
            frames = self._frames[codec.name] = codec.job_frames(self)
        return frames


def encode(message: BaseModel) -> str:
    """A message as compact JSON text."""
    return message.model_dump_json()


def job_event(message: JobMessage, client_id: str | None, preview: bytes | None = None) -> JobEvent:
    """Wrap a job message (JobQueued, ...) as a loggable event."""
    return JobEvent(
        job_id=message.data.job_id,
        seq=message.data.seq,
        type=message.type,
        text=encode(message),
        client_id=client_id,
        preview=preview,
    )


def preview_frame(job_id: str, node_id: str, seq: int, mime: str, image: bytes) -> bytes:
    """A binary preview frame: type 1 (u32 BE), header length (u32 BE), JSON header, image bytes."""
    header = json.dumps(
        {"job_id": job_id, "node_id": node_id, "seq": seq, "mime": mime}, separators=(",", ":")
    ).encode()
    return PREVIEW_PREFIX.pack(FRAME_PREVIEW, len(header)) + header + image


def parse_preview_frame(frame: bytes) -> tuple[dict[str, Any], bytes]:
    """The JSON header and image bytes of a binary preview frame; raises ValueError if malformed."""
    if len(frame) < PREVIEW_PREFIX.size:
        raise ValueError("frame too short")
    kind, length = PREVIEW_PREFIX.unpack_from(frame)
    if kind != FRAME_PREVIEW or len(frame) < PREVIEW_PREFIX.size + length:
        raise ValueError(f"not a preview frame (type {kind})")
    start = PREVIEW_PREFIX.size
    return json.loads(frame[start : start + length]), frame[start + length :]


def message_for_engine_event(
    job_id: str, seq: int, event: Event, reason: InterruptReason, preview: bool
) -> JobMessage:
    """The job message for one executor event; `reason` is used if it is an interruption."""
    job = JobData(job_id=job_id, seq=seq, time=event.time)
    match event:
        case RunStarted():
            return JobStarted(data=_payload(JobStartedData, job, event))
        case EngineNodesCached():
            return NodesCached(data=_payload(NodesCachedData, job, event))
        case EngineNodeStarted():
            return NodeStarted(data=_payload(NodeStartedData, job, event))
        case EngineProgress():
            return Progress(data=_payload(ProgressData, job, event, preview=preview))
        case EngineNodeFinished():
            output = with_view_urls(event.ui)
            return NodeFinished(data=_payload(NodeFinishedData, job, event, output=output))
        case RunFinished():
            outputs = {k: with_view_urls(v) for k, v in event.outputs.items()}
            return JobFinished(data=_payload(JobFinishedData, job, event, outputs=outputs))
        case RunFailed():
            error = node_failure_error(event.error)
            return JobFailed(data=_payload(JobFailedData, job, event, error=error))
        case RunInterrupted():
            return JobInterrupted(data=_payload(JobInterruptedData, job, event, reason=reason))
    assert_never(event)


def _payload(kind: type[D], job: JobData, event: BaseModel, **replaced: Any) -> D:
    """A `kind` payload: the job's fields, the fields it shares with `event`, then `replaced`."""
    names = (kind.model_fields.keys() & type(event).model_fields.keys()) - replaced.keys()
    shared = {name: getattr(event, name) for name in names - {"time"}}
    return kind(**shared, **dict(job), **replaced)


def node_failure_error(failure: NodeFailure) -> JobError:
    """A JobError for the engine's NodeFailure."""
    return JobError(
        code="node_failed",
        message=failure.message,
        node_id=failure.node_id,
        node_type=failure.node_type,
        exception_type=failure.exception_type,
        input=failure.input,
        traceback=failure.traceback,
    )


def job_failed(job_id: str, seq: int, error: JobError, executed: list[str]) -> JobFailed:
    """A job_failed message for a failure outside any node (invalid graph, lost server)."""
    return JobFailed(
        data=JobFailedData(job_id=job_id, seq=seq, time=time.time(), error=error, executed=executed)
    )
