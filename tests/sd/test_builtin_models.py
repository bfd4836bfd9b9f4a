"""The models shipped in the package are found beside the user's models folder, never instead of it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from nodes.sd.model_files import BUILTIN_MODELS, ModelNotFoundError, list_models, resolve_model

DEMO = "latentgraph-shapes.safetensors"
DEMO_CONTROLNET = "latentgraph-shapes-controlnet.safetensors"


def test_the_builtin_models_are_listed_with_the_users(tmp_path: Path) -> None:
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "mine.safetensors").write_bytes(b"x")
    assert list_models("checkpoints", tmp_path) == ["mine.safetensors"]
    assert list_models("checkpoints", tmp_path, with_builtin=True) == [DEMO, "mine.safetensors"]
    assert DEMO_CONTROLNET in list_models("controlnet", tmp_path, with_builtin=True)
    assert list_models("loras", tmp_path, with_builtin=True) == []


def test_a_builtin_name_resolves_when_the_user_has_no_such_file(tmp_path: Path) -> None:
    path = resolve_model("checkpoints", DEMO, tmp_path, with_builtin=True)
    assert path == BUILTIN_MODELS / "checkpoints" / DEMO
    with pytest.raises(ModelNotFoundError, match="no checkpoints model named"):
        resolve_model("checkpoints", DEMO, tmp_path)  # only with_builtin looks there


def test_the_users_file_of_the_same_name_wins(tmp_path: Path) -> None:
    (tmp_path / "checkpoints").mkdir()
    own = tmp_path / "checkpoints" / DEMO
    shutil.copyfile(BUILTIN_MODELS / "checkpoints" / DEMO, own)
    assert resolve_model("checkpoints", DEMO, tmp_path, with_builtin=True) == own


def test_unsafe_and_unknown_names_still_fail(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="not a valid"):
        resolve_model("checkpoints", "../checkpoints/" + DEMO, tmp_path, with_builtin=True)
    with pytest.raises(ModelNotFoundError, match=f"available: {DEMO}"):
        resolve_model("checkpoints", "missing.safetensors", tmp_path, with_builtin=True)
