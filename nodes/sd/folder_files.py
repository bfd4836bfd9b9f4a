"""Listing a user folder (models, input images) as names a graph file can hold.

Both the model loaders' and LoadImage's choices come from here, so they agree on what is listed:
relative POSIX paths, hidden entries skipped, symlinked folders followed once, case-insensitive order.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path


def list_files(
    folder: Path, suffixes: Collection[str], *, folder_marker: str | None = None
) -> list[str]:
    """Files under `folder` whose suffix (any case) is in `suffixes`, as sorted relative paths.

    A subfolder holding `folder_marker` (a diffusers folder's `model_index.json`, say) is listed as
    one entry and not entered. A folder that does not exist lists nothing.
    """
    if not folder.is_dir():
        return []
    names: list[str] = []
    seen: set[Path] = set()

    def walk(directory: Path) -> None:
        try:
            real = directory.resolve()
        except (OSError, RuntimeError):  # a symlink loop (RuntimeError before Python 3.13)
            return
        if real in seen:  # a symlinked folder that leads back to one already listed
            return
        seen.add(real)
        for entry in sorted(directory.iterdir()):
            if entry.name.startswith("."):
                continue
            if entry.is_dir():
                if folder_marker and (entry / folder_marker).is_file():
                    names.append(entry.relative_to(folder).as_posix())
                else:
                    walk(entry)
            elif entry.suffix.lower() in suffixes:
                names.append(entry.relative_to(folder).as_posix())

    walk(folder)
    return sorted(names, key=str.lower)
