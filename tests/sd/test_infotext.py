"""The A1111-style infotext writer, and the generation parameters nodes declare, without models."""

from __future__ import annotations

from engine.registry import default_registry
from engine.validate import validate_graph
from nodes.generation import generation_parameters
from nodes.sd.infotext import format_infotext
from tests.sd.infotext_reader import infotext_fields


def test_prompts_get_their_lines_and_settings_follow_in_a1111_order() -> None:
    text = format_infotext(
        {
            "Lora": "style: 0.8, detail: 1",
            "Model": "dream",
            "Prompt": "a cat,\nsitting",
            "Seed": 3,
            "Negative prompt": "blur",
            "CFG scale": 7.0,
            "Steps": 20,
            "Denoising strength": 0.45,
            "Clip skip": None,
        }
    )
    assert text == (
        "a cat,\nsitting\n"
        "Negative prompt: blur\n"
        "Steps: 20, CFG scale: 7, Seed: 3, Model: dream, Denoising strength: 0.45, "
        'Lora: "style: 0.8, detail: 1"'
    )
    assert infotext_fields(text)["Lora"] == "style: 0.8, detail: 1"  # quoted, read back whole


def test_an_empty_negative_prompt_is_left_out() -> None:
    assert format_infotext({"Prompt": "x", "Negative prompt": "", "Steps": 1}) == "x\nSteps: 1"


def test_linked_primitives_chained_loras_and_two_controlnets_are_described() -> None:
    document = {
        "nodes": {
            "ckpt": {
                "type": "LoadCheckpoint",
                "inputs": {"checkpoint": "latentgraph-shapes.safetensors"},
            },
            "l1": {
                "type": "LoadLoraModelOnly",
                "inputs": {"lora": "a.safetensors", "strength_model": 0.5},
                "links": {"model": "ckpt.model"},
            },
            "l2": {
                "type": "LoadLoraModelOnly",
                "inputs": {"lora": "b.safetensors"},
                "links": {"model": "l1.model"},
            },
            "text": {"type": "Text", "inputs": {"text": "a red circle"}},
            "pos": {
                "type": "EncodeText",
                "inputs": {"clip_skip": 2},
                "links": {"clip": "ckpt.clip", "text": "text.text"},
            },
            "neg": {
                "type": "EncodeText",
                "inputs": {"text": "blue"},
                "links": {"clip": "ckpt.clip"},
            },
            "cn": {
                "type": "LoadControlNet",
                "inputs": {"control_net": "latentgraph-shapes-controlnet.safetensors"},
            },
            "hint": {"type": "VAEDecode", "links": {"vae": "ckpt.vae", "latent": "latent.latent"}},
            "c1": {
                "type": "ApplyControlNet",
                "inputs": {"strength": 0.5},
                "links": {
                    "positive": "pos.conditioning",
                    "negative": "neg.conditioning",
                    "control_net": "cn.control_net",
                    "image": "hint.image",
                },
            },
            "c2": {
                "type": "ApplyControlNet",
                "inputs": {"end_percent": 0.5},
                "links": {
                    "positive": "c1.positive",
                    "negative": "c1.negative",
                    "control_net": "cn.control_net",
                    "image": "hint.image",
                },
            },
            "seed": {"type": "Int", "inputs": {"value": 42}},
            "latent": {"type": "EmptyLatent", "inputs": {"width": 64, "height": 64}},
            "sample": {
                "type": "Sample",
                "inputs": {"denoise": 0.5},
                "links": {
                    "model": "l2.model",
                    "positive": "c2.positive",
                    "negative": "c2.negative",
                    "latent": "latent.latent",
                    "seed": "seed.value",
                },
            },
        },
        "outputs": ["sample"],
    }
    nodes = validate_graph(document, default_registry(), None).nodes
    assert generation_parameters(nodes, "sample") == {
        "Model": "latentgraph-shapes",
        "Lora": "a: 0.5, b: 1",
        "Clip skip": 2,
        "Prompt": "a red circle",
        "ControlNet 0": "Model: latentgraph-shapes-controlnet, Weight: 0.5, Guidance Start: 0, Guidance End: 1",
        "ControlNet 1": "Model: latentgraph-shapes-controlnet, Weight: 1, Guidance Start: 0, Guidance End: 0.5",
        "Negative prompt": "blue",
        "Steps": 20,
        "Sampler": "Euler",
        "Schedule type": "Normal",
        "CFG scale": 7.5,
        "Seed": 42,
        "Denoising strength": 0.5,
    }
