"""The API-format test workflows as ComfyUI's editor saves them, with editor-only nodes mixed in.

Each `editor_*` converts to the same graph as the `api_*` of the same name in `workflows`: the
node ids and values agree, and every editor-only feature (reroutes, primitive nodes driving one
or several widgets, the hidden "control after generate" value, muted and bypassed nodes,
notes, groups) is resolved away. Widget values are written by position, as the editor stores
them; a widget driven by a link keeps a stale value that must lose.
"""

from __future__ import annotations

from typing import Any

from tests.comfy.editor_builder import EditorWorkflow
from tests.comfy.workflows import CKPT, SIZE, STEPS

MUTED, BYPASSED = 2, 4


def _prompts(flow: EditorWorkflow, clip: tuple[int, int] = (4, 1)) -> None:
    """Checkpoint 4 and the two prompts 6 and 7 every workflow starts with."""
    flow.add(4, "CheckpointLoaderSimple", [CKPT])
    flow.add(6, "CLIPTextEncode", ["a red fox"], title="Positive")
    flow.add(7, "CLIPTextEncode", ["blurry"])
    flow.connect(*clip, 6, "clip")
    flow.connect(*clip, 7, "clip")
    flow.group("Prompts", [400, 100, 400, 400])


def _decode_save(flow: EditorWorkflow, sampler: int, decode: int, save: int, prefix: str) -> None:
    flow.add(decode, "VAEDecode", [])
    flow.add(save, "SaveImage", [prefix])
    flow.connect(sampler, 0, decode, "samples")
    flow.connect(4, 2, decode, "vae")
    flow.connect(decode, 0, save, "images")


def _sampler_links(flow: EditorWorkflow, sampler: int, latent: tuple[int, int]) -> None:
    flow.connect(4, 0, sampler, "model")
    flow.connect(6, 0, sampler, "positive")
    flow.connect(7, 0, sampler, "negative")
    flow.connect(*latent, sampler, "latent_image")


def editor_img2img() -> dict[str, Any]:
    """Format 1: the image through two reroutes, one reroute feeding two VAE inputs, denoise
    from a primitive (the sampler's own denoise value is stale), a muted preview branch."""
    flow = EditorWorkflow()
    _prompts(flow)
    flow.add(20, "LoadImage", ["hint.png", "image"])
    flow.add(30, "Reroute")
    flow.add(31, "Reroute")
    flow.connect(20, 0, 30, "", "IMAGE")
    flow.connect(30, 0, 31, "", "IMAGE")
    flow.add(32, "Reroute")
    flow.connect(4, 2, 32, "", "VAE")
    flow.add(22, "VAEEncode", [])
    flow.connect(31, 0, 22, "pixels")
    flow.connect(32, 0, 22, "vae")
    flow.add(3, "KSampler", [5, "increment", STEPS, 8, "dpmpp_2m", "karras", 1])
    _sampler_links(flow, 3, (22, 0))
    flow.add(33, "PrimitiveNode", [0.6, "fixed"], title="denoise")
    flow.connect(33, 0, 3, "denoise", "FLOAT")
    flow.add(8, "VAEDecode", [])
    flow.add(9, "SaveImage", ["i2i"])
    flow.connect(3, 0, 8, "samples")
    flow.connect(32, 0, 8, "vae")
    flow.connect(8, 0, 9, "images")
    flow.add(40, "VAEDecode", [], mode=MUTED)
    flow.add(41, "PreviewImage", [], mode=MUTED)
    flow.connect(22, 0, 40, "samples")
    flow.connect(4, 2, 40, "vae")
    flow.connect(40, 0, 41, "images")
    return flow.saved(version=1)


