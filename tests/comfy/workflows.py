"""ComfyUI workflows written for these tests to ComfyUI's documented shapes, and our equivalents.

Each `api_*` is an API-format prompt as ComfyUI's "Save (API)" writes it; `workflow_txt2img` is
an editor workflow (format 0.4) with a reroute, a primitive node, a muted and a bypassed node,
a note and a group. Each `ours_*` is the graph a person would write by hand for the same job.
"""

from __future__ import annotations

from typing import Any

CKPT = "tiny-sd1.safetensors"
SIZE, STEPS = 64, 2


def _ckpt() -> dict[str, Any]:
    return {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": CKPT}}


def _text(text: str, clip: list[Any]) -> dict[str, Any]:
    return {"class_type": "CLIPTextEncode", "inputs": {"text": text, "clip": clip}}


def _ksampler(latent: list[Any], seed: int = 7, **changes: Any) -> dict[str, Any]:
    inputs = {
        "seed": seed,
        "steps": STEPS,
        "cfg": 8.0,
        "sampler_name": "euler_ancestral",
        "scheduler": "karras",
        "denoise": 1.0,
        "model": ["4", 0],
        "positive": ["6", 0],
        "negative": ["7", 0],
        "latent_image": latent,
    }
    inputs.update(changes)
    return {"class_type": "KSampler", "inputs": inputs, "_meta": {"title": "KSampler"}}


def api_txt2img() -> dict[str, Any]:
    return {
        "4": _ckpt(),
        "10": {"class_type": "CLIPSetLastLayer", "inputs": {"stop_at_clip_layer": -2, "clip": ["4", 1]}},
        "6": _text("a red fox", ["10", 0]),
        "7": _text("blurry", ["4", 1]),
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": SIZE, "height": SIZE, "batch_size": 1}},
        "3": _ksampler(["5", 0]),
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "t2i", "images": ["8", 0]}},
    }  # fmt: skip


def _ours_base(prefix: str, clip_skip: int = 2) -> dict[str, Any]:
    return {
        "ckpt": {"type": "LoadCheckpoint", "inputs": {"checkpoint": CKPT}},
        "pos": {"type": "EncodeText", "inputs": {"text": "a red fox", "clip_skip": clip_skip}, "links": {"clip": "ckpt.clip"}},
        "neg": {"type": "EncodeText", "inputs": {"text": "blurry"}, "links": {"clip": "ckpt.clip"}},
        "save": {"type": "SaveImage", "inputs": {"prefix": prefix, "quantize": "truncate"}, "links": {"images": "decode.image"}},
        "decode": {"type": "VAEDecode", "links": {"vae": "ckpt.vae", "latent": "sample.latent"}},
    }  # fmt: skip


def _sample(latent: str, **inputs: Any) -> dict[str, Any]:
    values = {"seed": 7, "steps": STEPS, "cfg": 8.0, "sampler": "euler_ancestral",
              "scheduler": "karras", "denoise": 1.0, "convention": "comfyui"}  # fmt: skip
    values.update(inputs)
    links = {"model": "ckpt.model", "positive": "pos.conditioning", "negative": "neg.conditioning"}
    return {"type": "Sample", "inputs": values, "links": {**links, "latent": latent}}


def ours_txt2img() -> dict[str, Any]:
    nodes = _ours_base("hand_t2i")
    nodes["empty"] = {"type": "EmptyLatent", "inputs": {"width": SIZE, "height": SIZE, "batch_size": 1}}  # fmt: skip
    nodes["sample"] = _sample("empty.latent")
    return {"version": 1, "nodes": nodes}


