"""ComfyUI's API ("prompt") format, `{id: {class_type, inputs}}`, converted into our graph file.

Links are `[source_id, output_index]`; each becomes `"source.output_name"` through the mapping
table. ComfyUI ids ("3", "12:5") are not valid ids here, so each node gets a readable id of ours
("n3", "n12_5") and keeps its ComfyUI id in the editor layer (`editor.nodes[id].comfy_id`); every
error, from the conversion or from validating the result, names the ComfyUI id and input name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from engine.errors import ErrorCode, GraphError, GraphValidationError
from engine.formats import ConvertedGraph
from engine.graph import NODE_ID_PATTERN
from engine.registry import Registry
from nodes.comfy.mapping import CLASSES, PASS_THROUGH, ClassMapping, comfy_input_of
from nodes.comfy.values import DROP, VALUES, ValueProblem

FORMAT_NAME = "comfyui-api"
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
_MAX_PASS_THROUGH = 64


def is_api_prompt(document: Any) -> bool:
    """Whether a document looks like ComfyUI's API format: every value has a `class_type`."""
    return (
        isinstance(document, dict)
        and bool(document)
        and all(isinstance(v, dict) and "class_type" in v for v in document.values())
    )


def our_node_id(comfy_id: str, taken: set[str]) -> str:
    """A readable id of ours for a ComfyUI id: "3" -> "n3", "12:5" -> "n12_5"."""
    base = _UNSAFE.sub("_", comfy_id)[:100]
    if not re.match(NODE_ID_PATTERN, base):
        base = f"n{base}"
    candidate, suffix = base, 2
    while candidate in taken:
        candidate, suffix = f"{base}_{suffix}", suffix + 1
    taken.add(candidate)
    return candidate


@dataclass
class Blame:
    """Maps errors about the converted graph back onto the ComfyUI ids and input names."""

    comfy_ids: dict[str, str] = field(default_factory=dict)  # our id -> ComfyUI id
    classes: dict[str, str] = field(default_factory=dict)  # our id -> ComfyUI class_type

    def __call__(self, error: GraphError) -> GraphError:
        if error.node_id is None or error.node_id not in self.comfy_ids:
            return error
        our_id = error.node_id
        update: dict[str, Any] = {"node_id": self.comfy_ids[our_id]}
        if error.input is not None:
            update["input"] = comfy_input_of(self.classes[our_id], error.input)
        if error.cycle:
            cycle = [self.comfy_ids.get(n, n) for n in error.cycle]
            update["cycle"] = cycle
            update["message"] = "the workflow has a cycle: " + " → ".join([*cycle, cycle[0]])
        else:
            update["message"] = f"{error.message} (ComfyUI {self.classes[our_id]})"
        return error.model_copy(update=update)


