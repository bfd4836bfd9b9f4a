"""Shared fixtures for the Stable Diffusion library tests."""

from __future__ import annotations

import pytest

from nodes.sd.tiny_models import (
    TinyFamilyModel,
    TinyModels,
    build_tiny_models,
    build_tiny_sd2,
    build_tiny_sdxl,
)


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> TinyModels:
    """Tiny seeded SD1 models, written once per session as a models folder in every layout."""
    return build_tiny_models(tmp_path_factory.mktemp("tiny-models"))


@pytest.fixture(scope="session")
def tiny_sdxl(tmp_path_factory: pytest.TempPathFactory) -> TinyFamilyModel:
    """A tiny SDXL single file with both text encoders in their original layouts."""
    return build_tiny_sdxl(tmp_path_factory.mktemp("tiny-sdxl"))


@pytest.fixture(scope="session")
def tiny_sd2(tmp_path_factory: pytest.TempPathFactory) -> TinyFamilyModel:
    """A tiny SD2 v-prediction single file with an OpenCLIP-H-layout text encoder."""
    return build_tiny_sd2(tmp_path_factory.mktemp("tiny-sd2"))


# The sampling tests' tiny UNets, ControlNets and embeddings (module-scoped: built per module).
from tests.sd.sampling_setup import (  # noqa: E402
    controlnets,  # noqa: F401
    embeds,  # noqa: F401
    hints,  # noqa: F401
    sd_unet,  # noqa: F401
    sdxl_unet,  # noqa: F401
    unet_batches,  # noqa: F401
)