def workflow_txt2img() -> dict[str, Any]:
    """api_txt2img as the editor saves it, plus a reroute, a primitive seed, a muted SaveImage,
    a bypassed LatentUpscaleBy between sampler and decoder, a note and a group."""
    links = [
        [1, 4, 0, 3, 0, "MODEL"],
        [2, 4, 1, 10, 0, "CLIP"],
        [3, 10, 0, 6, 0, "CLIP"],
        [4, 4, 1, 7, 0, "CLIP"],
        [5, 6, 0, 3, 1, "CONDITIONING"],
        [6, 7, 0, 3, 2, "CONDITIONING"],
        [7, 5, 0, 3, 3, "LATENT"],
        [8, 3, 0, 12, 0, "LATENT"],
        [9, 12, 0, 8, 0, "LATENT"],
        [10, 4, 2, 11, 0, "*"],
        [11, 11, 0, 8, 1, "VAE"],
        [12, 8, 0, 9, 0, "IMAGE"],
        [13, 8, 0, 13, 0, "IMAGE"],
        [14, 14, 0, 3, 4, "INT"],
    ]
    nodes = [
        {"id": 4, "type": "CheckpointLoaderSimple", "pos": [26, 474], "size": [315, 98], "mode": 0,
         "inputs": [], "outputs": [{"name": "MODEL", "type": "MODEL", "links": [1]},
                                    {"name": "CLIP", "type": "CLIP", "links": [2, 4]},
                                    {"name": "VAE", "type": "VAE", "links": [10]}],
         "widgets_values": [CKPT]},
        {"id": 10, "type": "CLIPSetLastLayer", "pos": [380, 120], "mode": 0,
         "inputs": [{"name": "clip", "type": "CLIP", "link": 2}],
         "outputs": [{"name": "CLIP", "type": "CLIP", "links": [3]}], "widgets_values": [-2]},
        {"id": 6, "type": "CLIPTextEncode", "pos": [415, 186], "mode": 0, "title": "Positive",
         "inputs": [{"name": "clip", "type": "CLIP", "link": 3}],
         "outputs": [{"name": "CONDITIONING", "type": "CONDITIONING", "links": [5]}],
         "widgets_values": ["a red fox"]},
        {"id": 7, "type": "CLIPTextEncode", "pos": [413, 389], "mode": 0,
         "inputs": [{"name": "clip", "type": "CLIP", "link": 4}],
         "outputs": [{"name": "CONDITIONING", "type": "CONDITIONING", "links": [6]}],
         "widgets_values": ["blurry"]},
        {"id": 5, "type": "EmptyLatentImage", "pos": [473, 609], "mode": 0, "inputs": [],
         "outputs": [{"name": "LATENT", "type": "LATENT", "links": [7]}],
         "widgets_values": [SIZE, SIZE, 1]},
        {"id": 3, "type": "KSampler", "pos": [863, 186], "mode": 0,
         "inputs": [{"name": "model", "type": "MODEL", "link": 1},
                    {"name": "positive", "type": "CONDITIONING", "link": 5},
                    {"name": "negative", "type": "CONDITIONING", "link": 6},
                    {"name": "latent_image", "type": "LATENT", "link": 7},
                    {"name": "seed", "type": "INT", "link": 14, "widget": {"name": "seed"}}],
         "outputs": [{"name": "LATENT", "type": "LATENT", "links": [8]}],
         # The seed widget is driven by the primitive; its stale value here must lose.
         "widgets_values": [123, "randomize", STEPS, 8, "euler_ancestral", "karras", 1]},
        {"id": 14, "type": "PrimitiveNode", "pos": [600, 40], "mode": 0, "inputs": [],
         "outputs": [{"name": "INT", "type": "INT", "links": [14], "widget": {"name": "seed"}}],
         "widgets_values": [7, "fixed"]},
        {"id": 12, "type": "LatentUpscaleBy", "pos": [1100, 186], "mode": 4,
         "inputs": [{"name": "samples", "type": "LATENT", "link": 8}],
         "outputs": [{"name": "LATENT", "type": "LATENT", "links": [9]}],
         "widgets_values": ["nearest-exact", 2.0]},
        {"id": 11, "type": "Reroute", "pos": [1000, 500], "mode": 0,
         "inputs": [{"name": "", "type": "*", "link": 10}],
         "outputs": [{"name": "", "type": "VAE", "links": [11]}]},
        {"id": 8, "type": "VAEDecode", "pos": [1209, 188], "mode": 0,
         "inputs": [{"name": "samples", "type": "LATENT", "link": 9},
                    {"name": "vae", "type": "VAE", "link": 11}],
         "outputs": [{"name": "IMAGE", "type": "IMAGE", "links": [12, 13]}], "widgets_values": []},
        {"id": 9, "type": "SaveImage", "pos": [1451, 189], "mode": 0,
         "inputs": [{"name": "images", "type": "IMAGE", "link": 12}], "outputs": [],
         "widgets_values": ["t2i"]},
        {"id": 13, "type": "SaveImage", "pos": [1451, 500], "mode": 2,
         "inputs": [{"name": "images", "type": "IMAGE", "link": 13}], "outputs": [],
         "widgets_values": ["muted"]},
        {"id": 15, "type": "Note", "pos": [0, 0], "mode": 0, "widgets_values": ["a note"]},
    ]  # fmt: skip
    return {
        "last_node_id": 15,
        "last_link_id": 14,
        "nodes": nodes,
        "links": links,
        "groups": [{"title": "Prompts", "bounding": [400, 100, 400, 400], "color": "#3f789e"}],
        "config": {},
        "extra": {"ds": {"scale": 1, "offset": [0, 0]}},
        "version": 0.4,
    }


