"""The one table from ComfyUI's node classes onto ours: types, input names, widget order, outputs.

Each `ClassMapping` says which of our node types a ComfyUI `class_type` becomes, how its input
names translate, the order of its widgets in an editor workflow's `widgets_values` (with the
hidden "control after generate" slot), and which of our outputs each ComfyUI output index is.
Values that are spelled differently (sampler names, "enable"/"disable") are translated in
`nodes/comfy/values.py`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# Marks the hidden widget a seed carries in `widgets_values` ("fixed", "randomize", ...).
CONTROL = "<control after generate>"
# Marks LoadImage's upload button, whose value ("image") trails the file name.
UPLOAD = "<upload>"
CONTROL_VALUES = frozenset({"fixed", "increment", "decrement", "randomize"})


def is_control_value(value: object) -> bool:
    """Whether a `widgets_values` entry is a seed's hidden control value (older files: a bool).

    Compared by type as well: a step count of 1 equals `True` in Python but is no control value.
    """
    return isinstance(value, bool) or (isinstance(value, str) and value in CONTROL_VALUES)


# Editor-only node types: they never run, the converter resolves them away.
REROUTE = "Reroute"
PRIMITIVE = "PrimitiveNode"
NOTES = frozenset({"Note", "MarkdownNote"})
# Keep the ComfyUI conventions (nearest timestep, CPU per-step noise from the seed, truncating
# 8-bit PNGs) on in converted workflows, so that a seed gives ComfyUI's picture.
SAMPLE_CONVENTION = {"convention": "comfyui"}
SAVE_CONVENTION = {"quantize": "truncate"}


@dataclass(frozen=True)
class ClassMapping:
    """How one ComfyUI class_type maps onto one of our node types."""

    node_type: str
    # ComfyUI input name -> our input name, in ComfyUI's declaration order.
    inputs: Mapping[str, str]
    # Our output name for each ComfyUI output index.
    outputs: tuple[str, ...]
    # Widget input names in `widgets_values` order, with CONTROL / UPLOAD markers.
    widgets: tuple[str, ...] = ()
    # ComfyUI inputs that may be absent (ComfyUI's optional ones, and trailing widgets newer
    # versions added).
    optional: frozenset[str] = frozenset()
    # ComfyUI inputs we accept and ignore (they change nothing here).
    ignored: frozenset[str] = frozenset()
    # Our inputs set on every converted node.
    constants: Mapping[str, Any] = field(default_factory=dict)
    # ComfyUI's display name and category, for /object_info.
    display_name: str = ""
    category: str = ""
    output_types: tuple[str, ...] = ()


CLASSES: Mapping[str, ClassMapping] = {
    "CheckpointLoaderSimple": ClassMapping(
        "LoadCheckpoint",
        {"ckpt_name": "checkpoint"},
        ("model", "clip", "vae"),
        widgets=("ckpt_name",),
        display_name="Load Checkpoint",
        category="loaders",
        output_types=("MODEL", "CLIP", "VAE"),
    ),
    "CLIPTextEncode": ClassMapping(
        "EncodeText",
        {"text": "text", "clip": "clip"},
        ("conditioning",),
        widgets=("text",),
        display_name="CLIP Text Encode (Prompt)",
        category="conditioning",
        output_types=("CONDITIONING",),
    ),
    # Resolved away by the converter: it sets clip_skip on the text encoders it feeds.
    "CLIPSetLastLayer": ClassMapping(
        "",
        {"clip": "clip", "stop_at_clip_layer": "clip_skip"},
        ("clip",),
        widgets=("stop_at_clip_layer",),
        display_name="CLIP Set Last Layer",
        category="conditioning",
        output_types=("CLIP",),
    ),
    "EmptyLatentImage": ClassMapping(
        "EmptyLatent",
        {"width": "width", "height": "height", "batch_size": "batch_size"},
        ("latent",),
        widgets=("width", "height", "batch_size"),
        display_name="Empty Latent Image",
        category="latent",
        output_types=("LATENT",),
    ),
    "KSampler": ClassMapping(
        "Sample",
        {
            "model": "model",
            "seed": "seed",
            "steps": "steps",
            "cfg": "cfg",
            "sampler_name": "sampler",
            "scheduler": "scheduler",
            "positive": "positive",
            "negative": "negative",
            "latent_image": "latent",
            "denoise": "denoise",
        },
        ("latent",),
        widgets=("seed", CONTROL, "steps", "cfg", "sampler_name", "scheduler", "denoise"),
        constants=SAMPLE_CONVENTION,
        display_name="KSampler",
        category="sampling",
        output_types=("LATENT",),
    ),
    "KSamplerAdvanced": ClassMapping(
        "SampleSteps",
        {
            "model": "model",
            "add_noise": "add_noise",
            "noise_seed": "seed",
            "steps": "steps",
            "cfg": "cfg",
            "sampler_name": "sampler",
            "scheduler": "scheduler",
            "positive": "positive",
            "negative": "negative",
            "latent_image": "latent",
            "start_at_step": "start_at_step",
            "end_at_step": "end_at_step",
            "return_with_leftover_noise": "return_with_leftover_noise",
        },
        ("latent",),
        widgets=(
            "add_noise",
            "noise_seed",
            CONTROL,
            "steps",
            "cfg",
            "sampler_name",
            "scheduler",
            "start_at_step",
            "end_at_step",
            "return_with_leftover_noise",
        ),
        constants=SAMPLE_CONVENTION,
        display_name="KSampler (Advanced)",
        category="sampling",
        output_types=("LATENT",),
    ),
    "VAEDecode": ClassMapping(
        "VAEDecode",
        {"samples": "latent", "vae": "vae"},
        ("image",),
        display_name="VAE Decode",
        category="latent",
        output_types=("IMAGE",),
    ),
    "VAEEncode": ClassMapping(
        "VAEEncode",
        {"pixels": "image", "vae": "vae"},
        ("latent",),
        display_name="VAE Encode",
        category="latent",
        output_types=("LATENT",),
    ),
    "VAEDecodeTiled": ClassMapping(
        "VAEDecodeTiled",
        {"samples": "latent", "vae": "vae", "tile_size": "tile_size", "overlap": "overlap"},
        ("image",),
        widgets=("tile_size", "overlap", "temporal_size", "temporal_overlap"),
        optional=frozenset({"overlap", "temporal_size", "temporal_overlap"}),
        ignored=frozenset({"temporal_size", "temporal_overlap"}),
        display_name="VAE Decode (Tiled)",
        category="latent",
        output_types=("IMAGE",),
    ),
    "VAEEncodeTiled": ClassMapping(
        "VAEEncodeTiled",
        {"pixels": "image", "vae": "vae", "tile_size": "tile_size", "overlap": "overlap"},
        ("latent",),
        widgets=("tile_size", "overlap", "temporal_size", "temporal_overlap"),
        optional=frozenset({"overlap", "temporal_size", "temporal_overlap"}),
        ignored=frozenset({"temporal_size", "temporal_overlap"}),
        display_name="VAE Encode (Tiled)",
        category="latent",
        output_types=("LATENT",),
    ),
    "VAEEncodeForInpaint": ClassMapping(
        "VAEEncodeForInpaint",
        {"pixels": "image", "vae": "vae", "mask": "mask", "grow_mask_by": "grow_mask_by"},
        ("latent",),
        widgets=("grow_mask_by",),
        display_name="VAE Encode (for Inpainting)",
        category="latent/inpaint",
        output_types=("LATENT",),
    ),
    "SetLatentNoiseMask": ClassMapping(
        "SetLatentNoiseMask",
        {"samples": "latent", "mask": "mask"},
        ("latent",),
        display_name="Set Latent Noise Mask",
        category="latent/inpaint",
        output_types=("LATENT",),
    ),
    "VAELoader": ClassMapping(
        "LoadVAE",
        {"vae_name": "vae"},
        ("vae",),
        widgets=("vae_name",),
        display_name="Load VAE",
        category="loaders",
        output_types=("VAE",),
    ),
    "ControlNetLoader": ClassMapping(
        "LoadControlNet",
        {"control_net_name": "control_net"},
        ("control_net",),
        widgets=("control_net_name",),
        display_name="Load ControlNet Model",
        category="loaders",
        output_types=("CONTROL_NET",),
    ),
    "ControlNetApply": ClassMapping(
        "ApplyControlNetToPrompt",
        {
            "conditioning": "conditioning",
            "control_net": "control_net",
            "image": "image",
            "strength": "strength",
        },
        ("conditioning",),
        widgets=("strength",),
        display_name="Apply ControlNet (OLD)",
        category="conditioning/controlnet",
        output_types=("CONDITIONING",),
    ),
    "ControlNetApplyAdvanced": ClassMapping(
        "ApplyControlNet",
        {
            "positive": "positive",
            "negative": "negative",
            "control_net": "control_net",
            "image": "image",
            "strength": "strength",
            "start_percent": "start_percent",
            "end_percent": "end_percent",
        },
        ("positive", "negative"),
        widgets=("strength", "start_percent", "end_percent"),
        optional=frozenset({"vae"}),
        ignored=frozenset({"vae"}),
        display_name="Apply ControlNet",
        category="conditioning/controlnet",
        output_types=("CONDITIONING", "CONDITIONING"),
    ),
    "LoraLoader": ClassMapping(
        "LoadLora",
        {
            "model": "model",
            "clip": "clip",
            "lora_name": "lora",
            "strength_model": "strength_model",
            "strength_clip": "strength_clip",
        },
        ("model", "clip"),
        widgets=("lora_name", "strength_model", "strength_clip"),
        display_name="Load LoRA",
        category="loaders",
        output_types=("MODEL", "CLIP"),
    ),
    "LoraLoaderModelOnly": ClassMapping(
        "LoadLoraModelOnly",
        {"model": "model", "lora_name": "lora", "strength_model": "strength_model"},
        ("model",),
        widgets=("lora_name", "strength_model"),
        display_name="LoraLoaderModelOnly",
        category="loaders",
        output_types=("MODEL",),
    ),
    "LoadImage": ClassMapping(
        "LoadImage",
        {"image": "image"},
        ("image", "mask"),
        widgets=("image", UPLOAD),
        ignored=frozenset({"upload"}),
        optional=frozenset({"upload"}),
        display_name="Load Image",
        category="image",
        output_types=("IMAGE", "MASK"),
    ),
    "LoadImageMask": ClassMapping(
        "LoadImageMask",
        {"image": "image", "channel": "channel"},
        ("mask",),
        widgets=("image", "channel", UPLOAD),
        ignored=frozenset({"upload"}),
        optional=frozenset({"upload"}),
        display_name="Load Image (as Mask)",
        category="mask",
        output_types=("MASK",),
    ),
    "SaveImage": ClassMapping(
        "SaveImage",
        {"images": "images", "filename_prefix": "prefix"},
        (),
        widgets=("filename_prefix",),
        constants=SAVE_CONVENTION,
        display_name="Save Image",
        category="image",
    ),
    "PreviewImage": ClassMapping(
        "PreviewImage",
        {"images": "images"},
        (),
        constants=SAVE_CONVENTION,
        display_name="Preview Image",
        category="image",
    ),
    "LatentUpscale": ClassMapping(
        "UpscaleLatent",
        {
            "samples": "latent",
            "upscale_method": "method",
            "width": "width",
            "height": "height",
            "crop": "crop",
        },
        ("latent",),
        widgets=("upscale_method", "width", "height", "crop"),
        display_name="Upscale Latent",
        category="latent",
        output_types=("LATENT",),
    ),
    "LatentUpscaleBy": ClassMapping(
        "UpscaleLatentBy",
        {"samples": "latent", "upscale_method": "method", "scale_by": "scale_by"},
        ("latent",),
        widgets=("upscale_method", "scale_by"),
        display_name="Upscale Latent By",
        category="latent",
        output_types=("LATENT",),
    ),
    "ImageScale": ClassMapping(
        "ScaleImage",
        {
            "image": "image",
            "upscale_method": "method",
            "width": "width",
            "height": "height",
            "crop": "crop",
        },
        ("image",),
        widgets=("upscale_method", "width", "height", "crop"),
        display_name="Upscale Image",
        category="image/upscaling",
        output_types=("IMAGE",),
    ),
    "ImageScaleBy": ClassMapping(
        "ScaleImageBy",
        {"image": "image", "upscale_method": "method", "scale_by": "scale_by"},
        ("image",),
        widgets=("upscale_method", "scale_by"),
        display_name="Upscale Image By",
        category="image/upscaling",
        output_types=("IMAGE",),
    ),
    "ConditioningCombine": ClassMapping(
        "CombineConditioning",
        {"conditioning_1": "first", "conditioning_2": "second"},
        ("conditioning",),
        display_name="Conditioning (Combine)",
        category="conditioning",
        output_types=("CONDITIONING",),
    ),
    "ConditioningSetArea": ClassMapping(
        "SetConditioningArea",
        {
            "conditioning": "conditioning",
            "width": "width",
            "height": "height",
            "x": "x",
            "y": "y",
            "strength": "strength",
        },
        ("conditioning",),
        widgets=("width", "height", "x", "y", "strength"),
        display_name="Conditioning (Set Area)",
        category="conditioning",
        output_types=("CONDITIONING",),
    ),
    "ConditioningZeroOut": ClassMapping(
        "ZeroConditioning",
        {"conditioning": "conditioning"},
        ("conditioning",),
        display_name="ConditioningZeroOut",
        category="advanced/conditioning",
        output_types=("CONDITIONING",),
    ),
}

# Classes the converter removes, re-pointing their consumers at one of their inputs.
PASS_THROUGH = {"CLIPSetLastLayer": "clip"}


def comfy_input_of(class_type: str, our_input: str) -> str:
    """The ComfyUI input name for one of our inputs of a converted node (ours if unmapped)."""
    mapping = CLASSES.get(class_type)
    if mapping is None:
        return our_input
    for theirs, ours in mapping.inputs.items():
        if ours == our_input:
            return theirs
    return our_input
