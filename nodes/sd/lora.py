"""Merge LoRA files into copies of a UNet's and text encoders' weights: W' = W + s * (alpha/rank) * up @ down.

Key styles read:
- kohya: `lora_unet_<module>`, `lora_te_<module>` (SDXL: `lora_te1_`, `lora_te2_`) with
  `.lora_down.weight`, `.lora_up.weight` and `.alpha`; module names are diffusers' with dots as
  underscores (SD1/SD2) or the original UNet's (`input_blocks_4_1_...`, as kohya writes SDXL);
- diffusers/PEFT: `unet.<module>.lora_A.weight` / `.lora_B.weight` (or `.lora.down/.lora.up`),
  `text_encoder.` and `text_encoder_2.`, with an optional `<module>.alpha`; without one, alpha = rank.
Convolution LoRAs (LoCon: kernel on `down`, 1x1 `up`) merge too. Any key in no known style, or naming a
layer the model lacks, raises `CheckpointError` listing them; LoHa/LoKr/DoRA files therefore fail loudly.

Memory: the patched model shares every untouched tensor with the input model and copies only the
targeted weights, so cached inputs are never mutated. Measured on the shipped configs, a LoRA on every
attention q/k/v/out weight copies 11% of the SD1 UNet's parameters (37% of SDXL's), one on all
transformer linears 31% (86%). Patching in place and restoring later, as ComfyUI does, would copy
nothing but would change models that other cached nodes still hold.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from nodes.sd.loading.weight_files import CheckpointError, read_state_dict
from nodes.sd.values import ClipModel, UNetModel

if TYPE_CHECKING:
    import torch

Component = Literal["unet", "text_encoder", "text_encoder_2"]

_KOHYA = re.compile(
    r"^lora_(?P<comp>unet|te1|te2|te)_(?P<name>[^.]+)\.(?P<kind>lora_down\.weight|lora_up\.weight|alpha)$"
)
_DIFFUSERS = re.compile(
    r"^(?P<comp>unet|text_encoder_2|text_encoder)\.(?P<name>.+?)\."
    r"(?P<kind>lora_A\.weight|lora_B\.weight|lora\.down\.weight|lora\.up\.weight|alpha)$"
)
_KIND = {
    "lora_down.weight": "down",
    "lora_A.weight": "down",
    "lora.down.weight": "down",
    "lora_up.weight": "up",
    "lora_B.weight": "up",
    "lora.up.weight": "up",
    "alpha": "alpha",
}
_COMPONENT: dict[str, Component] = {
    "unet": "unet",
    "te": "text_encoder",
    "te1": "text_encoder",
    "te2": "text_encoder_2",
    "text_encoder": "text_encoder",
    "text_encoder_2": "text_encoder_2",
}


@dataclass(frozen=True)
class LoraLayer:
    """One low-rank update, named as in the file (kohya's underscored or diffusers' dotted names)."""

    component: Component
    name: str
    down: torch.Tensor  # (rank, in[, kh, kw])
    up: torch.Tensor  # (out, rank[, 1, 1])
    alpha: float | None
    underscored: bool

    @property
    def scale(self) -> float:
        """alpha / rank; 1.0 when the file stores no alpha."""
        return 1.0 if self.alpha is None else self.alpha / self.down.shape[0]

    def delta(self, weight: torch.Tensor) -> torch.Tensor:
        """scale * up @ down, in fp32 on the weight's device, shaped like `weight`."""
        import torch

        up = self.up.to(weight.device, torch.float32).flatten(1)
        down = self.down.to(weight.device, torch.float32).flatten(1)
        product = up @ down
        if product.numel() != weight.numel():
            raise CheckpointError(
                f"LoRA layer {self.name}: up {tuple(self.up.shape)} @ down {tuple(self.down.shape)} "
                f"does not fit the weight {tuple(weight.shape)}",
                code="lora_mis_shaped",
                layer=self.name,
            )
        return product.reshape(weight.shape) * self.scale