def api_img2img() -> dict[str, Any]:
    """Plain img2img: an encoded image sampled at denoise 0.6."""
    return {
        "4": _ckpt(),
        "6": _text("a red fox", ["4", 1]),
        "7": _text("blurry", ["4", 1]),
        "20": {"class_type": "LoadImage", "inputs": {"image": "hint.png", "upload": "image"}},
        "22": {"class_type": "VAEEncode", "inputs": {"pixels": ["20", 0], "vae": ["4", 2]}},
        "3": _ksampler(["22", 0], seed=5, denoise=0.6, sampler_name="dpmpp_2m", scheduler="karras"),
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "i2i", "images": ["8", 0]}},
    }  # fmt: skip


def ours_img2img() -> dict[str, Any]:
    nodes = _ours_base("hand_i2i", clip_skip=0)
    nodes["image"] = {"type": "LoadImage", "inputs": {"image": "hint.png"}}
    nodes["encode"] = {"type": "VAEEncode", "links": {"image": "image.image", "vae": "ckpt.vae"}}
    nodes["sample"] = _sample("encode.latent", seed=5, denoise=0.6, sampler="dpmpp_2m", scheduler="karras")  # fmt: skip
    return {"version": 1, "nodes": nodes}


def api_inpaint_img2img() -> dict[str, Any]:
    """Inpainting (VAEEncodeForInpaint) and masked img2img (SetLatentNoiseMask, LoadImageMask)."""
    return {
        "4": _ckpt(),
        "6": _text("a red fox", ["4", 1]),
        "7": _text("blurry", ["4", 1]),
        "20": {"class_type": "LoadImage", "inputs": {"image": "hint.png", "upload": "image"}},
        "21": {"class_type": "VAEEncodeForInpaint", "inputs": {"pixels": ["20", 0], "vae": ["4", 2], "mask": ["20", 1], "grow_mask_by": 6}},
        "3": _ksampler(["21", 0], sampler_name="dpmpp_2m", scheduler="normal"),
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "inpaint", "images": ["8", 0]}},
        "22": {"class_type": "VAEEncode", "inputs": {"pixels": ["20", 0], "vae": ["4", 2]}},
        "23": {"class_type": "LoadImageMask", "inputs": {"image": "hint.png", "channel": "alpha"}},
        "24": {"class_type": "SetLatentNoiseMask", "inputs": {"samples": ["22", 0], "mask": ["23", 0]}},
        "25": _ksampler(["24", 0], seed=3, denoise=0.6, sampler_name="euler", scheduler="normal"),
        "26": {"class_type": "VAEDecode", "inputs": {"samples": ["25", 0], "vae": ["4", 2]}},
        "27": {"class_type": "SaveImage", "inputs": {"filename_prefix": "img2img", "images": ["26", 0]}},
    }  # fmt: skip


