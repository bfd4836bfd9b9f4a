"""Every sampler of the sampling library can be chosen on the sampler nodes and from ComfyUI files."""

from __future__ import annotations

import pytest

from engine.registry import default_registry
from nodes.comfy.values import sampler_name


@pytest.mark.parametrize("node_type", ["Sample", "SampleSteps"])
def test_uni_pc_bh2_is_a_choice_of_the_sampler_nodes(node_type: str) -> None:
    node = default_registry().get(node_type)
    assert node is not None
    sampler = next(i for i in node.spec.inputs if i.name == "sampler")
    assert sampler.validate_literal("uni_pc_bh2", None) == "uni_pc_bh2"
    assert "uni_pc_bh2" in (sampler.choices or [])


def test_comfyui_files_may_name_uni_pc_bh2() -> None:
    assert sampler_name("uni_pc_bh2") == "uni_pc_bh2"