def editor_inpaint_img2img() -> dict[str, Any]:
    """Format 0.4: one combo primitive gives both image loaders their file (their own values
    are stale), LoadImageMask's upload value follows its channel, a bypassed ImageScaleBy
    sits before the VAEEncode, the seed's hidden value is "randomize" on one sampler and
    "fixed" on the other."""
    flow = EditorWorkflow()
    _prompts(flow)
    flow.add(20, "LoadImage", ["stale.png", "image"])
    flow.add(23, "LoadImageMask", ["stale.png", "alpha", "image"])
    flow.add(50, "PrimitiveNode", ["hint.png", "fixed", ""])
    flow.connect(50, 0, 20, "image", "COMBO")
    flow.connect(50, 0, 23, "image", "COMBO")
    flow.add(21, "VAEEncodeForInpaint", [6])
    flow.connect(20, 0, 21, "pixels")
    flow.connect(4, 2, 21, "vae")
    flow.connect(20, 1, 21, "mask")
    flow.add(3, "KSampler", [7, "randomize", STEPS, 8, "dpmpp_2m", "normal", 1])
    _sampler_links(flow, 3, (21, 0))
    _decode_save(flow, 3, 8, 9, "inpaint")
    flow.add(51, "ImageScaleBy", ["bilinear", 2.0], mode=BYPASSED)
    flow.connect(20, 0, 51, "image")
    flow.add(22, "VAEEncode", [])
    flow.connect(51, 0, 22, "pixels")
    flow.connect(4, 2, 22, "vae")
    flow.add(24, "SetLatentNoiseMask", [])
    flow.connect(22, 0, 24, "samples")
    flow.connect(23, 0, 24, "mask")
    flow.add(25, "KSampler", [3, "fixed", STEPS, 8, "euler", "normal", 0.6])
    _sampler_links(flow, 25, (24, 0))
    _decode_save(flow, 25, 26, 27, "img2img")
    return flow.saved()


def editor_controlnet_lora() -> dict[str, Any]:
    """Format 1: a bypassed LoraLoader in front (each of its two outputs passes on the input of
    the same type), the ControlNet through a reroute to both applies, the optional `vae` input
    left unconnected, a note."""
    flow = EditorWorkflow()
    flow.add(4, "CheckpointLoaderSimple", [CKPT])
    flow.add(60, "LoraLoader", ["tiny-lora-diffusers.safetensors", 1.0, 1.0], mode=BYPASSED)
    flow.connect(4, 0, 60, "model")
    flow.connect(4, 1, 60, "clip")
    flow.add(30, "LoraLoader", ["tiny-lora-kohya.safetensors", 0.8, 0.5])
    flow.connect(60, 0, 30, "model")
    flow.connect(60, 1, 30, "clip")
    flow.add(31, "LoraLoaderModelOnly", ["tiny-lora-diffusers.safetensors", 0.7])
    flow.connect(30, 0, 31, "model")
    flow.add(6, "CLIPTextEncode", ["a red fox"])
    flow.add(7, "CLIPTextEncode", ["blurry"])
    flow.connect(30, 1, 6, "clip")
    flow.connect(30, 1, 7, "clip")
    flow.add(20, "LoadImage", ["hint.png", "image"])
    flow.add(32, "ControlNetLoader", ["tiny-controlnet.safetensors"])
    flow.add(35, "Reroute")
    flow.connect(32, 0, 35, "", "CONTROL_NET")
    flow.add(33, "ControlNetApplyAdvanced", [0.8, 0.0, 0.9])
    flow.connect(6, 0, 33, "positive")
    flow.connect(7, 0, 33, "negative")
    flow.connect(35, 0, 33, "control_net")
    flow.connect(20, 0, 33, "image")
    flow.add(34, "ControlNetApply", [0.5])
    flow.connect(33, 0, 34, "conditioning")
    flow.connect(35, 0, 34, "control_net")
    flow.connect(20, 0, 34, "image")
    flow.add(5, "EmptyLatentImage", [SIZE, SIZE, 1])
    flow.add(3, "KSampler", [7, "fixed", STEPS, 8, "dpmpp_2m_sde", "exponential", 1])
    flow.connect(31, 0, 3, "model")
    flow.connect(34, 0, 3, "positive")
    flow.connect(33, 1, 3, "negative")
    flow.connect(5, 0, 3, "latent_image")
    _decode_save(flow, 3, 8, 9, "cn")
    flow.add(70, "Note", ["the first LoRA is bypassed"])
    flow.group("LoRA", [0, 0, 600, 300])
    return flow.saved(version=1)


