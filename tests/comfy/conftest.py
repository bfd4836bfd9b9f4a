"""Fixtures for the ComfyUI compatibility tests: tiny models, input images and one executor."""

from __future__ import annotations

import pytest
from PIL import Image as PILImage

from engine.config import Paths
from engine.executor import Executor
from engine.registry import default_registry
from nodes.sd.tiny_models import TinyModels, build_tiny_models


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> TinyModels:
    """Tiny seeded SD1 models in their real file layouts (built once per session)."""
    return build_tiny_models(tmp_path_factory.mktemp("comfy-models"))


@pytest.fixture(scope="session")
def folders(tiny_models: TinyModels, tmp_path_factory: pytest.TempPathFactory) -> Paths:
    """Models, an input folder with an RGBA image (a transparent square is its mask), an output folder."""
    root = tmp_path_factory.mktemp("comfy-run")
    inputs = root / "input"
    inputs.mkdir()
    image = PILImage.new("RGBA", (64, 64), (200, 40, 40, 255))
    for x in range(16, 48):
        for y in range(16, 40):
            image.putpixel((x, y), (20, 90, 255, 0))
    image.save(inputs / "hint.png")
    return Paths.resolve(models=tiny_models.models_dir, input=inputs, output=root / "output")


@pytest.fixture(scope="session")
def executor(folders: Paths) -> Executor:
    return Executor(default_registry(), paths=folders)