def parse_lora(
    state_dict: Mapping[str, torch.Tensor], path: str | Path | None = None
) -> list[LoraLayer]:
    """The LoRA layers of a state dict in kohya or diffusers/PEFT style; unknown keys are an error."""
    parts: dict[tuple[Component, str, bool], dict[str, Any]] = {}
    unknown = []
    for key, tensor in state_dict.items():
        match = _KOHYA.match(key) or _DIFFUSERS.match(key)
        if match is None:
            unknown.append(key)
            continue
        underscored = match.re is _KOHYA
        slot = parts.setdefault((_COMPONENT[match["comp"]], match["name"], underscored), {})
        slot[_KIND[match["kind"]]] = tensor
    incomplete = sorted(name for (_, name, _), p in parts.items() if not {"down", "up"} <= p.keys())
    name = Path(path).name if path else "LoRA"
    if unknown or incomplete:
        problems = []
        if unknown:
            problems.append(
                f"{len(unknown)} keys in no known LoRA style ({_listing(sorted(unknown))})"
            )
        if incomplete:
            problems.append(
                f"{len(incomplete)} layers lack an up or down weight ({_listing(incomplete)})"
            )
        raise CheckpointError(
            f"{name}: {'; '.join(problems)}",
            code="lora_unknown_keys",
            path=path,
            unknown=sorted(unknown),
            incomplete=incomplete,
        )
    if not parts:
        raise CheckpointError(f"{name} holds no LoRA layers", code="lora_empty", path=path)
    return [
        LoraLayer(
            component=component,
            name=layer,
            down=p["down"],
            up=p["up"],
            alpha=float(p["alpha"]) if "alpha" in p else None,
            underscored=underscored,
        )
        for (component, layer, underscored), p in parts.items()
    ]


def apply_lora(
    unet: UNetModel | None,
    clip: ClipModel | None,
    path: str | Path,
    strength_model: float = 1.0,
    strength_clip: float = 1.0,
    name: str | None = None,
) -> tuple[UNetModel | None, ClipModel | None]:
    """Copies of `unet` and `clip` with the LoRA at `path` merged; the inputs are left untouched.

    A missing model (None) or a strength of 0 leaves that side as it was, and its layers are skipped.
    """
    file = Path(path)
    label = name or file.stem
    layers = parse_lora(read_state_dict(file)[0], file)
    by_component: dict[Component, list[LoraLayer]] = {}
    for layer in layers:
        by_component.setdefault(layer.component, []).append(layer)

    new_unet = unet
    if unet is not None and strength_model != 0 and by_component.get("unet"):
        patched = merged_copy(
            unet.unet, by_component["unet"], strength_model, file, unet.unet.config
        )
        new_unet = dataclasses.replace(
            unet, unet=patched, loras=(*unet.loras, (label, strength_model))
        )

    new_clip = clip
    clip_layers = by_component.get("text_encoder", []) + by_component.get("text_encoder_2", [])
    if clip is not None and strength_clip != 0 and clip_layers:
        encoders: dict[str, Any] = {}
        components: tuple[Component, ...] = ("text_encoder", "text_encoder_2")
        for component in components:
            target = getattr(clip, component)
            found = by_component.get(component)
            if not found:
                continue
            if target is None:
                raise CheckpointError(
                    f"{file.name} patches {component} but this {clip.family} model has none",
                    code="lora_wrong_family",
                    path=file,
                )
            encoders[component] = merged_copy(target, found, strength_clip, file)
        new_clip = dataclasses.replace(
            clip, **encoders, loras=(*clip.loras, (label, strength_clip))
        )
    return new_unet, new_clip


