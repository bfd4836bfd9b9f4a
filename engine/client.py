"""A small client for `latentgraph serve`: submit a graph, follow its websocket events, fetch its images.

    result = Client("http://127.0.0.1:8188").run(graph)   # a Graph or a graph document
    result.images["save"][0].show()

The protocol is the one in docs/api/websocket.md: connect to /ws with a client id first (so that
no event is missed), POST the job with that id, then read job messages until a terminal one.
"""

from __future__ import annotations

import asyncio
import io
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import GraphError, GraphValidationError

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

    from engine.builder import Graph

TERMINAL = ("job_finished", "job_failed", "job_interrupted", "job_cancelled")
API = "/api/v1"


class JobFailed(RuntimeError):
    """The job ended without finishing; `result` holds its events and error."""

    def __init__(self, result: JobResult) -> None:
        self.result = result
        error = result.error or {}
        where = ".".join(p for p in (error.get("node_id"), error.get("input")) if p)
        detail = f"{where}: {error.get('message', '')}" if where else error.get("message", "")
        super().__init__(f"job {result.job_id} {result.status}: {detail}".rstrip(": "))


@dataclass
class JobResult:
    """A job's whole event log, its outputs as the server reports them, and the images it made."""

    job_id: str
    status: str
    events: list[dict[str, Any]]
    outputs: dict[str, Any] = field(default_factory=dict)
    error: dict[str, Any] | None = None
    images: dict[str, list[PILImage]] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)


class Client:
    """Talks to one server; every call opens its own HTTP session."""

    def __init__(self, url: str = "http://127.0.0.1:8188", token: str | None = None) -> None:
        self.url = url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}

    def run(
        self,
        graph: Graph | dict[str, Any],
        *,
        sweep: dict[str, list[Any]] | None = None,
        zip_sweep: bool = False,
        out: Path | None = None,
        on_event: Callable[[dict[str, Any]], None] | None = None,
        check: bool = True,
    ) -> JobResult:
        """Submit and follow a job until it ends (see `run_async`)."""
        return asyncio.run(
            self.run_async(
                graph, sweep=sweep, zip_sweep=zip_sweep, out=out, on_event=on_event, check=check
            )
        )

    async def run_async(
        self,
        graph: Graph | dict[str, Any],
        *,
        sweep: dict[str, list[Any]] | None = None,
        zip_sweep: bool = False,
        out: Path | None = None,
        on_event: Callable[[dict[str, Any]], None] | None = None,
        check: bool = True,
    ) -> JobResult:
        """Submit `graph` (optionally swept), follow its events, download the images it saves.

        Images land in `images` by node id, and in `out` when given. An invalid graph raises
        GraphValidationError with the server's errors; with `check`, a job that does not finish
        raises JobFailed.
        """
        import aiohttp

        document = graph if isinstance(graph, dict) else graph.to_dict()
        client_id = uuid.uuid4().hex  # random: whoever knows it hears our jobs
        body: dict[str, Any] = {"graph": document, "client_id": client_id}
        if sweep:
            body["sweep"] = {"values": sweep, "mode": "zip" if zip_sweep else "product"}
        async with aiohttp.ClientSession(headers=self.headers) as http:
            async with http.ws_connect(f"{self.url}/ws", params={"client_id": client_id}) as ws:
                async with http.post(f"{self.url}{API}/jobs", json=body) as response:
                    answer = await response.json()
                if response.status == 400 and answer.get("errors"):
                    raise GraphValidationError(
                        [GraphError.model_validate(e) for e in answer["errors"]]
                    )
                if response.status != 201:
                    raise RuntimeError(f"the server refused the job: {answer.get('message')}")
                result = JobResult(answer["job_id"], "pending", [])
                await self._follow(ws, http, result, out, on_event)
        if check and result.status != "finished":
            raise JobFailed(result)
        return result

    async def _follow(
        self,
        ws: Any,
        http: Any,
        result: JobResult,
        out: Path | None,
        on_event: Callable[[dict[str, Any]], None] | None,
    ) -> None:
        import aiohttp

        async for message in ws:
            if message.type == aiohttp.WSMsgType.BINARY:
                continue  # a JPEG preview of the current step
            if message.type != aiohttp.WSMsgType.TEXT:
                break
            event = message.json()
            data = event.get("data", {})
            if data.get("job_id") != result.job_id:
                continue
            result.events.append(event)
            if on_event is not None:
                on_event(event)
            kind = event["type"]
            if kind == "node_finished" and data.get("output"):
                await self._download(http, data["node_id"], data["output"], result, out)
            if kind in TERMINAL:
                result.status = kind.removeprefix("job_")
                result.outputs = data.get("outputs", {})
                result.error = data.get("error")
                return
        result.status = "disconnected"

    async def _download(
        self, http: Any, node_id: str, output: dict[str, Any], result: JobResult, out: Path | None
    ) -> None:
        from PIL import Image

        for items in output.values():
            for item in items:
                if not (isinstance(item, dict) and "url" in item):
                    continue
                async with http.get(self.url + item["url"]) as response:
                    response.raise_for_status()
                    content = await response.read()
                image = Image.open(io.BytesIO(content))
                image.load()
                result.images.setdefault(node_id, []).append(image)
                if out is not None:
                    out.mkdir(parents=True, exist_ok=True)
                    target = out / Path(item["filename"]).name
                    target.write_bytes(content)
                    result.files.append(target)
