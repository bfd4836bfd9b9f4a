"""Builds editor workflows in the shape ComfyUI's frontend saves them (formats 0.4 and 1).

Written for the tests from ComfyUI's documented format (comfyui.md §4.2): nodes with input and
output sockets, links kept twice (on the sockets and in the `links` list), and `widgets_values`
given literally by each test, by position, so the converter's widget table is checked against
values written independently of it.
"""

from __future__ import annotations

from typing import Any

# The sockets ComfyUI's frontend draws for each class: (inputs, outputs) as (name, type).
_LATENT_OUT = [("LATENT", "LATENT")]
_SAMPLER_IN = [("model", "MODEL"), ("positive", "CONDITIONING"), ("negative", "CONDITIONING"),
               ("latent_image", "LATENT")]  # fmt: skip
_COND = [("CONDITIONING", "CONDITIONING")]
_CN_ADVANCED_IN = [("positive", "CONDITIONING"), ("negative", "CONDITIONING"),
                   ("control_net", "CONTROL_NET"), ("image", "IMAGE"), ("vae", "VAE")]  # fmt: skip
SOCKETS: dict[str, tuple[list[tuple[str, str]], list[tuple[str, str]]]] = {
    "CheckpointLoaderSimple": ([], [("MODEL", "MODEL"), ("CLIP", "CLIP"), ("VAE", "VAE")]),
    "CLIPTextEncode": ([("clip", "CLIP")], _COND),
    "CLIPSetLastLayer": ([("clip", "CLIP")], [("CLIP", "CLIP")]),
    "EmptyLatentImage": ([], _LATENT_OUT),
    "KSampler": (_SAMPLER_IN, _LATENT_OUT),
    "KSamplerAdvanced": (_SAMPLER_IN, _LATENT_OUT),
    "VAEDecode": ([("samples", "LATENT"), ("vae", "VAE")], [("IMAGE", "IMAGE")]),
    "VAEDecodeTiled": ([("samples", "LATENT"), ("vae", "VAE")], [("IMAGE", "IMAGE")]),
    "VAEEncode": ([("pixels", "IMAGE"), ("vae", "VAE")], _LATENT_OUT),
    "VAEEncodeTiled": ([("pixels", "IMAGE"), ("vae", "VAE")], _LATENT_OUT),
    "VAEEncodeForInpaint": ([("pixels", "IMAGE"), ("vae", "VAE"), ("mask", "MASK")], _LATENT_OUT),
    "SetLatentNoiseMask": ([("samples", "LATENT"), ("mask", "MASK")], _LATENT_OUT),
    "VAELoader": ([], [("VAE", "VAE")]),
    "ControlNetLoader": ([], [("CONTROL_NET", "CONTROL_NET")]),
    "ControlNetApply": (
        [("conditioning", "CONDITIONING"), ("control_net", "CONTROL_NET"), ("image", "IMAGE")],
        _COND,
    ),
    "ControlNetApplyAdvanced": (
        _CN_ADVANCED_IN,
        [("positive", "CONDITIONING"), ("negative", "CONDITIONING")],
    ),
    "LoraLoader": ([("model", "MODEL"), ("clip", "CLIP")], [("MODEL", "MODEL"), ("CLIP", "CLIP")]),
    "LoraLoaderModelOnly": ([("model", "MODEL")], [("MODEL", "MODEL")]),
    "LoadImage": ([], [("IMAGE", "IMAGE"), ("MASK", "MASK")]),
    "LoadImageMask": ([], [("MASK", "MASK")]),
    "SaveImage": ([("images", "IMAGE")], []),
    "PreviewImage": ([("images", "IMAGE")], []),
    "LatentUpscale": ([("samples", "LATENT")], _LATENT_OUT),
    "LatentUpscaleBy": ([("samples", "LATENT")], _LATENT_OUT),
    "ImageScale": ([("image", "IMAGE")], [("IMAGE", "IMAGE")]),
    "ImageScaleBy": ([("image", "IMAGE")], [("IMAGE", "IMAGE")]),
    "ConditioningCombine": (
        [("conditioning_1", "CONDITIONING"), ("conditioning_2", "CONDITIONING")],
        _COND,
    ),
    "ConditioningSetArea": ([("conditioning", "CONDITIONING")], _COND),
    "ConditioningZeroOut": ([("conditioning", "CONDITIONING")], _COND),
    # Editor-only nodes: a reroute passes anything on; a primitive's output takes the type of
    # the widget it drives; notes have no sockets.
    "Reroute": ([("", "*")], [("", "*")]),
    "PrimitiveNode": ([], [("connect to widget input", "*")]),
    "Note": ([], []),
}