def merged_copy(
    model: Any,
    layers: Iterable[LoraLayer],
    strength: float,
    path: str | Path | None = None,
    unet_config: Mapping[str, Any] | None = None,
) -> Any:
    """A copy of `model` sharing all untouched tensors, with each layer's update merged at `strength`."""
    import torch

    names = _module_names(model, unet_config)
    targets: dict[str, list[LoraLayer]] = {}
    unmatched = []
    for layer in layers:
        target = names.get(layer.name)
        if target is None:
            unmatched.append(layer.name)
        else:
            targets.setdefault(target, []).append(layer)
    if unmatched:
        kind = type(model).__name__
        raise CheckpointError(
            f"{Path(path).name if path else 'LoRA'}: {len(unmatched)} layers match no layer of the "
            f"{kind} ({_listing(sorted(unmatched))})",
            code="lora_unmatched",
            path=path,
            unmatched=sorted(unmatched),
        )

    # Sharing every parameter and buffer through deepcopy's memo copies only the module objects.
    memo = {id(t): t for t in itertools.chain(model.parameters(), model.buffers())}
    clone = copy.deepcopy(model, memo)
    with torch.no_grad():
        for target, found in targets.items():
            module = clone.get_submodule(target)
            weight = module.weight
            delta = sum(layer.delta(weight) for layer in found)
            merged = (weight.float() + strength * delta).to(weight.dtype)
            module.weight = torch.nn.Parameter(merged, requires_grad=False)
    return clone


def _module_names(model: Any, unet_config: Mapping[str, Any] | None) -> dict[str, str]:
    """Every name a LoRA file may use for a weighted layer → the layer's name in `model`."""
    names: dict[str, str] = {}
    for name, module in model.named_modules():
        if getattr(module, "weight", None) is None:
            continue
        # transformers 5's CLIPTextModel dropped the `text_model.` level LoRA files still name.
        spellings = [name] if name.startswith("text_model.") else [name, f"text_model.{name}"]
        if unet_config is not None:
            original = _original_unet_name(name, unet_config)
            if original is not None:
                spellings.append(original)
        for spelling in spellings:
            names[spelling] = name
            names[spelling.replace(".", "_")] = name
    return names


_UNET_TOP = {
    "time_embedding.linear_1": "time_embed.0",
    "time_embedding.linear_2": "time_embed.2",
    "add_embedding.linear_1": "label_emb.0.0",
    "add_embedding.linear_2": "label_emb.0.2",
    "conv_in": "input_blocks.0.0",
    "conv_norm_out": "out.0",
    "conv_out": "out.2",
}
_RESNET = {
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "time_emb_proj": "emb_layers.1",
    "conv_shortcut": "skip_connection",
}


def _original_unet_name(name: str, config: Mapping[str, Any]) -> str | None:
    """The original (LDM/sgm) name of a diffusers UNet module, as kohya's SDXL LoRAs spell it."""
    if name in _UNET_TOP:
        return _UNET_TOP[name]
    parts = name.split(".")
    layers = int(config["layers_per_block"])
    up_attention = [t.startswith("CrossAttn") for t in config["up_block_types"]]
    if parts[0] == "mid_block" and len(parts) > 3:
        index = {"attentions": 1, "resnets": 2 * int(parts[2])}[parts[1]]
        rest = parts[3:]
        return ".".join(["middle_block", str(index), *_resnet_rest(parts[1], rest)])
    if parts[0] not in ("down_blocks", "up_blocks") or len(parts) < 4:
        return None
    block, kind, index, rest = int(parts[1]), parts[2], int(parts[3]), parts[4:]
    if parts[0] == "down_blocks":
        if kind == "downsamplers":
            return ".".join(["input_blocks", str((block + 1) * (layers + 1)), "0", "op", *rest[1:]])
        slot = "0" if kind == "resnets" else "1"
        position = 1 + block * (layers + 1) + index
        return ".".join(["input_blocks", str(position), slot, *_resnet_rest(kind, rest)])
    if kind == "upsamplers":
        slot = "2" if up_attention[block] else "1"
        return ".".join(["output_blocks", str(block * (layers + 1) + layers), slot, *rest])
    slot = "0" if kind == "resnets" else "1"
    position = block * (layers + 1) + index
    return ".".join(["output_blocks", str(position), slot, *_resnet_rest(kind, rest)])


def _resnet_rest(kind: str, rest: list[str]) -> list[str]:
    if kind == "resnets" and rest and rest[0] in _RESNET:
        return [_RESNET[rest[0]], *rest[1:]]
    return rest


def _listing(items: list[str], limit: int = 8) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")
