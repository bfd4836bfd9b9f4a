"""The websocket conversation's own messages: hello, answers to subscribe, unsubscribe and ping,
errors, and what clients send. Job messages and queue counts are in server/messages.py.

None of these are part of a job's log, so they carry no sequence number.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from server.messages import JobMessage, QueueStatus
from server.schemas import JOB_ID_PATTERN, MAX_SQL_INT, JobStatus

PROTOCOL_VERSION = 1


class HelloData(BaseModel):
    client_id: str | None
    protocol: int = PROTOCOL_VERSION


class Hello(BaseModel):
    """First message on every connection."""

    type: Literal["hello"] = "hello"
    data: HelloData


class SubscribedData(BaseModel):
    job_id: str
    status: JobStatus
    after_seq: int = Field(description="Replay started after this sequence number.")
    last_seq: int = Field(description="The job's latest sequence number when subscribed.")


class Subscribed(BaseModel):
    """Answer to `subscribe`; the replayed events follow it."""

    type: Literal["subscribed"] = "subscribed"
    data: SubscribedData


class UnsubscribedData(BaseModel):
    job_id: str


class Unsubscribed(BaseModel):
    """Answer to `unsubscribe`."""

    type: Literal["unsubscribed"] = "unsubscribed"
    data: UnsubscribedData


class PongData(BaseModel):
    model_config = ConfigDict(extra="allow")


class Pong(BaseModel):
    """Answer to `ping`, after every frame queued before it."""

    type: Literal["pong"] = "pong"
    data: PongData = Field(default_factory=PongData)


class ErrorData(BaseModel):
    code: Literal["bad_message", "unknown_job", "too_many_subscriptions", "internal_error"]
    message: str
    job_id: str | None = None


class ErrorMessage(BaseModel):
    """A client message could not be honoured."""

    type: Literal["error"] = "error"
    data: ErrorData


ServerMessage = Annotated[
    JobMessage | Hello | QueueStatus | Subscribed | Unsubscribed | Pong | ErrorMessage,
    Field(discriminator="type"),
]


# --- Client messages. ---


class SubscribeData(BaseModel):
    model_config = ConfigDict(extra="forbid")

    job_id: str = Field(pattern=JOB_ID_PATTERN)
    after_seq: int = Field(
        0, ge=0, le=MAX_SQL_INT, description="Replay the events after this sequence number."
    )


class Subscribe(BaseModel):
    """Receive a job's events: those after `after_seq` at once, then live ones."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["subscribe"]
    data: SubscribeData


class UnsubscribeData(BaseModel):
    model_config = ConfigDict(extra="forbid")

    job_id: str = Field(pattern=JOB_ID_PATTERN)


class Unsubscribe(BaseModel):
    """Stop receiving a job's events."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["unsubscribe"]
    data: UnsubscribeData


class Ping(BaseModel):
    """Ask for a `pong`; its data is echoed back."""

    type: Literal["ping"]
    data: dict[str, Any] = Field(default_factory=dict)


ClientMessage = Annotated[Subscribe | Unsubscribe | Ping, Field(discriminator="type")]
client_message_adapter: TypeAdapter[ClientMessage] = TypeAdapter(ClientMessage)