class EditorWorkflow:
    """An editor workflow under construction: add nodes, connect them, then `saved()`."""

    def __init__(self) -> None:
        self.nodes: dict[int, dict[str, Any]] = {}
        self.links: list[tuple[int, int, int, int, int, str]] = []
        self.groups: list[dict[str, Any]] = []

    def add(
        self,
        node_id: int,
        kind: str,
        widgets: list[Any] | None = None,
        *,
        mode: int = 0,
        title: str | None = None,
    ) -> None:
        """A node of class `kind` with its sockets unconnected and `widgets` as `widgets_values`."""
        inputs, outputs = SOCKETS[kind]
        node: dict[str, Any] = {
            "id": node_id,
            "type": kind,
            "pos": [100.0 * (len(self.nodes) % 6), 200.0 * (len(self.nodes) // 6)],
            "size": [315, 98],
            "flags": {},
            "order": len(self.nodes),
            "mode": mode,
            "inputs": [{"name": name, "type": kind_, "link": None} for name, kind_ in inputs],
            "outputs": [
                {"name": name, "type": kind_, "links": [], "slot_index": slot}
                for slot, (name, kind_) in enumerate(outputs)
            ],
            "properties": {"Node name for S&R": kind},
        }
        if widgets is not None:
            node["widgets_values"] = widgets
        if title is not None:
            node["title"] = title
        self.nodes[node_id] = node

    def connect(self, origin: int, slot: int, target: int, name: str, kind: str = "") -> None:
        """Link output `slot` of `origin` to input `name` of `target`.

        An input the target has no socket for is a widget turned into an input: it gets a
        socket carrying `widget: {name}`, as the frontend saves it. `kind` is the link's type
        when the origin's output does not say (a reroute or primitive output).
        """
        source = self.nodes[origin]["outputs"][slot]
        if source["type"] == "*" and kind:
            source["type"] = kind
            if self.nodes[origin]["type"] == "PrimitiveNode":
                source["name"] = kind
                source["widget"] = {"name": name}
        link_type = source["type"]
        link_id = len(self.links) + 1
        sockets = self.nodes[target]["inputs"]
        socket = next((s for s in sockets if s["name"] == name), None)
        if socket is None:
            socket = {"name": name, "type": link_type, "link": None, "widget": {"name": name}}
            sockets.append(socket)
        slot_in = sockets.index(socket)
        socket["link"] = link_id
        source["links"].append(link_id)
        self.links.append((link_id, origin, slot, target, slot_in, link_type))

    def group(self, title: str, bounding: list[float]) -> None:
        self.groups.append({"title": title, "bounding": bounding, "color": "#3f789e",
                            "font_size": 24, "flags": {}})  # fmt: skip

    def saved(self, version: float = 0.4) -> dict[str, Any]:
        """The workflow file: format 0.4 (links as 6-lists) or 1 (links as objects, `state`)."""
        nodes = list(self.nodes.values())
        last_node = max(self.nodes)
        common = {"nodes": nodes, "groups": self.groups, "config": {},
                  "extra": {"ds": {"scale": 1, "offset": [0, 0]}}}  # fmt: skip
        if version == 1:
            links = [
                {"id": i, "origin_id": o, "origin_slot": os, "target_id": t, "target_slot": ts,
                 "type": kind}
                for i, o, os, t, ts, kind in self.links
            ]  # fmt: skip
            groups = [dict(g, id=n) for n, g in enumerate(self.groups, 1)]
            state = {"lastNodeId": last_node, "lastLinkId": len(self.links),
                     "lastGroupId": len(groups), "lastRerouteId": 0}  # fmt: skip
            return {**common, "id": "4b1f6a0e-0000-4000-8000-000000000001", "revision": 0,
                    "version": 1, "state": state, "links": links, "groups": groups}  # fmt: skip
        return {**common, "last_node_id": last_node, "last_link_id": len(self.links),
                "links": [list(link) for link in self.links], "version": 0.4}  # fmt: skip
