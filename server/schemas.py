"""The HTTP API's request and response bodies, as pydantic models; they also generate the OpenAPI file."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from engine.errors import GraphError
from engine.graph import Sweep

JobStatus = Literal["pending", "running", "finished", "failed", "interrupted", "cancelled"]
JOB_STATUSES: tuple[JobStatus, ...] = (
    "pending",
    "running",
    "finished",
    "failed",
    "interrupted",
    "cancelled",
)
ACTIVE_STATUSES: tuple[JobStatus, ...] = ("pending", "running")
InterruptReason = Literal["requested", "server_shutdown"]
MAX_PAGE = 200
MAX_EVENT_PAGE = 10_000
# SQLite integers are signed 64-bit: larger offsets or sequence numbers cannot be looked up.
MAX_SQL_INT = 2**63 - 1
CLIENT_ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,128}$"
JOB_ID_PATTERN = r"^[0-9a-f]{32}$"

ClientId = Annotated[str, Field(pattern=CLIENT_ID_PATTERN)]
# Documented as the graph file format; the engine's validator checks it, so that a bad graph gets
# the same GraphError list as `latentgraph validate`.
GraphDocument = Annotated[
    dict[str, Any], WithJsonSchema({"allOf": [{"$ref": "#/components/schemas/GraphFile"}]})
]
# Any JSON on the way in, so that even a graph that is not an object gets GraphErrors.
GraphInput = Annotated[Any, WithJsonSchema({"allOf": [{"$ref": "#/components/schemas/GraphFile"}]})]
# An output node's UI result; entries with a `filename` gain a `url` to the view route.
UiOutput = dict[str, list[Any]]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SubmitJob(_Strict):
    """A graph to run, and who should hear about it."""

    graph: GraphInput = Field(description="A graph document (see GET /api/v1/schema/graph).")
    client_id: ClientId | None = Field(
        None,
        description="Websocket connections opened with this client id receive the job's events.",
    )
    front: bool = Field(False, description="Put the job at the front of the queue.")
    sweep: Sweep | None = Field(
        None,
        description=(
            "Run the graph once per combination of these input values, as one job with one event "
            "log and an output per combination (it replaces the graph's own `sweep`)."
        ),
    )
    retry_on_worker_lost: bool = Field(
        False,
        description="If the worker running the job dies (Ray backend), run it once more on "
        "another worker instead of failing it with `worker_lost`.",
    )


class ConvertGraph(_Strict):
    """A workflow to convert into our graph format."""

    document: Any = Field(
        description="A ComfyUI API-format prompt, editor workflow, or {prompt, workflow} pair "
        "(what a ComfyUI PNG carries); our own graph documents pass through unchanged."
    )


class ConvertedGraphBody(BaseModel):
    """The converted graph; `editor.nodes[id].comfy_id` keeps each ComfyUI node's id."""

    format: str = Field(description="The format detected: comfyui-api, comfyui-workflow, ...")
    graph: GraphDocument


class JobError(BaseModel):
    """Why a job failed: a node raised, the graph stopped validating, or the server went away."""

    code: Literal["node_failed", "invalid_graph", "server_stopped", "internal_error", "worker_lost"]
    message: str
    node_id: str | None = None
    node_type: str | None = None
    exception_type: str | None = None
    input: str | None = None
    traceback: list[str] = []
    errors: list[GraphError] = Field(
        default=[], description="For `invalid_graph`: every validation error."
    )


class InterruptInfo(BaseModel):
    """Where an interrupted job stopped, and why."""

    node_id: str | None = Field(description="The node it stopped in; null between nodes.")
    reason: InterruptReason


class JobSummary(BaseModel):
    """A job's state and results, without its graph."""

    job_id: str
    status: JobStatus
    client_id: str | None = None
    created_at: float = Field(description="Unix time.")
    started_at: float | None = None
    finished_at: float | None = None
    last_seq: int = Field(description="The sequence number of the job's latest event.")
    executed: list[str] = Field(default=[], description="Nodes that ran.")
    cached: list[str] = Field(default=[], description="Nodes served from the cache.")
    outputs: dict[str, UiOutput | None] = Field(
        default={}, description="Each output node's UI result, by node id."
    )
    error: JobError | None = None
    interrupted: InterruptInfo | None = None


class JobDetail(JobSummary):
    """A job with the graph it runs."""

    graph: GraphDocument


class JobCreated(JobSummary):
    """A queued job."""

    position: int = Field(description="How many pending jobs run before this one.")


