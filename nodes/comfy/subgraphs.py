"""Subgraphs of ComfyUI's editor format (`definitions.subgraphs`), flattened the way ComfyUI queues them.

An instance of a subgraph is a node whose `type` is the subgraph's id; its inner nodes get
execution ids "instance:inner" (as in ComfyUI's API format), links from the subgraph's input
node (-10) are fed by what feeds the instance, and consumers of the instance's outputs are fed by
what reaches the subgraph's output node (-20). Widgets promoted onto the instance are not read:
inner nodes keep their own widget values.
"""

from __future__ import annotations

import copy
from typing import Any

INPUT_NODE, OUTPUT_NODE = -10, -20
MAX_DEPTH = 8


def _link_record(link: Any) -> dict[str, Any] | None:
    if isinstance(link, list) and len(link) >= 6:
        return {"id": link[0], "origin_id": link[1], "origin_slot": link[2],
                "target_id": link[3], "target_slot": link[4], "type": link[5]}  # fmt: skip
    if isinstance(link, dict) and "id" in link:
        return dict(link)
    return None


def flatten_subgraphs(workflow: dict[str, Any]) -> dict[str, Any]:
    """The workflow with every subgraph instance replaced by its inner nodes (nested ones too)."""
    definitions = (workflow.get("definitions") or {}).get("subgraphs") or []
    subgraphs = {d["id"]: d for d in definitions if isinstance(d, dict) and "id" in d}
    if not subgraphs:
        return workflow
    nodes = [n for n in workflow.get("nodes", []) if isinstance(n, dict)]
    links = [r for r in map(_link_record, workflow.get("links", [])) if r is not None]
    for _ in range(MAX_DEPTH):
        instances = [n for n in nodes if n.get("type") in subgraphs]
        if not instances:
            break
        for instance in instances:
            nodes, links = _expand(instance, subgraphs[instance["type"]], nodes, links)
    return {**workflow, "nodes": nodes, "links": links}


def _expand(
    instance: dict[str, Any],
    definition: dict[str, Any],
    nodes: list[dict[str, Any]],
    links: list[dict[str, Any]],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    prefix = str(instance.get("id"))
    by_id = {link["id"]: link for link in links}
    inner_links = [r for r in map(_link_record, definition.get("links", [])) if r is not None]
    instance_inputs = instance.get("inputs") or []

    def feeding(slot: int) -> dict[str, Any] | None:
        """The outer link feeding the instance's input `slot`."""
        link_id = instance_inputs[slot].get("link") if slot < len(instance_inputs) else None
        return by_id.get(link_id)

    def inner_id(node_id: Any) -> str:
        return f"{prefix}:{node_id}"

    new_links: list[dict[str, Any]] = []
    renamed: dict[Any, Any] = {}  # inner link id -> the link id inner nodes now read
    for link in inner_links:
        if link["target_id"] == OUTPUT_NODE:
            continue
        if link["origin_id"] == INPUT_NODE:
            outer = feeding(int(link["origin_slot"]))
            renamed[link["id"]] = None if outer is None else outer["id"]
            continue
        new_id = f"{prefix}:{link['id']}"
        renamed[link["id"]] = new_id
        new_links.append({**link, "id": new_id, "origin_id": inner_id(link["origin_id"]),
                          "target_id": inner_id(link["target_id"])})  # fmt: skip
    # Consumers of the instance's outputs read what reaches the subgraph's output node.
    sources: dict[int, tuple[Any, int] | None] = {}
    for link in inner_links:
        if link["target_id"] != OUTPUT_NODE:
            continue
        if link["origin_id"] == INPUT_NODE:
            outer = feeding(int(link["origin_slot"]))
            sources[int(link["target_slot"])] = (
                None if outer is None else (outer["origin_id"], int(outer["origin_slot"]))
            )
        else:
            sources[int(link["target_slot"])] = (
                inner_id(link["origin_id"]),
                int(link["origin_slot"]),
            )
    kept_links = []
    for link in links:
        if str(link["origin_id"]) == prefix:
            source = sources.get(int(link["origin_slot"]))
            if source is None:
                continue
            link = {**link, "origin_id": source[0], "origin_slot": source[1]}
        kept_links.append(link)
    inner_nodes = []
    for node in definition.get("nodes", []):
        if not isinstance(node, dict):
            continue
        copied = copy.deepcopy(node)
        copied["id"] = inner_id(node.get("id"))
        for socket in copied.get("inputs") or []:
            if isinstance(socket, dict) and socket.get("link") is not None:
                socket["link"] = renamed.get(socket["link"])
        if instance.get("mode") in (2, 4):
            copied["mode"] = instance["mode"]
        inner_nodes.append(copied)
    others = [n for n in nodes if n is not instance]
    return others + inner_nodes, kept_links + new_links