def ours_inpaint_img2img() -> dict[str, Any]:
    nodes = _ours_base("hand_inpaint", clip_skip=0)
    nodes["image"] = {"type": "LoadImage", "inputs": {"image": "hint.png"}}
    nodes["inpaint"] = {"type": "VAEEncodeForInpaint", "inputs": {"grow_mask_by": 6},
                        "links": {"image": "image.image", "vae": "ckpt.vae", "mask": "image.mask"}}  # fmt: skip
    nodes["sample"] = _sample("inpaint.latent", sampler="dpmpp_2m", scheduler="normal")
    nodes["encode"] = {"type": "VAEEncode", "links": {"image": "image.image", "vae": "ckpt.vae"}}
    nodes["mask"] = {"type": "LoadImageMask", "inputs": {"image": "hint.png", "channel": "alpha"}}
    nodes["masked"] = {"type": "SetLatentNoiseMask", "links": {"latent": "encode.latent", "mask": "mask.mask"}}  # fmt: skip
    nodes["sample2"] = _sample("masked.latent", seed=3, denoise=0.6, sampler="euler", scheduler="normal")  # fmt: skip
    nodes["decode2"] = {
        "type": "VAEDecode",
        "links": {"vae": "ckpt.vae", "latent": "sample2.latent"},
    }
    nodes["save2"] = {"type": "SaveImage", "inputs": {"prefix": "hand_img2img", "quantize": "truncate"}, "links": {"images": "decode2.image"}}  # fmt: skip
    return {"version": 1, "nodes": nodes}


def api_controlnet_lora() -> dict[str, Any]:
    """LoRA (both loaders) and ControlNet (advanced, then the old single-prompt apply)."""
    prompt = {
        "4": _ckpt(),
        "30": {"class_type": "LoraLoader", "inputs": {"model": ["4", 0], "clip": ["4", 1], "lora_name": "tiny-lora-kohya.safetensors", "strength_model": 0.8, "strength_clip": 0.5}},
        "31": {"class_type": "LoraLoaderModelOnly", "inputs": {"model": ["30", 0], "lora_name": "tiny-lora-diffusers.safetensors", "strength_model": 0.7}},
        "6": _text("a red fox", ["30", 1]),
        "7": _text("blurry", ["30", 1]),
        "20": {"class_type": "LoadImage", "inputs": {"image": "hint.png"}},
        "32": {"class_type": "ControlNetLoader", "inputs": {"control_net_name": "tiny-controlnet.safetensors"}},
        "33": {"class_type": "ControlNetApplyAdvanced", "inputs": {"positive": ["6", 0], "negative": ["7", 0], "control_net": ["32", 0], "image": ["20", 0], "strength": 0.8, "start_percent": 0.0, "end_percent": 0.9}},
        "34": {"class_type": "ControlNetApply", "inputs": {"conditioning": ["33", 0], "control_net": ["32", 0], "image": ["20", 0], "strength": 0.5}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": SIZE, "height": SIZE, "batch_size": 1}},
        "3": _ksampler(["5", 0], model=["31", 0], positive=["34", 0], negative=["33", 1], sampler_name="dpmpp_2m_sde", scheduler="exponential"),
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "cn", "images": ["8", 0]}},
    }  # fmt: skip
    return prompt


