"""The ComfyUI document format as the engine sees it: detection, conversion and PNG reading."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine.config import Paths
from engine.errors import ErrorCode, GraphError, GraphValidationError
from engine.formats import ConvertedGraph
from engine.registry import Registry
from nodes.comfy.api_format import convert_api_prompt, is_api_prompt
from nodes.comfy.png import read_png_workflow
from nodes.comfy.workflow_format import convert_workflow, is_workflow, node_layout

if TYPE_CHECKING:
    from nodes.sd.model_files import ModelKind


def _envelope_workflow(document: dict[str, Any]) -> Any:
    """The editor workflow riding along a prompt: a PNG's chunk or POST /prompt's extra_pnginfo."""
    if "workflow" in document:
        return document["workflow"]
    extra = document.get("extra_data")
    info = extra.get("extra_pnginfo") if isinstance(extra, dict) else None
    return info.get("workflow") if isinstance(info, dict) else None


def is_envelope(document: Any) -> bool:
    """`{"prompt": API prompt, ...}`: what a ComfyUI PNG carries and what POST /prompt receives."""
    return isinstance(document, dict) and (
        is_api_prompt(document.get("prompt"))
        or ("prompt" not in document and is_workflow(document.get("workflow")))
    )


MODEL_FOLDERS: tuple[ModelKind, ...] = ("checkpoints", "loras", "vae", "controlnet")


class ComfyUIFormat:
    """ComfyUI's API prompts, editor workflows, and PNGs carrying either."""

    name = "comfyui"

    def detect(self, document: Any) -> bool:
        return is_api_prompt(document) or is_envelope(document) or _is_workflow_doc(document)

    def convert(self, document: Any, registry: Registry) -> ConvertedGraph:
        try:
            return self._convert(document, registry)
        except (TypeError, ValueError, KeyError, AttributeError, IndexError) as exc:
            # The converters check what they read; this catches a shape they did not foresee.
            message = f"malformed ComfyUI document: {type(exc).__name__}: {exc}"
            raise GraphValidationError(
                [GraphError(code=ErrorCode.INVALID_GRAPH, message=message)]
            ) from None

    def _convert(self, document: Any, registry: Registry) -> ConvertedGraph:
        if is_api_prompt(document):
            return convert_api_prompt(document, None, registry)
        if is_envelope(document):
            workflow = _envelope_workflow(document)
            if "prompt" not in document:
                return convert_workflow(workflow, registry)
            layout = {}
            if is_workflow(workflow):
                for node in workflow["nodes"]:
                    if isinstance(node, dict):
                        layout[str(node.get("id"))] = node_layout(node)
            return convert_api_prompt(document["prompt"], layout, registry)
        if _is_workflow_doc(document):
            return convert_workflow(document, registry)
        raise GraphValidationError(
            [GraphError(code=ErrorCode.INVALID_GRAPH, message="not a ComfyUI document")]
        )

    def read_file(self, data: bytes) -> Any | None:
        return read_png_workflow(data)

    # What the server's ComfyUI facade needs, reached through the registry so that the server
    # does not import node packages.

    def object_info(self, registry: Registry, paths: Paths | None) -> dict[str, Any]:
        """ComfyUI node definitions of the mapped classes."""
        from nodes.comfy.object_info import object_info

        return object_info(registry, paths)

    def model_folders(self, paths: Paths) -> dict[str, list[str]]:
        """ComfyUI's model folder names and the files in each."""
        from nodes.sd.model_files import list_models

        return {kind: list_models(kind, paths.models) for kind in MODEL_FOLDERS}


def _is_workflow_doc(document: Any) -> bool:
    return is_workflow(document)
