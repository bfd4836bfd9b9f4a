"""ComfyUI's websocket dialect as a codec: our job events become ComfyUI's messages and frames.

Node ids are translated back to the ComfyUI ids the prompt used. Previews go out as ComfyUI's
legacy binary frame (event 1, image type 1 = JPEG), which every ComfyUI client understands.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

from server.comfy.state import NodeIds
from server.messages import Frame, JobEvent, QueueStatus, parse_preview_frame

BINARY_PREVIEW_IMAGE = 1
IMAGE_TYPES = {"image/jpeg": 1, "image/png": 2}


def _ms(seconds: float) -> int:
    return int(seconds * 1000)


def _text(kind: str, data: dict[str, Any]) -> str:
    return json.dumps({"type": kind, "data": data}, separators=(",", ":"))


def status_message(queue_remaining: int, sid: str | None = None) -> str:
    """ComfyUI's `status` message."""
    data: dict[str, Any] = {"status": {"exec_info": {"queue_remaining": queue_remaining}}}
    if sid is not None:
        data["sid"] = sid
    return _text("status", data)


class ComfyCodec:
    """Encodes for one ComfyUI websocket client; its first `status` carries the client's sid."""

    name = "comfyui"

    def __init__(self, sid: str, node_ids: Callable[[str], NodeIds]) -> None:
        self.sid = sid
        self._node_ids = node_ids
        self._greeted = False

    def message(self, message: BaseModel) -> list[Frame]:
        if isinstance(message, QueueStatus):
            sid = None if self._greeted else self.sid
            self._greeted = True
            return [status_message(message.data.pending + message.data.running, sid)]
        return []  # our connection messages (hello, pong, errors) have no ComfyUI counterpart

    def job_frames(self, event: JobEvent) -> list[Frame]:
        data = json.loads(event.text)["data"]
        prompt_id = event.job_id
        ids = self._node_ids(prompt_id)

        def comfy(node_id: str | None) -> str | None:
            return None if node_id is None else ids.get(node_id, (node_id, ""))[0]

        def comfy_type(node_id: str | None, ours: str | None) -> str | None:
            return ours if node_id is None else ids.get(node_id, ("", ours or ""))[1]

        now = _ms(data["time"])
        kind = event.type
        if kind == "job_started":
            return [_text("execution_start", {"prompt_id": prompt_id, "timestamp": now})]
        if kind == "nodes_cached":
            nodes = [comfy(n) for n in data["nodes"]]
            return [
                _text(
                    "execution_cached", {"nodes": nodes, "prompt_id": prompt_id, "timestamp": now}
                )
            ]
        if kind == "node_started":
            node = comfy(data["node_id"])
            return [
                _text("executing", {"node": node, "display_node": node, "prompt_id": prompt_id})
            ]
        if kind == "progress":
            node = comfy(data["node_id"])
            frames: list[Frame] = [
                _text(
                    "progress",
                    {
                        "value": data["value"],
                        "max": data["max"],
                        "prompt_id": prompt_id,
                        "node": node,
                    },
                )
            ]
            if event.preview is not None:
                frames.append(preview_image_frame(event.preview))
            return frames
        if kind == "node_finished":
            if data.get("output") is None:
                return []
            node = comfy(data["node_id"])
            return [
                _text(
                    "executed",
                    {
                        "node": node,
                        "display_node": node,
                        "output": data["output"],
                        "prompt_id": prompt_id,
                    },
                )
            ]
        done = _text("executing", {"node": None, "prompt_id": prompt_id})
        if kind == "job_finished":
            return [_text("execution_success", {"prompt_id": prompt_id, "timestamp": now}), done]
        if kind == "job_failed":
            error = data["error"]
            node_id = error.get("node_id")
            details = error["message"]
            if error.get("errors"):
                details += ": " + "; ".join(e["message"] for e in error["errors"])
            failure = {
                "prompt_id": prompt_id,
                "node_id": comfy(node_id),
                "node_type": comfy_type(node_id, error.get("node_type")),
                "executed": [comfy(n) for n in data["executed"]],
                "exception_message": details,
                "exception_type": error.get("exception_type") or error["code"],
                "traceback": error.get("traceback", []),
                "current_inputs": {},
                "current_outputs": [],
                "timestamp": now,
            }
            return [_text("execution_error", failure), done]
        if kind == "job_interrupted":
            node_id = data.get("node_id")
            stopped = {
                "prompt_id": prompt_id,
                "node_id": comfy(node_id),
                "node_type": comfy_type(node_id, None),
                "executed": [comfy(n) for n in data["executed"]],
                "timestamp": now,
            }
            return [_text("execution_interrupted", stopped), done]
        return []  # job_queued, job_cancelled: ComfyUI says nothing about these


def preview_image_frame(native_frame: bytes) -> bytes:
    """Our preview frame re-framed as ComfyUI's: event 1 (u32 BE), image type (u32 BE), image."""
    header, image = parse_preview_frame(native_frame)
    image_type = IMAGE_TYPES.get(str(header.get("mime")), 1)
    return struct.pack(">II", BINARY_PREVIEW_IMAGE, image_type) + image
