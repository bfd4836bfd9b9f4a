"""The folder output store: numbering that continues from the files already there."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from engine.outputs import FolderOutputStore


def test_files_are_numbered_on_from_what_is_there(tmp_path: Path) -> None:
    store = FolderOutputStore(tmp_path)
    assert store.save_numbered("", "img", ".png", [b"a", b"b"]) == [
        "img_00001.png",
        "img_00002.png",
    ]
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "img_00041.png").write_bytes(b"old")
    assert store.save_numbered("sub", "img", ".png", [b"c"]) == ["sub/img_00042.png"]
    assert (tmp_path / "sub" / "img_00042.png").read_bytes() == b"c"
    assert store.save_numbered("", "img", ".png", [b"d"]) == ["img_00003.png"]


def test_concurrent_saves_never_share_a_number(tmp_path: Path) -> None:
    store = FolderOutputStore(tmp_path)
    names: list[str] = []

    def save() -> None:
        for _ in range(10):
            names.extend(store.save_numbered("", "x", ".png", [b"z"]))

    threads = [threading.Thread(target=save) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(names)) == 40 == len(list(tmp_path.glob("x_*.png")))


@pytest.mark.parametrize("subfolder", ["../out", "/etc", "a/../../b"])
def test_a_subfolder_may_not_leave_the_folder(tmp_path: Path, subfolder: str) -> None:
    with pytest.raises(ValueError, match="inside the output folder"):
        FolderOutputStore(tmp_path / "out").save_numbered(subfolder, "x", ".png", [b"z"])
