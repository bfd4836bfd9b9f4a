"""Model folders: listing choices and resolving names without leaving the folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from nodes.sd.model_files import ModelNotFoundError, list_models, model_folder, resolve_model
from nodes.sd.tiny_models import TinyModels


def test_lists_the_tiny_models_folder(tiny_models: TinyModels) -> None:
    root = tiny_models.models_dir
    assert list_models("checkpoints", root) == ["tiny-sd1-diffusers", "tiny-sd1.safetensors"]
    assert list_models("vae", root) == ["tiny-vae.safetensors"]
    assert list_models("loras", root) == [
        "tiny-lora-diffusers.safetensors",
        "tiny-lora-kohya.safetensors",
    ]
    assert list_models("controlnet", root) == [
        "tiny-controlnet-diffusers.safetensors",
        "tiny-controlnet.safetensors",
    ]


def test_listing_walks_subfolders_and_skips_other_files(tmp_path: Path) -> None:
    folder = tmp_path / "checkpoints"
    (folder / "sd15" / "nested").mkdir(parents=True)
    (folder / ".cache").mkdir()
    for name in (
        "b.ckpt",
        "A.safetensors",
        "sd15/c.pt",
        "sd15/nested/d.bin",
        "e.pth",
        "notes.txt",
        ".cache/x.safetensors",
    ):
        (folder / name).write_bytes(b"")
    (folder / "pipe" / "unet").mkdir(parents=True)
    (folder / "pipe" / "model_index.json").write_text("{}")
    (folder / "pipe" / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"")
    assert list_models("checkpoints", tmp_path) == [
        "A.safetensors",
        "b.ckpt",
        "e.pth",
        "pipe",
        "sd15/c.pt",
        "sd15/nested/d.bin",
    ]
    assert list_models("loras", tmp_path) == []  # a missing folder lists nothing


def test_resolves_listed_names(tiny_models: TinyModels) -> None:
    root = tiny_models.models_dir
    assert resolve_model("checkpoints", "tiny-sd1.safetensors", root) == tiny_models.checkpoint
    assert resolve_model("checkpoints", "tiny-sd1-diffusers", root) == tiny_models.diffusers_dir
    for kind in ("checkpoints", "vae", "loras", "controlnet"):
        for name in list_models(kind, root):
            assert resolve_model(kind, name, root).exists()


@pytest.mark.parametrize(
    "name",
    [
        "../x",
        "../checkpoints/tiny-sd1.safetensors",
        "sub/../../x",
        "..\\x",
        "/etc/passwd",
        "C:\\Windows\\win.ini",
        "",
    ],
)
def test_traversal_and_absolute_names_are_rejected(tiny_models: TinyModels, name: str) -> None:
    with pytest.raises(ModelNotFoundError, match="is not a valid loras name"):
        resolve_model("loras", name, tiny_models.models_dir)


def test_unknown_names_list_the_choices(tiny_models: TinyModels) -> None:
    with pytest.raises(ModelNotFoundError, match=r"available: tiny-vae\.safetensors"):
        resolve_model("vae", "other.safetensors", tiny_models.models_dir)
    with pytest.raises(ModelNotFoundError, match="no vae model named 'loras'"):
        resolve_model("vae", "loras", tiny_models.models_dir)  # a folder that is not a model


def test_models_root_comes_from_the_engine_config(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("LATENTGRAPH_MODELS", str(tmp_path))
    monkeypatch.delenv("LATENTGRAPH_CONFIG", raising=False)
    assert model_folder("vae") == tmp_path.resolve() / "vae"
    with pytest.raises(ValueError, match="unknown model kind"):
        model_folder("embeddings")  # type: ignore[arg-type]