def convert_api_prompt(
    prompt: Any,
    editor: dict[str, dict[str, Any]] | None = None,
    registry: Registry | None = None,
) -> ConvertedGraph:
    """Our graph file for an API-format prompt; raises GraphValidationError naming ComfyUI ids.

    `editor` optionally carries layout per ComfyUI id (position, title), from an editor workflow.
    When conversion finds errors and a `registry` is given, the rest of the graph is validated
    too, so that every error is reported at once.
    """
    if not is_api_prompt(prompt):
        raise GraphValidationError(
            [
                GraphError(
                    code=ErrorCode.INVALID_GRAPH,
                    message="not a ComfyUI API-format prompt: expected {id: {class_type, inputs}}",
                )
            ]
        )
    errors: list[GraphError] = []
    failed: set[tuple[str, str | None]] = set()  # (ComfyUI id, input) already reported
    taken: set[str] = set()
    ids: dict[str, str] = {}
    blame = Blame()
    for comfy_id, entry in prompt.items():
        class_type = entry.get("class_type")
        if not isinstance(class_type, str) or class_type not in CLASSES:
            errors.append(
                GraphError(
                    code=ErrorCode.UNKNOWN_NODE_TYPE,
                    message=f"ComfyUI node type {class_type!r} has no Latentgraph equivalent",
                    node_id=comfy_id,
                    value=class_type if isinstance(class_type, str) else None,
                )
            )
            continue
        if class_type in PASS_THROUGH:
            continue
        ids[comfy_id] = our = our_node_id(comfy_id, taken)
        blame.comfy_ids[our] = comfy_id
        blame.classes[our] = class_type

    nodes: dict[str, Any] = {}
    layout: dict[str, Any] = {}
    for comfy_id, our_id in ids.items():
        entry = prompt[comfy_id]
        mapping = CLASSES[entry["class_type"]]
        node, node_errors, unlinked = _convert_node(prompt, comfy_id, mapping, ids)
        errors.extend(node_errors)
        failed.update((comfy_id, e.input) for e in node_errors)
        failed.update((comfy_id, name) for name in unlinked)
        nodes[our_id] = node
        info: dict[str, Any] = {"comfy_id": comfy_id, "comfy_type": entry["class_type"]}
        title = (entry.get("_meta") or {}).get("title") if isinstance(entry, dict) else None
        info.update((editor or {}).get(comfy_id, {}))
        if isinstance(title, str) and "title" not in info:
            info["title"] = title
        layout[our_id] = info
    document = {"version": 1, "nodes": nodes, "editor": {"nodes": layout}}
    if errors:
        if registry is not None:
            errors.extend(
                _remaining_errors(document, registry, blame, failed, len(ids) < len(prompt))
            )
        raise GraphValidationError(errors)
    return ConvertedGraph(document, FORMAT_NAME, blame)


def _remaining_errors(
    document: dict[str, Any],
    registry: Registry,
    blame: Blame,
    failed: set[tuple[str, str | None]],
    dropped: bool,
) -> list[GraphError]:
    """Validation errors of the part that converted, minus those the conversion already explains."""
    from engine.validate import validate_graph

    try:
        validate_graph(document, registry)
    except GraphValidationError as exc:
        found = [blame(e) for e in exc.errors]
        return [
            e
            for e in found
            if (e.node_id, e.input) not in failed
            and not (dropped and e.code == ErrorCode.NO_OUTPUT_NODE)
        ]
    return []


def _convert_node(
    prompt: dict[str, Any], comfy_id: str, mapping: ClassMapping, ids: dict[str, str]
) -> tuple[dict[str, Any], list[GraphError], set[str]]:
    entry = prompt[comfy_id]
    raw_inputs = entry.get("inputs", {})
    errors: list[GraphError] = []

    def error(code: ErrorCode, message: str, name: str, value: Any = None) -> None:
        errors.append(
            GraphError(code=code, message=message, node_id=comfy_id, input=name, value=value)
        )

    if not isinstance(raw_inputs, dict):
        error(ErrorCode.INVALID_GRAPH, "inputs must be an object", "inputs")
        return {"type": mapping.node_type}, errors, set()
    inputs: dict[str, Any] = dict(mapping.constants)
    links: dict[str, str] = {}
    unlinked: set[str] = set()
    for name, ours in mapping.inputs.items():
        if name in mapping.ignored:
            continue
        if name not in raw_inputs:
            if name not in mapping.optional:
                error(ErrorCode.MISSING_INPUT, f"required input {name} is missing", name)
            continue
        value = raw_inputs[name]
        if isinstance(value, list):
            resolved = _resolve_link(prompt, value, ids)
            if isinstance(resolved, str):
                error(ErrorCode.INVALID_LINK, resolved, name, _small(value))
                continue
            source, index, _ = resolved
            link = _link(prompt, source, index, ids)
            if not link:  # from a node that could not be converted: reported there
                unlinked.add(name)
            elif link.startswith("!"):
                error(ErrorCode.LINK_TO_MISSING_OUTPUT, link[1:], name, value)
            else:
                links[ours] = link
            continue
        if isinstance(value, dict) and set(value) == {"__value__"}:
            value = value["__value__"]
        translate = VALUES.get(name)
        if translate is not None:
            try:
                value = translate(value)
            except ValueProblem as exc:
                error(exc.code, str(exc), name, _small(value))
                continue
            if value is DROP:
                continue
        inputs[ours] = value
    if mapping.node_type == "EncodeText" and isinstance(raw_inputs.get("clip"), list):
        # CLIPSetLastLayer's setting travels with the CLIP, also through LoRA loaders.
        clip_skip = _clip_skip(prompt, raw_inputs["clip"])
        if clip_skip is not None:
            inputs["clip_skip"] = clip_skip
    node: dict[str, Any] = {"type": mapping.node_type}
    if inputs:
        node["inputs"] = inputs
    if links:
        node["links"] = links
    return node, errors, unlinked


