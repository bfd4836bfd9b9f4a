"""Where nodes write their files: an output store that numbers and writes them.

Nodes hand over encoded bytes instead of writing to disk themselves, so that whoever owns the
output folder (the CLI, the server, or a server on another machine than the worker) writes them.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path, PurePosixPath
from typing import Protocol


class OutputStore(Protocol):
    """Writes a node's files into the output folder and says what they were named."""

    def save_numbered(
        self, subfolder: str, stem: str, suffix: str, files: list[bytes]
    ) -> list[str]:
        """Write `files` as `<stem>_00001<suffix>`, ... numbering on from files already there.

        Returns each file's path relative to the output folder, in POSIX form.
        """
        ...


class FolderOutputStore:
    """An output store over a local folder; one lock, so concurrent jobs never pick the same number."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._lock = threading.Lock()

    def save_numbered(
        self, subfolder: str, stem: str, suffix: str, files: list[bytes]
    ) -> list[str]:
        relative = PurePosixPath(subfolder)
        if relative.is_absolute() or ".." in relative.parts:
            raise ValueError(f"{subfolder!r} must stay inside the output folder")
        folder = self.root.joinpath(*relative.parts)
        with self._lock:
            folder.mkdir(parents=True, exist_ok=True)
            counter = _next_counter(folder, stem, suffix)
            names = []
            for data in files:
                name, counter = _create_exclusive(folder, stem, suffix, counter, data)
                names.append((relative / name).as_posix())
            return names


def _create_exclusive(
    folder: Path, stem: str, suffix: str, counter: int, data: bytes
) -> tuple[str, int]:
    """Write `data` under the first free number from `counter`; returns the name and next number.

    Exclusive create, because another process saving to the same folder takes its own numbers.
    """
    while True:
        name = f"{stem}_{counter:05d}{suffix}"
        counter += 1
        try:
            file = (folder / name).open("xb")
        except FileExistsError:
            continue
        try:
            with file:
                file.write(data)
        except BaseException:
            (folder / name).unlink(missing_ok=True)  # never leave half a file
            raise
        return name, counter


def _next_counter(folder: Path, stem: str, suffix: str) -> int:
    pattern = re.compile(rf"^{re.escape(stem)}_(\d+){re.escape(suffix)}$")
    numbers = [int(m.group(1)) for p in folder.iterdir() if (m := pattern.match(p.name))]
    return max(numbers, default=0) + 1