class JobPage(BaseModel):
    """One page of jobs, newest first."""

    jobs: list[JobSummary]
    total: int
    limit: int
    offset: int
    has_more: bool


class JobListQuery(_Strict):
    """Filters and paging for GET /api/v1/jobs."""

    status: list[JobStatus] | None = Field(
        None, description="Comma-separated statuses to include; all by default."
    )
    client_id: ClientId | None = None
    limit: int = Field(50, ge=1, le=MAX_PAGE)
    offset: int = Field(0, ge=0, le=MAX_SQL_INT)


class EventQuery(_Strict):
    """Paging for a job's event log."""

    after_seq: int = Field(
        0, ge=0, le=MAX_SQL_INT, description="Only events with a larger sequence number."
    )
    limit: int = Field(1000, ge=1, le=MAX_EVENT_PAGE)


class EventPage(BaseModel):
    """Part of a job's event log, in sequence order; the same messages the websocket sends."""

    job_id: str
    events: list[dict[str, Any]] = Field(description="Websocket job messages ({type, data}).")
    last_seq: int


class QueueView(BaseModel):
    """The running job and the pending ones, in the order they will run."""

    running: JobSummary | None
    pending: list[JobSummary]


class CancelResult(BaseModel):
    """What a cancel request did: a pending job is cancelled, the running one is interrupted."""

    job_id: str
    outcome: Literal["cancelled", "interrupting"]


class JobDeleted(BaseModel):
    """A finished job that was forgotten, and the output files of it that were deleted."""

    job_id: str
    deleted_files: list[str] = Field(description="Output files removed, relative to the folder.")


class QueueCleared(BaseModel):
    """The pending jobs that were cancelled."""

    cancelled: list[str]


class UploadedImage(BaseModel):
    """An image stored in the input folder; `existing` when the same bytes were already there."""

    name: str
    subfolder: str
    type: Literal["input"] = "input"
    url: str
    sha256: str
    size: int
    width: int
    height: int
    format: str
    existing: bool


class FreeMemory(_Strict):
    """What to release: move cached models off accelerators, and/or drop every cached output."""

    unload_models: bool = True
    clear_cache: bool = False


class FreedMemory(BaseModel):
    """What was released, and what the cache holds now (bytes by device)."""

    offloaded_models: int
    dropped_entries: int
    cache_usage: dict[str, int]


class DeviceInfo(BaseModel):
    """One compute device."""

    name: str
    type: str
    index: int | None = None
    memory_total: int | None = None
    memory_free: int | None = None


class CacheInfo(BaseModel):
    """The shared output cache."""

    entries: int
    usage: dict[str, int]
    budgets: dict[str, int]
    hits: int
    misses: int
    evictions: int
    offloads: int


class WorkerCache(BaseModel):
    """What one worker's output cache holds."""

    entries: int
    usage: dict[str, int] = Field(description="Bytes held per device.")


class WorkerInfo(BaseModel):
    """One worker of the backend: where it runs, what it runs now and what it has cached."""

    worker_id: str
    alive: bool
    node: str | None = Field(None, description="The host (Ray node) it runs on.")
    pid: int | None = None
    devices: list[DeviceInfo]
    threads: int | None = Field(None, description="torch CPU threads.")
    running: str | None = Field(None, description="The job it runs now.")
    queued: int = Field(0, description="Jobs assigned to it and not yet started.")
    jobs_run: int = 0
    cache: WorkerCache


class SystemStats(BaseModel):
    """Versions, memory, devices, cache and queue; `workers` when jobs run on a Ray cluster."""

    versions: dict[str, str | None]
    system: dict[str, Any]
    devices: list[DeviceInfo]
    cache: CacheInfo
    queue: dict[str, int]
    backend: Literal["in_process", "ray"] = "in_process"
    workers: list[WorkerInfo] = []


class ErrorBody(BaseModel):
    """Every error response: a stable code, a message, and for invalid graphs every error."""

    error: str
    message: str
    errors: list[GraphError] | None = None


class ViewQuery(BaseModel):
    """Which file GET /api/v1/view returns: the same fields as an output's image entry."""

    filename: str
    subfolder: str = ""
    type: Literal["output", "input"] = "output"


class WebsocketQuery(BaseModel):
    """Query of the websocket upgrade, GET /ws."""

    client_id: ClientId | None = Field(
        None, description="Receive the events of every job submitted with this client id."
    )
    resume: list[str] = Field(
        default=[],
        description="JOB_ID:SEQ (repeatable): subscribe to a job and replay its events after SEQ.",
    )
