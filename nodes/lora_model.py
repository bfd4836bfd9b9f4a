"""LoRA on the UNet alone, for graphs whose text encoder stays as it is."""

from __future__ import annotations

from typing import Any

from engine.context import RunContext
from engine.node import Input, node
from nodes.generation import DescribesGeneration, Upstream
from nodes.loaders import _choices, _ModelFileNode, lora_parameters
from nodes.sd.values import UNetModel
from nodes.shared_outputs import ModelOut


@node("LoadLoraModelOnly", category="loaders", volatile=True)
class LoadLoraModelOnly(DescribesGeneration, _ModelFileNode):
    """Merge a LoRA (kohya or diffusers keys) into a copy of the UNet; text-encoder layers are skipped."""

    kind, file_input = "loras", "lora"
    model: UNetModel = Input()
    lora: str = Input(choices=_choices("loras"), tooltip="a file in models/loras")
    strength_model: float = Input(1.0, ge=-100.0, le=100.0, step=0.01)

    @classmethod
    def generation_parameters(cls, inputs: Upstream) -> dict[str, Any]:
        return lora_parameters(inputs, None)

    def run(self, ctx: RunContext) -> ModelOut:
        from nodes.sd.lora import apply_lora

        with self._blamed_on_file():
            unet, _ = apply_lora(
                self.model, None, self._file(ctx.paths), self.strength_model, 0.0, name=self.lora
            )
        assert unet is not None
        return ModelOut(model=unet)
