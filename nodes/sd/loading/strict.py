"""Build models on the meta device and load weights into them strictly, as nanoGPT does.

Converted weights must match the model built from the config key for key and shape, and tensors
under a component's prefix that the converter left unused count as unexpected (a short allow-list
covers real files' harmless extras such as `position_ids`). diffusers folders load through
`from_pretrained`, whose warnings about ill-fitting weights become errors here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nodes.sd.loading.weight_files import CheckpointError, listing

if TYPE_CHECKING:
    import torch

    from nodes.sd.loading.streaming import Convert, TensorSource

# Real files carry these beside the weights; the models have no place for them.
HARMLESS_SUFFIXES = ("position_ids", "logit_scale", "attn_mask")
# OpenCLIP's converter splits or transposes these into new tensors, so identity cannot track them.
COPIED_BY_CONVERTER = ("in_proj_weight", "in_proj_bias", "text_projection")


def _empty(factory: Callable[[], Any]) -> Any:
    """Build a module with its parameters on the meta device: no memory, no random init."""
    from accelerate import init_empty_weights
    from transformers.initialization import no_init_weights

    # Random init on meta tensors computes nothing but still costs ~0.5 s of Python for CLIP;
    # no_init_weights skips it (it swaps torch's init functions while the model is built).
    with init_empty_weights(), no_init_weights():
        return factory()


def build_unet(config: Mapping[str, Any]) -> Any:
    from diffusers import UNet2DConditionModel

    return _empty(lambda: UNet2DConditionModel.from_config(dict(config)))


def build_vae(config: Mapping[str, Any]) -> Any:
    from diffusers import AutoencoderKL

    return _empty(lambda: AutoencoderKL.from_config(dict(config)))


def build_text_encoder(config: Mapping[str, Any], with_projection: bool) -> Any:
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    cls = CLIPTextModelWithProjection if with_projection else CLIPTextModel
    return _empty(lambda: cls(CLIPTextConfig.from_dict(dict(config))))


def build_controlnet(config: Mapping[str, Any]) -> Any:
    from diffusers import ControlNetModel as DiffusersControlNet

    return _empty(lambda: DiffusersControlNet.from_config(dict(config)))


def load_strict(
    model: Any,
    weights: Mapping[str, torch.Tensor | None],
    *,
    component: str,
    path: str | Path | None = None,
    unused: Iterable[str] = (),
) -> None:
    """Load `weights` into `model` only if keys and shapes match exactly; else name every difference.

    `unused` lists source keys the converter did not consume; they count as unexpected.
    """
    given = check_fit(model, weights, component=component, path=path, unused=unused)
    model.load_state_dict(given, strict=True, assign=True)


def check_fit(
    model: Any,
    weights: Mapping[str, torch.Tensor | None],
    *,
    component: str,
    path: str | Path | None = None,
    unused: Iterable[str] = (),
) -> dict[str, torch.Tensor]:
    """The weights `model` takes, if keys and shapes match exactly; else name every difference.

    Only shapes are compared, so `weights` may be meta tensors.
    """
    expected = model.state_dict()
    given = {
        k: v
        for k, v in weights.items()
        if v is not None and not (k not in expected and k.endswith(HARMLESS_SUFFIXES))
    }
    missing = sorted(set(expected) - set(given))
    unexpected = sorted(set(given) - set(expected)) + sorted(unused)
    mis_shaped = [
        f"{k}: file {tuple(given[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in sorted(set(given) & set(expected))
        if tuple(given[k].shape) != tuple(expected[k].shape)
    ]
    if missing or unexpected or mis_shaped:
        name = Path(path).name if path else "the weights"
        parts = [
            f"{len(found)} {label} ({listing(found)})"
            for label, found in (
                ("missing", missing),
                ("unexpected", unexpected),
                ("mis-shaped", mis_shaped),
            )
            if found
        ]
        raise CheckpointError(
            f"{name}: the {component} weights do not fit its config: {'; '.join(parts)}",
            code="weights_mismatch",
            path=path,
            component=component,
            missing=missing,
            unexpected=unexpected,
            mis_shaped=mis_shaped,
        )
    return given


def load_streaming(
    model: Any,
    source: TensorSource,
    keys: Iterable[str],
    convert: Convert,
    placement: tuple[torch.device, torch.dtype],
    *,
    component: str,
    path: Path,
    dropped: frozenset[str] = frozenset(),
) -> None:
    """Fill `model` (built on meta) with `convert` of the source `keys`, strictly, one tensor at a time.

    Every key and shape is checked on meta tensors before the bulk of the data is read; see
    `nodes/sd/loading/streaming.py` for how the converter's output is traced back to the file.
    """
    from nodes.sd.loading.streaming import caster, resolve_computed, stream_views, trace

    keys = list(keys)
    cast = caster(*placement)
    conversion = trace(source, keys, convert)
    resolve_computed(conversion, source, keys, convert, cast)
    unused = [
        k
        for k in conversion.unused
        if k not in dropped and source[k].numel() and not k.endswith(HARMLESS_SUFFIXES)
    ]
    given = check_fit(model, conversion.targets, component=component, path=path, unused=unused)
    stream_views(model, conversion, source, set(given), cast)


def unused_keys(source: Mapping[str, torch.Tensor], converted: Mapping[str, Any]) -> list[str]:
    """Source tensors that no converted tensor shares memory with: the converter dropped them."""
    used = {t.data_ptr() for t in converted.values() if t is not None}
    return sorted(
        key
        for key, tensor in source.items()
        if tensor.numel()
        and tensor.data_ptr() not in used
        and not key.endswith(HARMLESS_SUFFIXES + COPIED_BY_CONVERTER)
    )


def under(state_dict: Mapping[str, torch.Tensor], *prefixes: str) -> dict[str, torch.Tensor]:
    return {k: v for k, v in state_dict.items() if k.startswith(prefixes)}


def place(model: Any, device: torch.device, dtype: torch.dtype) -> Any:
    import torch

    # nn.Module.to, not diffusers' ModelMixin.to, which warns about fp32 modules on every dtype cast.
    return torch.nn.Module.to(model, device=device, dtype=dtype).eval().requires_grad_(False)


def from_pretrained_strict(
    cls: Any, folder: Path, component: str, dtype: torch.dtype, dtype_key: str = "torch_dtype"
) -> Any:
    """`cls.from_pretrained` on a local folder; load failures and ill-fitting weights are errors."""
    try:
        model, info = cls.from_pretrained(
            str(folder), local_files_only=True, output_loading_info=True, **{dtype_key: dtype}
        )
    except Exception as error:
        raise CheckpointError(
            f"{folder.parent.name}/{folder.name} could not be loaded as a diffusers {component}: "
            f"{error}",
            code="corrupt",
            path=folder,
        ) from None
    _check_loading_info(info, component, folder)
    return model


def _check_loading_info(info: Mapping[str, Any], component: str, folder: Path) -> None:
    """from_pretrained only warns about missing or unexpected weights; we refuse them."""
    problems = {
        name: sorted(str(k) for k in info.get(name) or [] if not str(k).endswith(HARMLESS_SUFFIXES))
        for name in ("missing_keys", "unexpected_keys", "mismatched_keys")
    }
    if any(problems.values()):
        summary = "; ".join(
            f"{len(v)} {k.replace('_', ' ')} ({listing(v)})" for k, v in problems.items() if v
        )
        raise CheckpointError(
            f"{folder.parent.name}/{folder.name}: the weights do not fit its config: {summary}",
            code="weights_mismatch",
            path=folder,
            component=component,
            missing=problems["missing_keys"],
            unexpected=problems["unexpected_keys"],
            mis_shaped=problems["mismatched_keys"],
        )
