"""ComfyUI's node definitions (`/object_info`) for the mapped classes, derived from our node specs."""

from __future__ import annotations

from typing import Any

from engine.config import Paths
from engine.node import InputSpec
from engine.registry import Registry
from nodes.comfy.mapping import CLASSES, CONTROL, UPLOAD, ClassMapping
from nodes.comfy.values import SAMPLER_ALIASES

# Inputs whose ComfyUI choices differ from ours in spelling.
_SWITCHES = {
    "add_noise": ["enable", "disable"],
    "return_with_leftover_noise": ["disable", "enable"],
    "crop": ["disabled"],
}
_EXTRA_WIDGETS: dict[str, list[Any]] = {
    "stop_at_clip_layer": ["INT", {"default": -1, "min": -24, "max": -1, "step": 1}],
    "temporal_size": ["INT", {"default": 64, "min": 8, "max": 4096, "step": 4}],
    "temporal_overlap": ["INT", {"default": 8, "min": 4, "max": 4096, "step": 4}],
}
_OPTIONAL_SOCKETS = {"vae": ["VAE"]}


def object_info(registry: Registry, paths: Paths | None) -> dict[str, Any]:
    """`{class_type: node_def}` for every mapped class whose node type is registered."""
    return {
        name: node_definition(name, mapping, registry, paths)
        for name, mapping in CLASSES.items()
        if not mapping.node_type or mapping.node_type in registry
    }


def node_definition(
    name: str, mapping: ClassMapping, registry: Registry, paths: Paths | None
) -> dict[str, Any]:
    """One class in ComfyUI's V1 node-definition shape."""
    cls = registry.get(mapping.node_type) if mapping.node_type else None
    required: dict[str, Any] = {}
    optional: dict[str, Any] = {}
    widgets = [w for w in mapping.widgets if w not in (CONTROL, UPLOAD)]
    for comfy_name in [*mapping.inputs, *(w for w in widgets if w not in mapping.inputs)]:
        spec = cls.spec.input(mapping.inputs.get(comfy_name, "")) if cls is not None else None
        entry = _input_type(comfy_name, spec, paths)
        if comfy_name == "seed" or comfy_name == "noise_seed":
            entry[1]["control_after_generate"] = True
        if comfy_name in ("image",) and UPLOAD in mapping.widgets:
            entry[1]["image_upload"] = True
        (optional if comfy_name in mapping.optional else required)[comfy_name] = entry
    for comfy_name in sorted(mapping.ignored & set(_OPTIONAL_SOCKETS)):
        optional[comfy_name] = _OPTIONAL_SOCKETS[comfy_name]
    outputs = list(mapping.output_types)
    return {
        "input": {"required": required, "optional": optional},
        "input_order": {"required": list(required), "optional": list(optional)},
        "output": outputs,
        "output_is_list": [False] * len(outputs),
        "output_name": outputs,
        "name": name,
        "display_name": mapping.display_name or name,
        "description": cls.spec.description if cls is not None else "",
        "python_module": "latentgraph",
        "category": mapping.category,
        "output_node": not outputs,
    }


def _whole(bound: float) -> int:
    # Bounds are stored as floats; 2**64 - 1 (the seed's maximum) does not survive that.
    return 2**64 - 1 if bound >= 2**63 else int(bound)


def _input_type(name: str, spec: InputSpec | None, paths: Paths | None) -> list[Any]:
    if name in _SWITCHES:
        return [_SWITCHES[name], {}]
    if name in _EXTRA_WIDGETS:
        kind, widget = _EXTRA_WIDGETS[name]
        return [kind, dict(widget)]
    if spec is None:
        return list(_OPTIONAL_SOCKETS.get(name, ["CLIP"] if name == "clip" else ["*"]))
    choices = spec.current_choices(paths)
    if choices is not None:
        if name == "sampler_name":
            choices = [*choices, *(a for a, ours in SAMPLER_ALIASES.items() if ours in choices)]
        options: dict[str, Any] = {}
        if spec.default is not None and spec.default in choices:
            options["default"] = spec.default
        return [list(choices), options]
    numeric: dict[str, Any] = {}
    if spec.default is not None:
        numeric["default"] = spec.default
    for key, bound in (("min", spec.ge), ("max", spec.le), ("step", spec.step)):
        if bound is not None:
            numeric[key] = _whole(bound) if spec.type == "INT" else bound
    if spec.multiline:
        numeric["multiline"] = True
    return [spec.type, numeric]