def _resolve_link(
    prompt: dict[str, Any], value: list[Any], ids: dict[str, str]
) -> tuple[str, int, int | None] | str:
    """The real source of a link, past pass-through nodes, and the clip skip met on the way.

    Returns an error message instead when the link is malformed or points at nothing.
    """
    clip_skip: int | None = None
    for _ in range(_MAX_PASS_THROUGH):
        if len(value) != 2 or not isinstance(value[0], str):
            return "a link must be [source_node_id (a string), output_index]"
        source, index = value
        if not isinstance(index, int) or isinstance(index, bool):
            return f"the output index of a link must be a whole number, not {index!r}"
        entry = prompt.get(source)
        if entry is None:
            return f"links to node {source!r}, which is not in the workflow"
        class_type = entry.get("class_type")
        through = PASS_THROUGH.get(class_type) if isinstance(class_type, str) else None
        if through is None:
            return source, index, clip_skip
        if index != 0:
            return f"node {source} ({class_type}) has 1 output; there is no output {index}"
        layer = entry.get("inputs", {}).get("stop_at_clip_layer")
        if clip_skip is None and layer is not None:
            try:
                clip_skip = VALUES["stop_at_clip_layer"](layer)
            except ValueProblem as exc:
                return f"node {source} ({class_type}): stop_at_clip_layer: {exc}"
        upstream = entry.get("inputs", {}).get(through)
        if not isinstance(upstream, list):
            return f"node {source} ({class_type}) has no {through} link"
        value = upstream
    return "links pass through too many nodes (a cycle?)"


# Classes whose CLIP output is their CLIP input, patched: the clip skip set upstream still holds.
_CLIP_CARRIERS = {"LoraLoader": 1}


def _clip_skip(prompt: dict[str, Any], link: list[Any]) -> int | None:
    """The clip skip a CLIPSetLastLayer upstream of a CLIP link sets, if any."""
    for _ in range(_MAX_PASS_THROUGH):
        if len(link) != 2 or not isinstance(prompt.get(link[0]), dict):
            return None
        entry = prompt[link[0]]
        inputs = entry.get("inputs") if isinstance(entry.get("inputs"), dict) else {}
        class_type = entry.get("class_type")
        if class_type == "CLIPSetLastLayer":
            try:
                return int(VALUES["stop_at_clip_layer"](inputs.get("stop_at_clip_layer")))
            except ValueProblem:
                return None  # reported on the CLIPSetLastLayer's consumers' link
        if _CLIP_CARRIERS.get(class_type) != link[1] or not isinstance(inputs.get("clip"), list):
            return None
        link = inputs["clip"]
    return None


def _link(prompt: dict[str, Any], source: str, index: int, ids: dict[str, str]) -> str:
    """`"our_source.output"`, or `"!message"` if the output index does not exist."""
    class_type = prompt[source].get("class_type")
    mapping = CLASSES.get(class_type) if isinstance(class_type, str) else None
    if mapping is None or source not in ids:
        # The unknown class is reported on the source node itself.
        return ""
    if not 0 <= index < len(mapping.outputs):
        outputs = ", ".join(f"{i}: {t}" for i, t in enumerate(mapping.output_types)) or "none"
        return (
            f"!node {source} ({class_type}) has no output {index} "
            f"(it has {len(mapping.outputs)}: {outputs})"
        )
    return f"{ids[source]}.{mapping.outputs[index]}"


def _small(value: Any) -> Any:
    return value if isinstance(value, (str, int, float, bool, type(None))) else repr(value)[:200]
