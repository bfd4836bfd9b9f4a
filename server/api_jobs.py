"""Job routes: submit, list, inspect, read the event log, cancel, reorder, and the queue."""

from __future__ import annotations

import asyncio
import json

from aiohttp import web

from engine.errors import GraphValidationError
from engine.formats import convert_document
from server.errors import ApiError
from server.files import delete_outputs
from server.job_errors import JobNotFound, JobStateConflict
from server.job_rows import summary_from_row
from server.payloads import json_response, parse_model, parse_query, read_json
from server.schemas import (
    CancelResult,
    EventPage,
    EventQuery,
    JobDeleted,
    JobDetail,
    JobListQuery,
    JobPage,
    QueueCleared,
    QueueView,
    SubmitJob,
)
from server.services import services
from server.settings import API_PREFIX


async def submit_job(request: web.Request) -> web.Response:
    """POST /api/v1/jobs: validate and queue a graph; 400 lists every graph error."""
    svc = services(request)
    body = parse_model(SubmitJob, await read_json(request, svc.settings.max_json_bytes))
    try:
        # A ComfyUI workflow (or any registered format) is converted first; errors name its nodes.
        converted = convert_document(body.graph, svc.executor.registry)
        graph = converted.document
        if body.sweep is not None and isinstance(graph, dict):
            graph = {**graph, "sweep": body.sweep.model_dump(mode="json")}
        try:
            created = await svc.jobs.submit(
                graph, body.client_id, body.front, retry=body.retry_on_worker_lost
            )
        except GraphValidationError as exc:
            raise converted.blamed(exc) from None
    except GraphValidationError as exc:
        raise ApiError(
            400,
            "invalid_graph",
            f"the graph is invalid ({len(exc.errors)} error(s))",
            errors=exc.errors,
        ) from None
    location = f"{API_PREFIX}/jobs/{created.job_id}"
    return json_response(created, status=201, headers={"Location": location})


async def list_jobs(request: web.Request) -> web.Response:
    """GET /api/v1/jobs: newest first, filtered by status and client id, paged."""
    query = parse_query(request, JobListQuery, list_fields=("status",))
    rows, total = await services(request).jobs.page(
        list(query.status) if query.status else None, query.client_id, query.limit, query.offset
    )
    return json_response(
        JobPage(
            jobs=[summary_from_row(r) for r in rows],
            total=total,
            limit=query.limit,
            offset=query.offset,
            has_more=query.offset + len(rows) < total,
        )
    )


async def get_job(request: web.Request) -> web.Response:
    """GET /api/v1/jobs/{job_id}: one job with its graph."""
    row = await services(request).jobs.get(request.match_info["job_id"])
    if row is None:
        raise _not_found(request.match_info["job_id"])
    return json_response(JobDetail(**summary_from_row(row).model_dump(), graph=row.graph))


async def job_events(request: web.Request) -> web.Response:
    """GET /api/v1/jobs/{job_id}/events: the job's event log after a sequence number."""
    job_id = request.match_info["job_id"]
    query = parse_query(request, EventQuery)
    found = await services(request).jobs.stored_events(job_id, query.after_seq, query.limit)
    if found is None:
        raise _not_found(job_id)
    row, events = found
    return json_response(
        EventPage(job_id=job_id, events=[json.loads(e.text) for e in events], last_seq=row.last_seq)
    )


async def cancel_job(request: web.Request) -> web.Response:
    """POST /api/v1/jobs/{job_id}/cancel: cancel it if pending (200), interrupt it if running (202)."""
    job_id = request.match_info["job_id"]
    try:
        outcome = await services(request).jobs.cancel(job_id)
    except JobNotFound:
        raise _not_found(job_id) from None
    except JobStateConflict as exc:
        raise ApiError(409, "conflict", str(exc)) from None
    status = 202 if outcome == "interrupting" else 200
    return json_response(CancelResult(job_id=job_id, outcome=outcome), status=status)


async def delete_job(request: web.Request) -> web.Response:
    """DELETE /api/v1/jobs/{job_id}: forget a finished job and delete its output files."""
    svc = services(request)
    job_id = request.match_info["job_id"]
    try:
        row = await svc.jobs.delete(job_id)
    except JobNotFound:
        raise _not_found(job_id) from None
    except JobStateConflict as exc:
        raise ApiError(409, "conflict", f"{exc}; cancel it first") from None
    deleted = await asyncio.to_thread(delete_outputs, svc.paths.output, row.outputs)
    return json_response(JobDeleted(job_id=job_id, deleted_files=deleted))


async def move_to_front(request: web.Request) -> web.Response:
    """POST /api/v1/jobs/{job_id}/front: run this pending job next."""
    job_id = request.match_info["job_id"]
    try:
        summary = await services(request).jobs.move_to_front(job_id)
    except JobNotFound:
        raise _not_found(job_id) from None
    except JobStateConflict as exc:
        raise ApiError(409, "conflict", str(exc)) from None
    return json_response(summary)


async def get_queue(request: web.Request) -> web.Response:
    """GET /api/v1/queue: the running job and the pending ones in run order."""
    running, pending = services(request).jobs.queue()
    return json_response(
        QueueView(
            running=running.summary() if running else None,
            pending=[job.summary() for job in pending],
        )
    )


async def clear_queue(request: web.Request) -> web.Response:
    """DELETE /api/v1/queue: cancel every pending job (the running one keeps running)."""
    return json_response(QueueCleared(cancelled=await services(request).jobs.clear()))


def _not_found(job_id: str) -> ApiError:
    return ApiError(404, "not_found", f"no job {job_id}")
