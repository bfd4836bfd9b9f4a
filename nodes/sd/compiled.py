"""torch.compile for long-running processes: each model compiled once, eager if compiling fails.

`compiled_forward(module)` gives a callable that runs `module` (or one of its methods, such as a
VAE's `decode`) through `torch.compile`. It is made once per module object and method and kept on
the module itself, so later runs reuse the compiled code and it goes away with the model. Compiling
happens on the first call (and again for each new input shape, as torch.compile does); if it fails,
a warning is logged and that model runs eagerly from then on. `compiles_unet` says where compiling
the UNet is worth it.
"""

from __future__ import annotations

import logging
import weakref
from typing import Any

import torch

log = logging.getLogger(__name__)

# Where a compiled method is kept on a module (`_latentgraph_compiled_forward`, ..._decode): in its
# __dict__, not as a registered submodule, so state_dict(), .to() and parameters() never see it.
_ATTRIBUTE = "_latentgraph_compiled_{}"


def compiles_unet(device: torch.device) -> bool:
    """Whether `--compile` compiles UNet and ControlNet forwards on `device`: not on the CPU.

    On the CPU a compiled UNet step measured slower than eager (1.21x for SD1.5, 1.19x for the demo
    model; bench/step_variants.py, bench/RESULTS.md), while a compiled VAE decode measured faster
    (0.90x and 0.52x), so there only the decode is compiled. GPUs, unmeasured here, compile both.
    """
    return device.type != "cpu"


class CompiledForward:
    """Calls a module's method through its torch.compile wrapper, or eagerly once compiling failed."""

    def __init__(self, module: torch.nn.Module, method: str = "forward") -> None:
        self._owner = weakref.ref(module)
        self._method = method
        self.failed = False
        self._compiled: Any = None
        try:
            self._compiled = torch.compile(
                module if method == "forward" else getattr(module, method)
            )
        except Exception as exc:  # torch.compile refuses some platforms when wrapping
            self._give_up(module, exc)

    def owned_by(self, module: torch.nn.Module) -> bool:
        """Whether this wrapper was made for `module` (a copy of a module carries its original's)."""
        return self._owner() is module

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        module = self._owner()
        if module is None:
            raise RuntimeError("the compiled module no longer exists")
        eager = module if self._method == "forward" else getattr(module, self._method)
        if self.failed:
            return eager(*args, **kwargs)
        try:
            return self._compiled(*args, **kwargs)
        except Exception as compile_error:  # Inductor and Dynamo raise many types
            # If the eager forward fails too, the inputs are at fault, not compilation: raise
            # its error and keep compiling later calls.
            result = eager(*args, **kwargs)
            self._give_up(module, compile_error)
            return result

    def __deepcopy__(self, memo: dict[int, Any]) -> None:
        # A deep copy of the module (a LoRA-patched model) is a new model: it compiles its own.
        return None

    def _give_up(self, module: torch.nn.Module, error: Exception) -> None:
        self.failed = True
        self._compiled = None
        log.warning(
            "torch.compile failed for %s; running it eagerly instead: %s: %s",
            type(module).__name__,
            type(error).__name__,
            str(error).strip().splitlines()[0] if str(error).strip() else "",
        )


def compiled_forward(module: torch.nn.Module, method: str = "forward") -> CompiledForward:
    """`module`'s `method` run through torch.compile, made on the first request, reused after it."""
    attribute = _ATTRIBUTE.format(method)
    held = module.__dict__.get(attribute)
    if isinstance(held, CompiledForward) and held.owned_by(module):
        return held
    made = CompiledForward(module, method)
    module.__dict__[attribute] = made
    return made