def editor_advanced() -> dict[str, Any]:
    """Format 0.4: two KSamplerAdvanced passes whose steps come from one primitive (their own
    values are stale), the older `true` in the first pass's "control after generate" slot, and
    a reroute between the passes."""
    flow = EditorWorkflow()
    _prompts(flow)
    flow.add(5, "EmptyLatentImage", [SIZE, SIZE, 1])
    flow.add(40, "KSamplerAdvanced",
             ["enable", 11, True, 20, 8, "euler", "normal", 0, 2, "enable"])  # fmt: skip
    _sampler_links(flow, 40, (5, 0))
    flow.add(43, "Reroute")
    flow.connect(40, 0, 43, "", "LATENT")
    flow.add(41, "KSamplerAdvanced",
             ["disable", 11, "fixed", 20, 8, "euler", "normal", 2, 10000, "disable"])  # fmt: skip
    _sampler_links(flow, 41, (43, 0))
    flow.add(42, "PrimitiveNode", [4, "fixed"], title="steps")
    flow.connect(42, 0, 40, "steps", "INT")
    flow.connect(42, 0, 41, "steps", "INT")
    _decode_save(flow, 41, 8, 9, "adv")
    return flow.saved()


def editor_misc() -> dict[str, Any]:
    """Format 1: every other mapped class, with its widgets in ComfyUI's order (the tiled VAE
    nodes with their temporal values, the scale nodes with `crop`, the area in pixels)."""
    flow = EditorWorkflow()
    flow.add(4, "CheckpointLoaderSimple", [CKPT])
    flow.add(50, "VAELoader", ["tiny-vae.safetensors"])
    flow.add(6, "CLIPTextEncode", ["a red fox"])
    flow.add(51, "CLIPTextEncode", ["snow"])
    flow.connect(4, 1, 6, "clip")
    flow.connect(4, 1, 51, "clip")
    flow.add(52, "ConditioningSetArea", [64, 64, 16, 8, 0.8])
    flow.connect(51, 0, 52, "conditioning")
    flow.add(53, "ConditioningCombine", [])
    flow.connect(6, 0, 53, "conditioning_1")
    flow.connect(52, 0, 53, "conditioning_2")
    flow.add(54, "ConditioningZeroOut", [])
    flow.connect(6, 0, 54, "conditioning")
    flow.add(20, "LoadImage", ["hint.png", "image"])
    flow.add(55, "ImageScale", ["bilinear", 72, 48, "disabled"])
    flow.connect(20, 0, 55, "image")
    flow.add(56, "ImageScaleBy", ["area", 1.5])
    flow.connect(55, 0, 56, "image")
    flow.add(57, "VAEEncodeTiled", [64, 16, 64, 8])
    flow.connect(56, 0, 57, "pixels")
    flow.connect(50, 0, 57, "vae")
    flow.add(58, "LatentUpscale", ["nearest-exact", 64, 64, "disabled"])
    flow.connect(57, 0, 58, "samples")
    flow.add(59, "LatentUpscaleBy", ["bilinear", 1.5])
    flow.connect(58, 0, 59, "samples")
    flow.add(3, "KSampler", [7, "randomize", STEPS, 8, "dpmpp_sde", "simple", 0.5])
    flow.connect(4, 0, 3, "model")
    flow.connect(53, 0, 3, "positive")
    flow.connect(54, 0, 3, "negative")
    flow.connect(59, 0, 3, "latent_image")
    flow.add(60, "VAEDecodeTiled", [64, 16, 64, 8])
    flow.connect(3, 0, 60, "samples")
    flow.connect(50, 0, 60, "vae")
    flow.add(61, "PreviewImage", [])
    flow.connect(60, 0, 61, "images")
    return flow.saved(version=1)
