"""Loader nodes: checkpoints, VAEs, ControlNets and LoRAs from the models folder.

Models are ordinary node outputs: cached by lineage like any other, placed on the best device,
and fingerprinted by file size and modification time, so that replacing a file reloads it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from engine.config import Paths
from engine.context import RunContext
from engine.errors import NodeInputError
from engine.node import Input, Node, Outputs, node
from nodes.sd.values import ClipModel, ControlNetModel, UNetModel, VaeModel

Precision = Literal["auto", "fp32", "fp16", "bf16"]
PRECISION_HELP = "auto = fp16 on a GPU, fp32 on the CPU"


def _choices(kind: str) -> object:
    def list_files(paths: Paths) -> list[str]:
        from nodes.sd.model_files import list_models

        return list_models(kind, paths.models)  # type: ignore[arg-type]

    return list_files


class _ModelFileNode(Node):
    """Shared by loaders: resolve the chosen file safely, and fingerprint it cheaply."""

    kind = ""

    def chosen(self) -> str:
        raise NotImplementedError

    def _path(self, paths: Paths, input_name: str) -> Path:
        from nodes.sd.model_files import resolve_model

        try:
            return resolve_model(self.kind, self.chosen(), paths.models)  # type: ignore[arg-type]
        except (ValueError, FileNotFoundError) as exc:
            raise NodeInputError(input_name, str(exc)) from None

    def fingerprint(self, paths: Paths) -> str:
        from nodes.sd.model_files import resolve_model

        path = resolve_model(self.kind, self.chosen(), paths.models)  # type: ignore[arg-type]
        stat = path.stat()
        return f"{path}:{stat.st_size}:{stat.st_mtime_ns}"


def _dtype(precision: str) -> str | None:
    return None if precision == "auto" else precision


def _load_error(input_name: str, exc: Exception) -> NodeInputError:
    return NodeInputError(input_name, getattr(exc, "message", None) or str(exc))


class CheckpointOut(Outputs):
    model: UNetModel
    clip: ClipModel
    vae: VaeModel


@node("LoadCheckpoint", category="loaders", volatile=True)
class LoadCheckpoint(_ModelFileNode):
    """Load a Stable Diffusion checkpoint (SD1.x, SD2.x, SDXL; single file or diffusers folder)."""

    kind = "checkpoints"
    checkpoint: str = Input(choices=_choices("checkpoints"), tooltip="a file in models/checkpoints")
    prediction: Literal["auto", "epsilon", "v_prediction"] = Input(
        "auto", tooltip="auto detects SD2 768-v models; set it when detection guesses wrong"
    )
    precision: Precision = Input("auto", tooltip=PRECISION_HELP)

    def chosen(self) -> str:
        return self.checkpoint

    def run(self, ctx: RunContext) -> CheckpointOut:
        from nodes.sd.checkpoint import CheckpointError, load_checkpoint

        path = self._path(ctx.paths, "checkpoint")
        prediction = None if self.prediction == "auto" else self.prediction
        try:
            loaded = load_checkpoint(path, prediction_type=prediction, dtype=_dtype(self.precision))
        except CheckpointError as exc:
            raise _load_error("checkpoint", exc) from None
        return CheckpointOut(model=loaded.unet, clip=loaded.clip, vae=loaded.vae)


class VaeOut(Outputs):
    vae: VaeModel


@node("LoadVAE", category="loaders", volatile=True)
class LoadVAE(_ModelFileNode):
    """Load a standalone VAE file (original or diffusers keys) from models/vae."""

    kind = "vae"
    vae: str = Input(choices=_choices("vae"), tooltip="a file in models/vae")
    precision: Precision = Input("auto", tooltip=PRECISION_HELP)

    def chosen(self) -> str:
        return self.vae

    def run(self, ctx: RunContext) -> VaeOut:
        from nodes.sd.checkpoint import CheckpointError, load_vae

        try:
            loaded = load_vae(self._path(ctx.paths, "vae"), dtype=_dtype(self.precision))
        except CheckpointError as exc:
            raise _load_error("vae", exc) from None
        return VaeOut(vae=loaded)


class ControlNetOut(Outputs):
    control_net: ControlNetModel


@node("LoadControlNet", category="loaders", volatile=True)
class LoadControlNet(_ModelFileNode):
    """Load a ControlNet (original `control_model.*` or diffusers layout) from models/controlnet."""

    kind = "controlnet"
    control_net: str = Input(choices=_choices("controlnet"), tooltip="a file in models/controlnet")
    precision: Precision = Input("auto", tooltip=PRECISION_HELP)

    def chosen(self) -> str:
        return self.control_net

    def run(self, ctx: RunContext) -> ControlNetOut:
        from nodes.sd.checkpoint import CheckpointError, load_controlnet

        try:
            loaded = load_controlnet(
                self._path(ctx.paths, "control_net"), dtype=_dtype(self.precision)
            )
        except CheckpointError as exc:
            raise _load_error("control_net", exc) from None
        return ControlNetOut(control_net=loaded)


class ModelClipOut(Outputs):
    model: UNetModel
    clip: ClipModel


@node("LoadLora", category="loaders", volatile=True)
class LoadLora(_ModelFileNode):
    """Merge a LoRA (kohya or diffusers keys) into copies of the UNet and text encoder."""

    kind = "loras"
    model: UNetModel = Input()
    clip: ClipModel = Input()
    lora: str = Input(choices=_choices("loras"), tooltip="a file in models/loras")
    strength_model: float = Input(1.0, ge=-100.0, le=100.0, step=0.01)
    strength_clip: float = Input(1.0, ge=-100.0, le=100.0, step=0.01)

    def chosen(self) -> str:
        return self.lora

    def run(self, ctx: RunContext) -> ModelClipOut:
        from nodes.sd.checkpoint import CheckpointError
        from nodes.sd.lora import apply_lora

        try:
            unet, clip = apply_lora(
                self.model,
                self.clip,
                self._path(ctx.paths, "lora"),
                self.strength_model,
                self.strength_clip,
                name=self.lora,
            )
        except CheckpointError as exc:
            raise _load_error("lora", exc) from None
        assert unet is not None and clip is not None
        return ModelClipOut(model=unet, clip=clip)