def ours_controlnet_lora() -> dict[str, Any]:
    nodes = _ours_base("hand_cn", clip_skip=0)
    nodes["lora"] = {"type": "LoadLora", "inputs": {"lora": "tiny-lora-kohya.safetensors", "strength_model": 0.8, "strength_clip": 0.5},
                     "links": {"model": "ckpt.model", "clip": "ckpt.clip"}}  # fmt: skip
    nodes["lora2"] = {"type": "LoadLoraModelOnly", "inputs": {"lora": "tiny-lora-diffusers.safetensors", "strength_model": 0.7},
                      "links": {"model": "lora.model"}}  # fmt: skip
    nodes["pos"]["links"] = {"clip": "lora.clip"}
    nodes["neg"]["links"] = {"clip": "lora.clip"}
    nodes["image"] = {"type": "LoadImage", "inputs": {"image": "hint.png"}}
    nodes["cn"] = {
        "type": "LoadControlNet",
        "inputs": {"control_net": "tiny-controlnet.safetensors"},
    }
    nodes["apply"] = {"type": "ApplyControlNet", "inputs": {"strength": 0.8, "start_percent": 0.0, "end_percent": 0.9},
                      "links": {"positive": "pos.conditioning", "negative": "neg.conditioning", "control_net": "cn.control_net", "image": "image.image"}}  # fmt: skip
    nodes["apply_old"] = {"type": "ApplyControlNetToPrompt", "inputs": {"strength": 0.5},
                          "links": {"conditioning": "apply.positive", "control_net": "cn.control_net", "image": "image.image"}}  # fmt: skip
    nodes["empty"] = {"type": "EmptyLatent", "inputs": {"width": SIZE, "height": SIZE, "batch_size": 1}}  # fmt: skip
    nodes["sample"] = _sample("empty.latent", sampler="dpmpp_2m_sde", scheduler="exponential")
    nodes["sample"]["links"].update(model="lora2.model", positive="apply_old.conditioning", negative="apply.negative")  # fmt: skip
    return {"version": 1, "nodes": nodes}


def api_advanced() -> dict[str, Any]:
    """Two KSamplerAdvanced passes: steps 0-2 keeping the leftover noise, then 2-end without new noise."""

    def advanced(
        latent: list[Any], add: str, start: int, end: int, leftover: str
    ) -> dict[str, Any]:
        return {"class_type": "KSamplerAdvanced", "inputs": {
            "model": ["4", 0], "add_noise": add, "noise_seed": 11, "steps": 4, "cfg": 8.0,
            "sampler_name": "euler", "scheduler": "normal", "positive": ["6", 0], "negative": ["7", 0],
            "latent_image": latent, "start_at_step": start, "end_at_step": end,
            "return_with_leftover_noise": leftover}}  # fmt: skip

    return {
        "4": _ckpt(),
        "6": _text("a red fox", ["4", 1]),
        "7": _text("blurry", ["4", 1]),
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": SIZE, "height": SIZE, "batch_size": 1}},
        "40": advanced(["5", 0], "enable", 0, 2, "enable"),
        "41": advanced(["40", 0], "disable", 2, 10000, "disable"),
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["41", 0], "vae": ["4", 2]}},
        "9": {"class_type": "SaveImage", "inputs": {"filename_prefix": "adv", "images": ["8", 0]}},
    }  # fmt: skip


def ours_advanced_single_pass() -> dict[str, Any]:
    """One euler pass over the same 4 steps: what the two deterministic passes must equal."""
    nodes = _ours_base("hand_adv", clip_skip=0)
    nodes["empty"] = {"type": "EmptyLatent", "inputs": {"width": SIZE, "height": SIZE, "batch_size": 1}}  # fmt: skip
    nodes["sample"] = _sample("empty.latent", seed=11, steps=4, sampler="euler", scheduler="normal")
    return {"version": 1, "nodes": nodes}


