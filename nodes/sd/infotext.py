"""Generation parameters as A1111-style "infotext", the `parameters` text of a PNG.

The format: the prompt, a line `Negative prompt: ...`, then one line of `Label: value` pairs
separated by ", ". A value holding a comma, colon or newline is written as a JSON string, as A1111
does, so that readers that split on ", " and ": " get it back whole. Hand-written because no
maintained library writes it (readers such as sd-parsers only read it).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

PROMPT = "Prompt"
NEGATIVE_PROMPT = "Negative prompt"
# The order A1111 writes its settings in; others follow in the order given.
ORDER = [
    "Steps",
    "Sampler",
    "Schedule type",
    "CFG scale",
    "Seed",
    "Size",
    "Model",
    "VAE",
    "Denoising strength",
    "Clip skip",
]
# How A1111 names the samplers and schedules that it shares with us (others keep our name).
A1111_SAMPLERS = {
    "euler": "Euler",
    "euler_ancestral": "Euler a",
    "heun": "Heun",
    "dpm_2": "DPM2",
    "lms": "LMS",
    "dpmpp_2m": "DPM++ 2M",
    "dpmpp_2m_sde": "DPM++ 2M SDE",
    "dpmpp_sde": "DPM++ SDE",
    "ddim": "DDIM",
    "uni_pc": "UniPC",
}
A1111_SCHEDULES = {
    "normal": "Normal",
    "karras": "Karras",
    "exponential": "Exponential",
    "sgm_uniform": "SGM Uniform",
    "simple": "Simple",
    "ddim_uniform": "DDIM",
}


def format_infotext(parameters: Mapping[str, Any]) -> str:
    """The infotext for settings by label; `Prompt` and `Negative prompt` get their own lines."""
    lines = [str(parameters.get(PROMPT, ""))]
    negative = parameters.get(NEGATIVE_PROMPT)
    if negative:
        lines.append(f"{NEGATIVE_PROMPT}: {negative}")
    labels = [label for label in parameters if label not in (PROMPT, NEGATIVE_PROMPT)]
    labels.sort(key=lambda label: ORDER.index(label) if label in ORDER else len(ORDER))
    settings = [
        f"{label}: {quote(parameters[label])}" for label in labels if parameters[label] is not None
    ]
    if settings:
        lines.append(", ".join(settings))
    return "\n".join(lines)


def quote(value: Any) -> str:
    """A value as infotext writes it: plain, or a JSON string if it holds , : or a newline."""
    text = format_number(value) if isinstance(value, float) else str(value)
    if any(c in text for c in ",:\n"):
        return json.dumps(text, ensure_ascii=False)
    return text


def format_number(value: float) -> str:
    """A float without a spurious fraction: 7.0 as 7, 0.7 as 0.7."""
    return str(int(value)) if value.is_integer() else repr(value)
