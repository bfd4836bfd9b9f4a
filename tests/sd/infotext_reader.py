"""Reading a PNG's A1111-style `parameters` back as other tools do: with sd-parsers, and with
the quoting rules of A1111's own infotext parser."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

# A1111's pattern for one `Label: value` pair; a value may be a JSON string holding , and :.
_PAIR = re.compile(r'\s*(\w[\w \-/]+):\s*("(?:\\.|[^\\"])+"|[^,]*)(?:,|$)')


@dataclass(frozen=True)
class Parameters:
    prompts: list[str]
    negative_prompts: list[str]
    sampler: str
    model: str | None
    settings: dict[str, str]  # what sd-parsers calls the sampler's parameters


def read_parameters(path: Path) -> Parameters:
    """The generation parameters of a PNG as sd-parsers reads them (an A1111 image or nothing)."""
    from sd_parsers import ParserManager
    from sd_parsers.data import Generators

    info = ParserManager().parse(path)
    assert info is not None and info.generator == Generators.AUTOMATIC1111
    (sampler,) = info.samplers
    return Parameters(
        prompts=[p.value for p in sampler.prompts],
        negative_prompts=[p.value for p in sampler.negative_prompts],
        sampler=sampler.name,
        model=None if sampler.model is None else sampler.model.name,
        settings={k: str(v) for k, v in sampler.parameters.items() if k != "scheduler"},
    )


def infotext_fields(text: str) -> dict[str, str]:
    """The `Label: value` pairs of the last line, unquoted as A1111 unquotes them."""
    fields = {}
    for label, value in _PAIR.findall(text.splitlines()[-1]):
        fields[label] = json.loads(value) if value.startswith('"') else value
    return fields