def api_misc() -> dict[str, Any]:
    """Every other mapped class once: VAE loader, tiled VAE, resizes, conditioning tools, preview."""
    return {
        "4": _ckpt(),
        "50": {"class_type": "VAELoader", "inputs": {"vae_name": "tiny-vae.safetensors"}},
        "6": _text("a red fox", ["4", 1]),
        "51": _text("snow", ["4", 1]),
        "52": {"class_type": "ConditioningSetArea", "inputs": {"conditioning": ["51", 0], "width": 64, "height": 64, "x": 16, "y": 8, "strength": 0.8}},
        "53": {"class_type": "ConditioningCombine", "inputs": {"conditioning_1": ["6", 0], "conditioning_2": ["52", 0]}},
        "54": {"class_type": "ConditioningZeroOut", "inputs": {"conditioning": ["6", 0]}},
        "20": {"class_type": "LoadImage", "inputs": {"image": "hint.png"}},
        "55": {"class_type": "ImageScale", "inputs": {"image": ["20", 0], "upscale_method": "bilinear", "width": 72, "height": 48, "crop": "disabled"}},
        "56": {"class_type": "ImageScaleBy", "inputs": {"image": ["55", 0], "upscale_method": "area", "scale_by": 1.5}},
        "57": {"class_type": "VAEEncodeTiled", "inputs": {"pixels": ["56", 0], "vae": ["50", 0], "tile_size": 64, "overlap": 16, "temporal_size": 64, "temporal_overlap": 8}},
        "58": {"class_type": "LatentUpscale", "inputs": {"samples": ["57", 0], "upscale_method": "nearest-exact", "width": 64, "height": 64, "crop": "disabled"}},
        "59": {"class_type": "LatentUpscaleBy", "inputs": {"samples": ["58", 0], "upscale_method": "bilinear", "scale_by": 1.5}},
        "3": _ksampler(["59", 0], positive=["53", 0], negative=["54", 0], denoise=0.5, sampler_name="dpmpp_sde", scheduler="simple"),
        "60": {"class_type": "VAEDecodeTiled", "inputs": {"samples": ["3", 0], "vae": ["50", 0], "tile_size": 64, "overlap": 16}},
        "61": {"class_type": "PreviewImage", "inputs": {"images": ["60", 0]}},
    }  # fmt: skip


def ours_misc() -> dict[str, Any]:
    """api_misc written by hand with our nodes."""
    nodes = _ours_base("unused", clip_skip=0)
    del nodes["save"], nodes["decode"], nodes["neg"]
    nodes["vae"] = {"type": "LoadVAE", "inputs": {"vae": "tiny-vae.safetensors"}}
    nodes["snow"] = {
        "type": "EncodeText",
        "inputs": {"text": "snow"},
        "links": {"clip": "ckpt.clip"},
    }
    nodes["area"] = {
        "type": "SetConditioningArea",
        "inputs": {"width": 64, "height": 64, "x": 16, "y": 8, "strength": 0.8},
        "links": {"conditioning": "snow.conditioning"},
    }
    nodes["both"] = {
        "type": "CombineConditioning",
        "links": {"first": "pos.conditioning", "second": "area.conditioning"},
    }
    nodes["zero"] = {"type": "ZeroConditioning", "links": {"conditioning": "pos.conditioning"}}
    nodes["image"] = {"type": "LoadImage", "inputs": {"image": "hint.png"}}
    nodes["scale"] = {
        "type": "ScaleImage",
        "inputs": {"method": "bilinear", "width": 72, "height": 48},
        "links": {"image": "image.image"},
    }
    nodes["scale_by"] = {
        "type": "ScaleImageBy",
        "inputs": {"method": "area", "scale_by": 1.5},
        "links": {"image": "scale.image"},
    }
    nodes["encode"] = {
        "type": "VAEEncodeTiled",
        "inputs": {"tile_size": 64, "overlap": 16},
        "links": {"image": "scale_by.image", "vae": "vae.vae"},
    }
    nodes["up"] = {
        "type": "UpscaleLatent",
        "inputs": {"method": "nearest-exact", "width": 64, "height": 64},
        "links": {"latent": "encode.latent"},
    }
    nodes["up_by"] = {
        "type": "UpscaleLatentBy",
        "inputs": {"method": "bilinear", "scale_by": 1.5},
        "links": {"latent": "up.latent"},
    }
    nodes["sample"] = _sample("up_by.latent", denoise=0.5, sampler="dpmpp_sde", scheduler="simple")
    nodes["sample"]["links"].update(positive="both.conditioning", negative="zero.conditioning")
    nodes["decode"] = {
        "type": "VAEDecodeTiled",
        "inputs": {"tile_size": 64, "overlap": 16},
        "links": {"latent": "sample.latent", "vae": "vae.vae"},
    }
    nodes["preview"] = {
        "type": "PreviewImage",
        "inputs": {"quantize": "truncate"},
        "links": {"images": "decode.image"},
    }
    return {"version": 1, "nodes": nodes}  # fmt: skip
