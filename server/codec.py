"""How a websocket protocol turns job events and connection messages into frames.

The native codec sends each message as JSON text (encoded once, shared by every subscriber); a
protocol facade (ComfyUI's, in server/comfy/codec.py) plugs in its own without touching job logic.
"""

from __future__ import annotations

from typing import Protocol

from pydantic import BaseModel

from server.messages import Frame, JobEvent, encode


class Codec(Protocol):
    """Turns job events and connection messages into websocket frames for one protocol."""

    name: str

    def job_frames(self, event: JobEvent) -> list[Frame]: ...

    def message(self, message: BaseModel) -> list[Frame]: ...


class NativeCodec:
    """Latentgraph's own protocol: JSON text `{type, data}`, previews as binary frames."""

    name = "latentgraph"

    def job_frames(self, event: JobEvent) -> list[Frame]:
        return [event.text] if event.preview is None else [event.text, event.preview]

    def message(self, message: BaseModel) -> list[Frame]:
        return [encode(message)]
