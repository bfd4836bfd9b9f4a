"""Loader nodes: checkpoints, VAEs, ControlNets and LoRAs from the models folder.

Models are ordinary node outputs: cached by lineage like any other, placed on the best device,
and fingerprinted by file size and modification time, so that replacing a file reloads it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from engine.config import Paths
from engine.context import RunContext
from engine.errors import NodeInputError
from engine.node import Input, Node, Outputs, node
from nodes.controlnet import CONTROLNET_MODEL
from nodes.generation import DescribesGeneration, Upstream, file_label
from nodes.sd.infotext import format_number
from nodes.sd.values import ClipModel, ControlNetModel, UNetModel, VaeModel

Precision = Literal["auto", "fp32", "fp16", "bf16"]
PRECISION_HELP = "auto = fp16 on a GPU, fp32 on the CPU"
CheckpointPrecision = Literal["auto", "fp32", "fp16", "bf16", "fp16-weights"]
CHECKPOINT_PRECISION_HELP = (
    "auto = fp16 on a GPU, fp32 on the CPU (fp16-weights there if fp32 would not fit in memory); "
    "fp16-weights = weights kept in fp16, each layer computed in fp32: half the memory"
)


def _choices(kind: str) -> Callable[[Paths], list[str]]:
    def list_files(paths: Paths) -> list[str]:
        from nodes.sd.model_files import list_models

        return list_models(kind, paths.models, with_builtin=True)  # type: ignore[arg-type]

    # Named in "not found" errors, so that a missing model says where it was looked for.
    list_files.where = lambda paths: f"the {kind} folder {paths.models / kind}"  # type: ignore[attr-defined]
    return list_files


class _ModelFileNode(Node):
    """Shared by loaders: the input `file_input` names a file in the models subfolder `kind`."""

    kind = ""
    file_input = ""

    def _file(self, paths: Paths) -> Path:
        """The chosen file, resolved inside its models subfolder."""
        from nodes.sd.model_files import resolve_model

        try:
            name = getattr(self, self.file_input)
            return resolve_model(self.kind, name, paths.models, with_builtin=True)  # type: ignore[arg-type]
        except (ValueError, FileNotFoundError) as exc:
            raise NodeInputError(self.file_input, str(exc)) from None

    def fingerprint(self, paths: Paths) -> str:
        path = self._file(paths)
        stat = path.stat()
        return f"{path}:{stat.st_size}:{stat.st_mtime_ns}"

    @contextmanager
    def _blamed_on_file(self) -> Iterator[None]:
        """A file that cannot be loaded is an error of the input that chose it."""
        from nodes.sd.loading.weight_files import CheckpointError

        try:
            yield
        except CheckpointError as exc:
            raise NodeInputError(self.file_input, exc.message or str(exc)) from None


def _dtype(precision: str) -> str | None:
    return None if precision == "auto" else precision


class CheckpointOut(Outputs):
    model: UNetModel
    clip: ClipModel
    vae: VaeModel


@node("LoadCheckpoint", category="loaders", volatile=True)
class LoadCheckpoint(DescribesGeneration, _ModelFileNode):
    """Load a Stable Diffusion checkpoint (SD1.x, SD2.x, SDXL; single file or diffusers folder)."""

    kind, file_input = "checkpoints", "checkpoint"
    checkpoint: str = Input(choices=_choices("checkpoints"), tooltip="a file in models/checkpoints")
    prediction: Literal["auto", "epsilon", "v_prediction"] = Input(
        "auto", tooltip="auto detects SD2 768-v models; set it when detection guesses wrong"
    )
    precision: CheckpointPrecision = Input("auto", tooltip=CHECKPOINT_PRECISION_HELP)

    @classmethod
    def generation_parameters(cls, inputs: Upstream) -> dict[str, Any]:
        return {"Model": file_label(inputs.value("checkpoint"))}

    def run(self, ctx: RunContext) -> CheckpointOut:
        from nodes.sd.loading.single_file import load_checkpoint
        from nodes.sd.lowmem import store_in_fp16

        prediction = None if self.prediction == "auto" else self.prediction
        path = self._file(ctx.paths)
        low_memory = self._low_memory(path)
        dtype = "fp16" if low_memory else _dtype(self.precision)
        with self._blamed_on_file():
            loaded = load_checkpoint(path, prediction_type=prediction, dtype=dtype)
        if low_memory:
            clip = loaded.clip
            for module in (
                loaded.unet.unet,
                clip.text_encoder,
                clip.text_encoder_2,
                loaded.vae.vae,
            ):
                if module is not None:
                    store_in_fp16(module)
        return CheckpointOut(model=loaded.unet, clip=loaded.clip, vae=loaded.vae)

    def _low_memory(self, path: Path) -> bool:
        """fp16-weights when asked, or on "auto" when the fp32 model would not fit on the CPU."""
        from nodes.sd.devices import best_device
        from nodes.sd.lowmem import LOW_MEMORY, fits_in_memory

        if self.precision == "auto" and best_device().type == "cpu" and not fits_in_memory(path):
            return True
        return self.precision == LOW_MEMORY


class VaeOut(Outputs):
    vae: VaeModel


@node("LoadVAE", category="loaders", volatile=True)
class LoadVAE(DescribesGeneration, _ModelFileNode):
    """Load a standalone VAE file (original or diffusers keys) from models/vae."""

    kind, file_input = "vae", "vae"
    vae: str = Input(choices=_choices("vae"), tooltip="a file in models/vae")
    precision: Precision = Input("auto", tooltip=PRECISION_HELP)

    @classmethod
    def generation_parameters(cls, inputs: Upstream) -> dict[str, Any]:
        return {"VAE": file_label(inputs.value("vae"))}

    def run(self, ctx: RunContext) -> VaeOut:
        from nodes.sd.loading.vae_file import load_vae

        with self._blamed_on_file():
            return VaeOut(vae=load_vae(self._file(ctx.paths), dtype=_dtype(self.precision)))


class ControlNetOut(Outputs):
    control_net: ControlNetModel


@node("LoadControlNet", category="loaders", volatile=True)
class LoadControlNet(DescribesGeneration, _ModelFileNode):
    """Load a ControlNet (original `control_model.*` or diffusers layout) from models/controlnet."""

    kind, file_input = "controlnet", "control_net"
    control_net: str = Input(choices=_choices("controlnet"), tooltip="a file in models/controlnet")
    precision: Precision = Input("auto", tooltip=PRECISION_HELP)

    @classmethod
    def generation_parameters(cls, inputs: Upstream) -> dict[str, Any]:
        return {CONTROLNET_MODEL: file_label(inputs.value("control_net"))}

    def run(self, ctx: RunContext) -> ControlNetOut:
        from nodes.sd.loading.controlnet_file import load_controlnet

        with self._blamed_on_file():
            loaded = load_controlnet(self._file(ctx.paths), dtype=_dtype(self.precision))
        return ControlNetOut(control_net=loaded)


class ModelClipOut(Outputs):
    model: UNetModel
    clip: ClipModel


@node("LoadLora", category="loaders", volatile=True)
class LoadLora(DescribesGeneration, _ModelFileNode):
    """Merge a LoRA (kohya or diffusers keys) into copies of the UNet and text encoder."""

    kind, file_input = "loras", "lora"
    model: UNetModel = Input()
    clip: ClipModel = Input()
    lora: str = Input(choices=_choices("loras"), tooltip="a file in models/loras")
    strength_model: float = Input(1.0, ge=-100.0, le=100.0, step=0.01)
    strength_clip: float = Input(1.0, ge=-100.0, le=100.0, step=0.01)

    @classmethod
    def generation_parameters(cls, inputs: Upstream) -> dict[str, Any]:
        return lora_parameters(inputs, inputs.value("strength_clip"))

    def run(self, ctx: RunContext) -> ModelClipOut:
        from nodes.sd.lora import apply_lora

        with self._blamed_on_file():
            unet, clip = apply_lora(
                self.model,
                self.clip,
                self._file(ctx.paths),
                self.strength_model,
                self.strength_clip,
                name=self.lora,
            )
        assert unet is not None and clip is not None
        return ModelClipOut(model=unet, clip=clip)


def lora_parameters(inputs: Upstream, strength_clip: float | None) -> dict[str, Any]:
    """`Lora`: each LoRA merged so far, as "name: strength" (model/clip strength when they differ)."""
    strength = inputs.value("strength_model")
    text = f"{file_label(inputs.value('lora'))}: {_strength(strength)}"
    if strength_clip is not None and strength_clip != strength:
        text += f"/{_strength(strength_clip)}"
    earlier = inputs.parameters("model").get("Lora")
    return {"Lora": text if earlier is None else f"{earlier}, {text}"}


def _strength(value: float | None) -> str:
    return "?" if value is None else format_number(float(value))
