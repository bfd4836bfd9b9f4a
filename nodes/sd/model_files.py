"""Model folders as ComfyUI users keep them: `<models>/checkpoints`, `vae`, `loras`, `controlnet`.

Names are paths relative to their folder with forward slashes (`sd15/v1-5.safetensors`), so they are
stable across platforms and safe to put in a graph file; resolving a name never leaves its folder.

With `with_builtin=True` (what the loader nodes use) the models shipped inside the package, in
`nodes/sd/builtin_models/<kind>/`, are listed too and resolve when the user's folder has no file
of that name: a fresh clone can run the example graphs with no download and no copy step.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Literal

from engine.config import Paths
from nodes.sd.folder_files import list_files

ModelKind = Literal["checkpoints", "vae", "loras", "controlnet"]
MODEL_KINDS: tuple[ModelKind, ...] = ("checkpoints", "vae", "loras", "controlnet")
WEIGHT_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin")
# Kinds whose entries may also be diffusers folders (with the file that marks them).
FOLDER_MARKERS: dict[ModelKind, str] = {
    "checkpoints": "model_index.json",
    "vae": "config.json",
    "controlnet": "config.json",
}


BUILTIN_MODELS = Path(__file__).parent / "builtin_models"


class ModelNotFoundError(FileNotFoundError):
    """A model name that is unsafe or names nothing in its folder."""


def model_folder(kind: ModelKind, models_root: str | Path | None = None) -> Path:
    """`<models>/<kind>`, the models root coming from `engine.config.Paths` unless given."""
    if kind not in MODEL_KINDS:
        raise ValueError(f"unknown model kind {kind!r}; known: {', '.join(MODEL_KINDS)}")
    root = Path(models_root) if models_root is not None else Paths.resolve().models
    return root / kind


def list_models(
    kind: ModelKind, models_root: str | Path | None = None, *, with_builtin: bool = False
) -> list[str]:
    """Sorted names of the weight files (and diffusers folders, where the kind allows) under the folder.

    `with_builtin` adds the package's built-in models (a name in both places is listed once).
    """
    if with_builtin:
        merged = set(list_models(kind, models_root)) | set(list_models(kind, BUILTIN_MODELS))
        return sorted(merged, key=str.lower)
    folder = model_folder(kind, models_root)
    return list_files(folder, WEIGHT_SUFFIXES, folder_marker=FOLDER_MARKERS.get(kind))


def resolve_model(
    kind: ModelKind,
    name: str,
    models_root: str | Path | None = None,
    *,
    with_builtin: bool = False,
) -> Path:
    """The path a listed name stands for; absolute names, `..`, and names that exist nowhere fail.

    `with_builtin`: a name the user's folder lacks is looked up among the built-in models; the
    user's own file of the same name wins.
    """
    if (
        with_builtin
        and name not in list_models(kind, models_root)
        and name in list_models(kind, BUILTIN_MODELS)
    ):
        return resolve_model(kind, name, BUILTIN_MODELS)
    folder = model_folder(kind, models_root)
    relative = PurePosixPath(name.replace("\\", "/"))
    if not name or relative.is_absolute() or ".." in relative.parts or ":" in name:
        raise ModelNotFoundError(
            f"{name!r} is not a valid {kind} name: names are relative to {folder}"
        )
    # The check is on the name, not the resolved path, so that symlinked model files keep working.
    path = folder.joinpath(*relative.parts)
    marker = FOLDER_MARKERS.get(kind)
    is_folder_model = path.is_dir() and marker is not None and (path / marker).is_file()
    if not (path.is_file() or is_folder_model):
        available = list_models(kind, models_root, with_builtin=with_builtin)
        hint = f"; available: {', '.join(available[:10])}" if available else f"; {folder} is empty"
        raise ModelNotFoundError(f"no {kind} model named {name!r}{hint}")
    return path
