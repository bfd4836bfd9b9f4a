"""The one folder walk behind the model loaders' and LoadImage's choices."""

from __future__ import annotations

from pathlib import Path

from nodes.sd.folder_files import list_files
from nodes.sd.images import list_images
from nodes.sd.model_files import list_models


def _touch(folder: Path, *names: str) -> None:
    for name in names:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(b"")


def test_lists_matching_files_in_case_insensitive_order_and_skips_hidden(tmp_path: Path) -> None:
    _touch(tmp_path, "b.PNG", "A.jpg", "sub/c.webp", "notes.txt", ".hidden.png", ".cache/d.png")
    assert list_files(tmp_path, (".png", ".jpg", ".webp")) == ["A.jpg", "b.PNG", "sub/c.webp"]
    assert list_files(tmp_path / "missing", (".png",)) == []


def test_a_marked_folder_is_one_entry(tmp_path: Path) -> None:
    _touch(tmp_path, "pipe/model_index.json", "pipe/unet/w.safetensors", "plain/w.safetensors")
    listed = list_files(tmp_path, (".safetensors",), folder_marker="model_index.json")
    assert listed == ["pipe", "plain/w.safetensors"]


def test_symlinked_folders_are_followed_once(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    _touch(outside, "x.png")
    root = tmp_path / "root"
    root.mkdir()
    (root / "linked").symlink_to(outside, target_is_directory=True)
    (root / "loop").symlink_to(root, target_is_directory=True)  # must not recurse forever
    assert list_files(root, (".png",)) == ["linked/x.png"]


def test_images_and_models_are_listed_by_the_same_rules(tmp_path: Path) -> None:
    _touch(tmp_path / "input", "b.png", "A.png", ".cache/c.png")
    _touch(tmp_path / "models" / "loras", "b.safetensors", "A.safetensors", ".cache/c.safetensors")
    assert list_images(tmp_path / "input") == ["A.png", "b.png"]
    assert list_models("loras", tmp_path / "models") == ["A.safetensors", "b.safetensors"]
