"""CompositeMasked through the executor: masked pixels from the source, the rest untouched."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image as PILImage

from engine.config import Paths
from engine.executor import Executor
from engine.registry import default_registry


@pytest.fixture
def executor(tmp_path: Path) -> Executor:
    inputs = tmp_path / "input"
    inputs.mkdir()
    holed = PILImage.new("RGBA", (32, 32), (200, 40, 40, 255))
    for x in range(8, 24):
        for y in range(4, 12):
            holed.putpixel((x, y), (0, 0, 0, 0))  # transparent: the mask
    holed.save(inputs / "holed.png")
    PILImage.new("RGB", (32, 32), (10, 200, 30)).save(inputs / "green.png")
    paths = Paths.resolve(models=tmp_path / "models", input=inputs, output=tmp_path / "out")
    return Executor(default_registry(), paths=paths)


def graph(source_link: str = "green.image") -> dict:
    return {
        "nodes": {
            "holed": {"type": "LoadImage", "inputs": {"image": "holed.png"}},
            "green": {"type": "LoadImage", "inputs": {"image": "green.png"}},
            "small": {
                "type": "ScaleImage",
                "inputs": {"width": 16, "height": 16},
                "links": {"image": "green.image"},
            },
            "composite": {
                "type": "CompositeMasked",
                "links": {
                    "destination": "holed.image",
                    "source": source_link,
                    "mask": "holed.mask",
                },
            },
        },
        "outputs": ["composite"],
    }


def test_the_mask_takes_the_source_and_the_rest_stays_exact(executor: Executor) -> None:
    result = executor.run(graph())
    assert result.status == "finished", result.error
    pixels = result.values["composite"]["image"].pixels[0]  # (32, 32, 3)
    green = torch.tensor([10, 200, 30]) / 255
    red = torch.tensor([200, 40, 40]) / 255
    assert torch.allclose(pixels[4:12, 8:24], green.expand(8, 16, 3), atol=1e-6)
    outside = torch.ones(32, 32, dtype=torch.bool)
    outside[4:12, 8:24] = False
    assert torch.allclose(pixels[outside], red.expand(int(outside.sum()), 3), atol=1e-6)


def test_images_of_different_sizes_are_refused_naming_the_input(executor: Executor) -> None:
    result = executor.run(graph("small.image"))
    assert result.status == "failed"
    assert result.error is not None
    assert (result.error.node_id, result.error.input) == ("composite", "source")
    assert "16" in result.error.message and "32" in result.error.message
