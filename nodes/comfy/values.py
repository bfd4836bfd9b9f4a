"""ComfyUI input values spelled differently from ours (sampler names, "enable"/"disable"), translated.

`VALUES` maps a ComfyUI input name to its translation; a value we cannot honour is a
`ValueProblem`, reported as a validation error on the node and input the user wrote.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from engine.errors import ErrorCode


class ValueProblem(ValueError):
    """A ComfyUI value with no equivalent here; `code` is the validation error code to report."""

    def __init__(self, message: str, code: ErrorCode = ErrorCode.VALUE_NOT_IN_CHOICES) -> None:
        self.code = code
        super().__init__(message)


class _Drop:
    """Returned by a value translation when the input has no counterpart here and is fine to omit."""


DROP = _Drop()


SAMPLER_ALIASES = {
    # The _gpu variants only move the Brownian tree to the GPU; on the CPU they are the same.
    "dpmpp_2m_sde_gpu": "dpmpp_2m_sde",
    "dpmpp_sde_gpu": "dpmpp_sde",
}


def sampler_name(value: Any) -> Any:
    """A ComfyUI sampler name as ours; one we lack is an error naming it."""
    from nodes.sampling import SAMPLER_NAMES

    name = SAMPLER_ALIASES.get(value, value) if isinstance(value, str) else value
    if name not in SAMPLER_NAMES:
        raise ValueProblem(
            f"ComfyUI sampler {value!r} is not available here; use one of {', '.join(SAMPLER_NAMES)}"
        )
    return name


def scheduler_name(value: Any) -> Any:
    """A ComfyUI scheduler name as ours; one we lack is an error naming it."""
    from nodes.sampling import SCHEDULER_NAMES

    if value not in SCHEDULER_NAMES:
        raise ValueProblem(
            f"ComfyUI scheduler {value!r} is not available here; use one of {', '.join(SCHEDULER_NAMES)}"
        )
    return value


def _switch(on: str, off: str) -> Callable[[Any], Any]:
    def translate(value: Any) -> Any:
        # `is`, not `in`: 1 and 0 equal True and False in Python but are no switch values.
        if value == on or value is True:
            return True
        if value == off or value is False:
            return False
        raise ValueProblem(f"{value!r} is not one of [{on!r}, {off!r}]")

    return translate


def no_crop(value: Any) -> Any:
    """ComfyUI's `crop`: only "disabled" (plain resize) exists here."""
    if value == "disabled":
        return DROP
    raise ValueProblem(f"crop {value!r} is not supported here; only 'disabled' is")


def clip_layer(value: Any) -> Any:
    """CLIPSetLastLayer's -1, -2, ... as our clip_skip 1, 2, ..."""
    if isinstance(value, int) and not isinstance(value, bool) and -24 <= value <= -1:
        return -value
    raise ValueProblem(f"{value!r} must be a whole number from -24 to -1", ErrorCode.INVALID_TYPE)


VALUES: Mapping[str, Callable[[Any], Any]] = {
    "sampler_name": sampler_name,
    "scheduler": scheduler_name,
    "add_noise": _switch("enable", "disable"),
    "return_with_leftover_noise": _switch("enable", "disable"),
    "crop": no_crop,
    "stop_at_clip_layer": clip_layer,
}
