"""Load Stable Diffusion weights offline: single-file checkpoints, diffusers folders, VAEs and ControlNets.

Nothing is ever fetched. Single files in the original (LDM/CompVis) layout are converted with
diffusers' own converters (`diffusers.loaders.single_file_utils`) and built from diffusers configs
chosen in this order:

1. the `config=` argument: a dict, or a JSON file, shaped like `configs/sd1.json`
   (`{"family", "prediction_type", "unet", "vae", "text_encoder"[, "text_encoder_2"], "scheduler"}`);
2. the file's own safetensors metadata key `latentgraph.configs`, the same JSON as a string; this is
   how the tests' tiny models go through the real loading code;
3. the shipped config of the detected family (`configs/sd1.json`, `sd2.json`, `sd2-v.json`,
   `sdxl.json`), with the UNet's input channels read from the file (so inpainting models load).

The family comes from the text encoder's key layout (`cond_stage_model.transformer.` = SD1,
`cond_stage_model.model.` = SD2, `conditioner.embedders.1.model.` = SDXL base), cross-checked with the
UNet's cross-attention width (768 / 1024 / 2048). SD2 v-prediction cannot be seen from the keys, so the
prediction type is, first match wins: the `prediction_type=` argument; the config's `prediction_type`
when the config came from the argument or the metadata; `parameterization: "v"` in an A1111-style
sidecar `<name>.yaml`; a `v_pred` key in the file (ComfyUI's marker); "vpred"/"v-pred"/"v_pred"/"768-v"
in the file name; for SD2 only, ComfyUI's heuristic (std of
`output_blocks.11.1.transformer_blocks.0.norm1.bias` above 0.09 means v); otherwise epsilon.

Single .safetensors files stream (`streaming.py`): models are built on the meta device, the converters
run on meta tensors to learn where each weight comes from, then every tensor is read once, cast to the
compute dtype as it is assigned and let go, so a load peaks at the model plus one tensor. Pickles
(.ckpt) are read whole first and then go through the same path. Loading is strict, as nanoGPT's is: converted weights must match the model built from the config key
for key and shape, and tensors under a component's prefix that the converter left unused count as
unexpected (a short allow-list covers real files' harmless extras such as `position_ids`). Every
problem, including corrupt or truncated files, raises `CheckpointError` with a `.code` and `.details`.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from nodes.sd.devices import resolve_placement
from nodes.sd.tokenizer import clip_tokenizer
from nodes.sd.values import (
    ClipModel,
    ControlNetModel,
    Family,
    NoiseSchedule,
    Prediction,
    UNetModel,
    VaeModel,
)

if TYPE_CHECKING:
    import torch

    from nodes.sd.streaming import Convert, TensorSource

# huggingface_hub reads this when first imported; the loaders below also pass local_files_only.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

log = logging.getLogger(__name__)

CONFIG_DIR = Path(__file__).parent / "configs"
METADATA_CONFIGS = "latentgraph.configs"
SCALING_FACTOR: dict[Family, float] = {"sd1": 0.18215, "sd2": 0.18215, "sdxl": 0.13025}
CONTEXT_DIM: dict[Family, int] = {"sd1": 768, "sd2": 1024, "sdxl": 2048}

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
CLIP_L_PREFIX = "cond_stage_model.transformer."
OPEN_CLIP_H_PREFIX = "cond_stage_model.model."
SDXL_CLIP_L_PREFIX = "conditioner.embedders.0.transformer."
SDXL_CLIP_G_PREFIX = "conditioner.embedders.1.model."
SDXL_REFINER_PREFIX = "conditioner.embedders.0.model."
CONTROLNET_PREFIX = "control_model."
CONTROLNET_SENTINELS = (
    "control_model.time_embed.0.weight",
    "controlnet_cond_embedding.conv_in.weight",
    "input_hint_block.0.weight",
)
SD2_V_SENTINEL = "output_blocks.11.1.transformer_blocks.0.norm1.bias"

# Real files carry these beside the weights; the models have no place for them.
HARMLESS_SUFFIXES = ("position_ids", "logit_scale", "attn_mask")
# OpenCLIP's converter splits or transposes these into new tensors, so identity cannot track them.
COPIED_BY_CONVERTER = ("in_proj_weight", "in_proj_bias", "text_projection")

Kind = Literal["sd1", "sd2", "sdxl", "controlnet"]


class CheckpointError(Exception):
    """A model file that cannot be loaded; `code` names the problem and `details` carries the specifics."""

    def __init__(self, message: str, *, code: str, path: str | Path | None = None, **details: Any):
        super().__init__(message)
        self.message = message
        self.code = code
        self.details: dict[str, Any] = {
            "code": code,
            "path": str(path) if path else None,
            **details,
        }


@dataclass(frozen=True)
class Checkpoint:
    """The three models a Stable Diffusion checkpoint holds."""

    unet: UNetModel
    clip: ClipModel
    vae: VaeModel


# --- reading files -------------------------------------------------------------------------------


def read_state_dict(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors and safetensors metadata of one file; the format is read from the bytes, not the name.

    .safetensors files are memory-mapped; pickles (.ckpt/.pt/.bin) load with `weights_only=True`.
    A nested "state_dict" is unwrapped and non-tensor entries (epoch, global_step) are dropped.
    """
    file = Path(path)
    if not file.is_file():
        raise CheckpointError(
            f"{file} does not exist or is not a file", code="not_found", path=file
        )
    with file.open("rb") as handle:
        head = handle.read(9)
    if len(head) == 9 and head[8:9] == b"{":
        metadata = _safetensors_metadata(file)  # names truncation before the library can
        return _read_safetensors(file), metadata
    if head[:2] == b"PK" or head[:1] == b"\x80":
        return _read_pickle(file), {}
    raise CheckpointError(
        f"{file.name} is neither a safetensors file nor a PyTorch checkpoint "
        f"(it starts with bytes {head[:8].hex()})",
        code="corrupt",
        path=file,
    )


def open_tensors(path: str | Path) -> TensorSource:
    """A file's tensors to stream from: shapes now, data one tensor at a time (see streaming.py).

    .safetensors files are read lazily, tensor by tensor. Pickles (.ckpt/.pt/.bin) are loaded
    whole first (`weights_only=True`), as `read_state_dict` does: the simpler path, so a .ckpt
    load briefly holds the file's tensors and the model.
    """
    from nodes.sd.streaming import DictSource, SafetensorsSource

    file = Path(path)
    if not file.is_file():
        raise CheckpointError(
            f"{file} does not exist or is not a file", code="not_found", path=file
        )
    with file.open("rb") as handle:
        head = handle.read(9)
    if len(head) == 9 and head[8:9] == b"{":
        _safetensors_metadata(file)  # names truncation before the library can
        try:
            return SafetensorsSource(file)
        except Exception as error:  # safetensors raises its own error types for every defect
            raise CheckpointError(
                f"{file.name} could not be read as safetensors: {error}", code="corrupt", path=file
            ) from None
    if head[:2] == b"PK" or head[:1] == b"\x80":
        return DictSource(_read_pickle(file))
    raise CheckpointError(
        f"{file.name} is neither a safetensors file nor a PyTorch checkpoint "
        f"(it starts with bytes {head[:8].hex()})",
        code="corrupt",
        path=file,
    )


def _safetensors_metadata(file: Path) -> dict[str, str]:
    """Check the header against the file's size and return its `__metadata__`."""
    size = file.stat().st_size
    with file.open("rb") as handle:
        header_len = int.from_bytes(handle.read(8), "little")
        if header_len > size - 8:
            raise CheckpointError(
                f"{file.name} is truncated or not a safetensors file: its header claims "
                f"{header_len:,} bytes but the file has only {size:,}",
                code="truncated",
                path=file,
            )
        raw = handle.read(header_len)
    try:
        header = json.loads(raw)
        data_end = max(
            (int(t["data_offsets"][1]) for k, t in header.items() if k != "__metadata__"), default=0
        )
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as error:
        raise CheckpointError(
            f"{file.name} is not a valid safetensors file: its header is unreadable ({error})",
            code="corrupt",
            path=file,
        ) from None
    data_size = size - 8 - header_len
    if data_size < data_end:
        raise CheckpointError(
            f"{file.name} is truncated: its header describes {data_end:,} bytes of tensor data "
            f"but only {data_size:,} follow",
            code="truncated",
            path=file,
            expected_bytes=data_end,
            actual_bytes=data_size,
        )
    metadata = header.get("__metadata__") or {}
    return {str(k): str(v) for k, v in metadata.items()}


def _read_safetensors(file: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    try:
        return load_file(str(file), device="cpu")
    except Exception as error:  # safetensors raises its own error types for every defect
        raise CheckpointError(
            f"{file.name} could not be read as safetensors: {error}", code="corrupt", path=file
        ) from None


def _read_pickle(file: Path) -> dict[str, torch.Tensor]:
    import pickle

    import torch

    try:
        obj = torch.load(str(file), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise CheckpointError(
            f"{file.name} holds Python objects other than tensors and was refused "
            f"(weights_only=True): {first_line}. Convert it to .safetensors.",
            code="unsafe_pickle",
            path=file,
        ) from None
    except Exception as error:
        raise CheckpointError(
            f"{file.name} is corrupt or truncated: {error}", code="corrupt", path=file
        ) from None
    while isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    tensors = (
        {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
        if isinstance(obj, dict)
        else {}
    )
    if not tensors:
        raise CheckpointError(f"{file.name} holds no tensors", code="no_tensors", path=file)
    return tensors


# --- what a file holds ---------------------------------------------------------------------------


def detect_family(state_dict: Mapping[str, Any]) -> Kind:
    """sd1, sd2, sdxl or controlnet, from the text encoder's key layout and the UNet's context width."""
    if any(key in state_dict for key in CONTROLNET_SENTINELS) or _has_prefix(
        state_dict, CONTROLNET_PREFIX
    ):
        return "controlnet"
    if not _has_prefix(state_dict, UNET_PREFIX):
        raise CheckpointError(
            f"no Stable Diffusion UNet weights (no key starts with {UNET_PREFIX!r}); "
            f"keys look like: {_listing(sorted(state_dict), 5)}",
            code="not_a_checkpoint",
        )
    if _has_prefix(state_dict, SDXL_REFINER_PREFIX) and not _has_prefix(
        state_dict, SDXL_CLIP_G_PREFIX
    ):
        raise CheckpointError("SDXL refiner checkpoints are not supported", code="unsupported")
    context = _context_dim(state_dict, UNET_PREFIX)
    family: Family
    # The text encoder's layout decides; the UNet's width alone serves files without one.
    if _has_prefix(state_dict, SDXL_CLIP_G_PREFIX):
        family = "sdxl"
    elif _has_prefix(state_dict, OPEN_CLIP_H_PREFIX):
        family = "sd2"
    elif _has_prefix(state_dict, CLIP_L_PREFIX):
        family = "sd1"
    elif context == CONTEXT_DIM["sdxl"] and f"{UNET_PREFIX}label_emb.0.0.weight" in state_dict:
        family = "sdxl"
    elif context == CONTEXT_DIM["sd2"]:
        family = "sd2"
    elif context == CONTEXT_DIM["sd1"]:
        family = "sd1"
    else:
        raise CheckpointError(
            f"the UNet's cross-attention width {context} and the text-encoder keys match no known "
            "family (SD1 768, SD2 1024, SDXL 2048)",
            code="unknown_family",
        )
    if context in CONTEXT_DIM.values() and context != CONTEXT_DIM[family]:
        raise CheckpointError(
            f"inconsistent checkpoint: the text encoder is {family}'s but the UNet's cross-attention "
            f"width is {context}, not {CONTEXT_DIM[family]}",
            code="wrong_family",
        )
    return family


def _has_prefix(state_dict: Mapping[str, Any], prefix: str) -> bool:
    return any(key.startswith(prefix) for key in state_dict)


def _context_dim(state_dict: Mapping[str, Any], prefix: str) -> int | None:
    for key, value in state_dict.items():
        if key.startswith(prefix) and key.endswith("attn2.to_k.weight"):
            return int(value.shape[1])
    return None


def detect_prediction_type(
    path: str | Path, state_dict: Mapping[str, Any], family: Family, in_channels: int = 4
) -> Prediction:
    """The prediction type when neither the caller nor a config says (rule in the module docstring)."""
    file = Path(path)
    sidecar = file.with_suffix(".yaml")
    if sidecar.is_file() and re.search(
        r"parameterization:\s*[\"']?v[\"']?\s*$", sidecar.read_text(errors="replace"), re.MULTILINE
    ):
        return "v_prediction"
    if "v_pred" in state_dict or re.search(r"v[-_]?pred|768-v", file.name.lower()):
        return "v_prediction"
    if family == "sd2" and in_channels == 4:
        bias = state_dict.get(UNET_PREFIX + SD2_V_SENTINEL)
        # ComfyUI's heuristic: v-prediction fine-tunes moved this norm's bias far from zero.
        if bias is not None and float(bias.float().std(unbiased=False)) > 0.09:
            return "v_prediction"
    return "epsilon"


# --- configs -------------------------------------------------------------------------------------


def shipped_config(variant: str) -> dict[str, Any]:
    """One of the configs shipped in `configs/`: "sd1", "sd2", "sd2-v" or "sdxl"."""
    file = CONFIG_DIR / f"{variant}.json"
    if not file.is_file():
        known = sorted(p.stem for p in CONFIG_DIR.glob("*.json"))
        raise ValueError(f"no shipped config {variant!r}; known: {', '.join(known)}")
    return json.loads(file.read_text(encoding="utf-8"))


def _given_configs(
    config: Mapping[str, Any] | str | Path | None, metadata: Mapping[str, str], file: Path
) -> dict[str, Any] | None:
    """The configs from the argument, else from the file's metadata, else None."""
    if isinstance(config, (str, Path)):
        try:
            return json.loads(Path(config).read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise CheckpointError(
                f"config {config} could not be read: {error}", code="bad_config", path=file
            ) from None
    if config is not None:
        return dict(config)
    if METADATA_CONFIGS in metadata:
        try:
            return json.loads(metadata[METADATA_CONFIGS])
        except ValueError as error:
            raise CheckpointError(
                f"{file.name}: metadata {METADATA_CONFIGS!r} is not valid JSON ({error})",
                code="bad_config",
                path=file,
            ) from None
    return None


def _require(configs: Mapping[str, Any], components: Iterable[str], file: Path) -> None:
    missing = [name for name in components if not isinstance(configs.get(name), Mapping)]
    if missing:
        raise CheckpointError(
            f"{file.name}: the config has no {', '.join(missing)} section",
            code="bad_config",
            path=file,
        )


def _schedule(scheduler: Mapping[str, Any]) -> NoiseSchedule:
    defaults = NoiseSchedule()
    return NoiseSchedule(
        beta_start=float(scheduler.get("beta_start", defaults.beta_start)),
        beta_end=float(scheduler.get("beta_end", defaults.beta_end)),
        beta_schedule=str(scheduler.get("beta_schedule", defaults.beta_schedule)),
        num_train_timesteps=int(scheduler.get("num_train_timesteps", defaults.num_train_timesteps)),
    )


# --- building and strict loading -----------------------------------------------------------------


def _empty(factory: Callable[[], Any]) -> Any:
    """Build a module with its parameters on the meta device: no memory, no random init."""
    from accelerate import init_empty_weights
    from transformers.initialization import no_init_weights

    # Random init on meta tensors computes nothing but still costs ~0.5 s of Python for CLIP;
    # no_init_weights skips it (it swaps torch's init functions while the model is built).
    with init_empty_weights(), no_init_weights():
        return factory()


def _build_unet(config: Mapping[str, Any]) -> Any:
    from diffusers import UNet2DConditionModel

    return _empty(lambda: UNet2DConditionModel.from_config(dict(config)))


def _build_vae(config: Mapping[str, Any]) -> Any:
    from diffusers import AutoencoderKL

    return _empty(lambda: AutoencoderKL.from_config(dict(config)))


def _build_text_encoder(config: Mapping[str, Any], with_projection: bool) -> Any:
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    cls = CLIPTextModelWithProjection if with_projection else CLIPTextModel
    return _empty(lambda: cls(CLIPTextConfig.from_dict(dict(config))))


def _build_controlnet(config: Mapping[str, Any]) -> Any:
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
            f"{len(found)} {label} ({_listing(found)})"
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
    `nodes/sd/streaming.py` for how the converter's output is traced back to the file.
    """
    from nodes.sd.streaming import caster, resolve_computed, stream_views, trace

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


def _unused_keys(source: Mapping[str, torch.Tensor], converted: Mapping[str, Any]) -> list[str]:
    """Source tensors that no converted tensor shares memory with: the converter dropped them."""
    used = {t.data_ptr() for t in converted.values() if t is not None}
    return sorted(
        key
        for key, tensor in source.items()
        if tensor.numel()
        and tensor.data_ptr() not in used
        and not key.endswith(HARMLESS_SUFFIXES + COPIED_BY_CONVERTER)
    )


def _under(state_dict: Mapping[str, torch.Tensor], *prefixes: str) -> dict[str, torch.Tensor]:
    return {k: v for k, v in state_dict.items() if k.startswith(prefixes)}


def _place(model: Any, device: torch.device, dtype: torch.dtype) -> Any:
    import torch

    # nn.Module.to, not diffusers' ModelMixin.to, which warns about fp32 modules on every dtype cast.
    return torch.nn.Module.to(model, device=device, dtype=dtype).eval().requires_grad_(False)


def _match_text_model_prefix(weights: Mapping[str, Any], model: Any) -> dict[str, Any]:
    """Give CLIP keys the model's style: transformers 5's CLIPTextModel has no `text_model.` prefix."""
    wants_prefix = any(k.startswith("text_model.") for k in model.state_dict())
    aligned = {}
    for key, value in weights.items():
        bare = key.removeprefix("text_model.")
        aligned[
            bare if not wants_prefix or bare.startswith("text_projection") else f"text_model.{bare}"
        ] = value
    return aligned


def _listing(items: list[str], limit: int = 8) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


# --- single-file checkpoints ---------------------------------------------------------------------


def load_checkpoint(
    path: str | Path,
    *,
    config: Mapping[str, Any] | str | Path | None = None,
    prediction_type: Prediction | None = None,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
) -> Checkpoint:
    """Load a single-file SD1/SD2/SDXL checkpoint, or a diffusers folder, into UNet, CLIP and VAE."""
    file = Path(path)
    if file.is_dir():
        return load_diffusers_folder(
            file, prediction_type=prediction_type, device=device, dtype=dtype
        )
    started = time.perf_counter()
    source = open_tensors(file)
    try:
        return _load_single_file(file, source, config, prediction_type, device, dtype, started)
    finally:
        source.close()


def _load_single_file(
    file: Path,
    state_dict: TensorSource,
    config: Mapping[str, Any] | str | Path | None,
    prediction_type: Prediction | None,
    device: str | torch.device | None,
    dtype: str | torch.dtype | None,
    started: float,
) -> Checkpoint:
    """load_checkpoint for one file: `state_dict` gives meta tensors, and data when read."""
    metadata = state_dict.metadata
    try:
        kind = detect_family(state_dict)
    except CheckpointError as error:
        raise CheckpointError(f"{file.name}: {error.message}", code=error.code, path=file) from None
    if kind == "controlnet":
        raise CheckpointError(
            f"{file.name} is a ControlNet, not a Stable Diffusion checkpoint; load it as a ControlNet",
            code="wrong_family",
            path=file,
            family="controlnet",
        )
    family: Family = kind
    given = _given_configs(config, metadata, file)
    conv_in = state_dict.get(f"{UNET_PREFIX}input_blocks.0.0.weight")
    in_channels = int(conv_in.shape[1]) if conv_in is not None else 4
    prediction = prediction_type or (given or {}).get("prediction_type")
    if prediction is None:
        sentinel = UNET_PREFIX + SD2_V_SENTINEL
        evidence: Mapping[str, Any] = state_dict
        if family == "sd2" and sentinel in state_dict:  # the heuristic reads this tensor's values
            evidence = {**state_dict, sentinel: state_dict.read(sentinel)}
        prediction = detect_prediction_type(file, evidence, family, in_channels)
    if prediction not in ("epsilon", "v_prediction"):
        raise CheckpointError(
            f"{file.name}: unknown prediction type {prediction!r}; use epsilon or v_prediction",
            code="bad_config",
            path=file,
        )
    if given is not None:
        configs = given
    else:
        configs = shipped_config(
            "sd2-v" if family == "sd2" and prediction == "v_prediction" else family
        )
        configs["unet"]["in_channels"] = in_channels
    if configs.get("family", family) != family:
        raise CheckpointError(
            f"{file.name} holds a {family} model but its config is for {configs['family']}",
            code="wrong_family",
            path=file,
        )
    components = ["unet", "vae", "text_encoder", "scheduler"]
    _require(configs, components + (["text_encoder_2"] if family == "sdxl" else []), file)

    placement = resolve_placement(device, dtype)
    unet = _load_ldm_unet(state_dict, configs["unet"], file, placement)
    vae = _load_ldm_vae(state_dict, configs["vae"], file, placement)
    text_encoder, text_encoder_2 = _load_ldm_text_encoders(
        state_dict, configs, family, file, placement
    )
    scaling = float(configs["vae"].get("scaling_factor", SCALING_FACTOR[family]))
    log.info(
        "loaded %s checkpoint %s (%s, %s configs) in %.2f s",
        family,
        file.name,
        prediction,
        "given" if given is not None else "shipped",
        time.perf_counter() - started,
    )
    return Checkpoint(
        unet=UNetModel(
            unet=_place(unet, *placement),
            family=family,
            prediction_type=prediction,
            schedule=_schedule(configs["scheduler"]),
        ),
        clip=ClipModel(
            tokenizer=clip_tokenizer(),
            text_encoder=_place(text_encoder, *placement),
            family=family,
            text_encoder_2=_place(text_encoder_2, *placement)
            if text_encoder_2 is not None
            else None,
            tokenizer_2=clip_tokenizer() if text_encoder_2 is not None else None,
        ),
        vae=VaeModel(vae=_place(vae, *placement), scaling_factor=scaling),
    )


def _load_ldm_unet(
    state_dict: TensorSource,
    config: Mapping[str, Any],
    file: Path,
    placement: tuple[torch.device, torch.dtype],
) -> Any:
    from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint

    model = _build_unet(config)
    load_streaming(
        model,
        state_dict,
        _under(state_dict, UNET_PREFIX),
        lambda source: convert_ldm_unet_checkpoint(source, dict(config)),
        placement,
        component="UNet",
        path=file,
    )
    return model


def _load_ldm_vae(
    state_dict: TensorSource,
    config: Mapping[str, Any],
    file: Path,
    placement: tuple[torch.device, torch.dtype],
) -> Any:
    from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint

    keys = _under(state_dict, VAE_PREFIX)
    if not keys:
        raise CheckpointError(
            f"{file.name} has no VAE weights (no key starts with {VAE_PREFIX!r})",
            code="missing_component",
            path=file,
        )
    model = _build_vae(config)
    load_streaming(
        model,
        state_dict,
        keys,
        lambda source: convert_ldm_vae_checkpoint(source, dict(config)),
        placement,
        component="VAE",
        path=file,
    )
    return model


def _load_ldm_text_encoders(
    state_dict: TensorSource,
    configs: Mapping[str, Any],
    family: Family,
    file: Path,
    placement: tuple[torch.device, torch.dtype],
) -> tuple[Any, Any | None]:
    from diffusers.loaders.single_file_utils import (
        convert_ldm_clip_checkpoint,
        convert_open_clip_checkpoint,
    )

    def load(
        model: Any, prefix: str, convert: Convert, component: str, dropped: frozenset[str]
    ) -> Any:
        keys = _under(state_dict, prefix)
        if not keys:
            raise CheckpointError(
                f"{file.name} has no {component} weights", code="missing_component", path=file
            )
        aligned: Convert = lambda source: _match_text_model_prefix(convert(source), model)  # noqa: E731
        load_streaming(
            model, state_dict, keys, aligned, placement, component=component, path=file,
            dropped=dropped,
        )  # fmt: skip
        return model

    def open_clip(model: Any, prefix: str) -> Convert:
        return lambda source: convert_open_clip_checkpoint(model, source, prefix=prefix)

    if family == "sd2":
        model = _build_text_encoder(configs["text_encoder"], with_projection=False)
        load(
            model, OPEN_CLIP_H_PREFIX, open_clip(model, OPEN_CLIP_H_PREFIX),
            "text encoder (OpenCLIP-H)", _SD2_DROPPED,
        )  # fmt: skip
        return model, None

    prefix = SDXL_CLIP_L_PREFIX if family == "sdxl" else CLIP_L_PREFIX
    model = _build_text_encoder(configs["text_encoder"], with_projection=False)
    # Old files store CLIP-L without the `text_model.` level; the converter only strips the prefix.
    load(
        model, prefix, lambda source: convert_ldm_clip_checkpoint(source, remove_prefix=prefix),
        "text encoder (CLIP-L)", frozenset(),
    )  # fmt: skip
    if family != "sdxl":
        return model, None

    model_2 = _build_text_encoder(configs["text_encoder_2"], with_projection=True)
    load(
        model_2, SDXL_CLIP_G_PREFIX, open_clip(model_2, SDXL_CLIP_G_PREFIX),
        "text encoder 2 (OpenCLIP-G)", frozenset(),
    )  # fmt: skip
    return model, model_2


def _sd2_dropped() -> frozenset[str]:
    # SD2 uses OpenCLIP-H's penultimate layer, so diffusers' converter drops layer 23 and the projection.
    return frozenset(
        [f"{OPEN_CLIP_H_PREFIX}transformer.resblocks.23.{name}" for name in (
            "attn.in_proj_bias", "attn.in_proj_weight", "attn.out_proj.bias", "attn.out_proj.weight",
            "ln_1.bias", "ln_1.weight", "ln_2.bias", "ln_2.weight",
            "mlp.c_fc.bias", "mlp.c_fc.weight", "mlp.c_proj.bias", "mlp.c_proj.weight",
        )]
        + [f"{OPEN_CLIP_H_PREFIX}text_projection"]
    )  # fmt: skip


_SD2_DROPPED = _sd2_dropped()


# --- diffusers folders ---------------------------------------------------------------------------


def load_diffusers_folder(
    path: str | Path,
    *,
    prediction_type: Prediction | None = None,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
) -> Checkpoint:
    """Load a diffusers pipeline folder (unet/, vae/, text_encoder/[, text_encoder_2/]) offline.

    tokenizer folders are not needed: the CLIP tokenizer ships with this package.
    """
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    folder = Path(path)
    for part in ("unet", "vae", "text_encoder"):
        if not (folder / part / "config.json").is_file():
            raise CheckpointError(
                f"{folder.name} is not a diffusers folder: {part}/config.json is missing",
                code="not_a_checkpoint",
                path=folder,
            )
    te_config = json.loads((folder / "text_encoder" / "config.json").read_text(encoding="utf-8"))
    family: Family
    if (folder / "text_encoder_2").is_dir():
        family = "sdxl"
    elif te_config.get("hidden_size") == CONTEXT_DIM["sd2"]:
        family = "sd2"
    else:
        family = "sd1"
    scheduler_file = folder / "scheduler" / "scheduler_config.json"
    scheduler = (
        json.loads(scheduler_file.read_text(encoding="utf-8"))
        if scheduler_file.is_file()
        else shipped_config(family)["scheduler"]
    )
    prediction: Prediction = prediction_type or scheduler.get("prediction_type", "epsilon")
    device_, dtype_ = resolve_placement(device, dtype)

    def pretrained(cls: Any, part: str, dtype_key: str) -> Any:
        return _place(
            _from_pretrained(cls, folder / part, part, dtype_, dtype_key), device_, dtype_
        )

    unet = pretrained(UNet2DConditionModel, "unet", "torch_dtype")
    vae = pretrained(AutoencoderKL, "vae", "torch_dtype")
    text_encoder = pretrained(CLIPTextModel, "text_encoder", "dtype")
    text_encoder_2 = (
        pretrained(CLIPTextModelWithProjection, "text_encoder_2", "dtype")
        if family == "sdxl"
        else None
    )
    return Checkpoint(
        unet=UNetModel(
            unet=unet, family=family, prediction_type=prediction, schedule=_schedule(scheduler)
        ),
        clip=ClipModel(
            tokenizer=clip_tokenizer(),
            text_encoder=text_encoder,
            family=family,
            text_encoder_2=text_encoder_2,
            tokenizer_2=clip_tokenizer() if text_encoder_2 is not None else None,
        ),
        vae=VaeModel(vae=vae, scaling_factor=float(vae.config.scaling_factor)),
    )


def _from_pretrained(
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
            f"{len(v)} {k.replace('_', ' ')} ({_listing(v)})" for k, v in problems.items() if v
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


# --- standalone VAE files ------------------------------------------------------------------------


def load_vae(
    path: str | Path,
    *,
    family: Family | None = None,
    config: Mapping[str, Any] | str | Path | None = None,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
) -> VaeModel:
    """Load a VAE file (LDM keys, bare or prefixed, or diffusers keys) or a diffusers vae/ folder.

    The scaling factor cannot be read from the weights (SD1 and SDXL VAEs have the same shapes): it
    comes from the config, else `family`, else "xl" in the file name means SDXL, else SD1's 0.18215.
    """
    from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint

    file = Path(path)
    placement = resolve_placement(device, dtype)
    if file.is_dir():
        from diffusers import AutoencoderKL

        vae = _from_pretrained(AutoencoderKL, file, "vae", placement[1])
        return VaeModel(
            vae=_place(vae, *placement), scaling_factor=float(vae.config.scaling_factor)
        )

    state_dict, metadata = read_state_dict(file)
    given = _given_configs(config, metadata, file)
    given_vae = dict((given or {}).get("vae") or {})
    guess: Family = family or ("sdxl" if "xl" in file.name.lower() else "sd1")
    vae_config = given_vae or shipped_config(guess)["vae"]
    vae_config["scaling_factor"] = float(given_vae.get("scaling_factor", SCALING_FACTOR[guess]))

    if any(k.startswith(("encoder.down_blocks.", "vae.encoder.down_blocks.")) for k in state_dict):
        source = converted = {k.removeprefix("vae."): v for k, v in state_dict.items()}
    elif any(
        k.startswith(("encoder.conv_in.", f"{VAE_PREFIX}encoder.", "vae.encoder."))
        for k in state_dict
    ):
        source = {k: v for k, v in state_dict.items() if not k.startswith(("loss.", "model_ema."))}
        converted = convert_ldm_vae_checkpoint(source, vae_config)
        # In a full checkpoint only the VAE's own tensors count; the UNet's are not "unused".
        if _has_prefix(source, VAE_PREFIX):
            source = _under(source, VAE_PREFIX)
    else:
        raise CheckpointError(
            f"{file.name} has no VAE weights; keys look like: {_listing(sorted(state_dict), 5)}",
            code="not_a_vae",
            path=file,
        )
    model = _build_vae(vae_config)
    load_strict(
        model, converted, component="VAE", path=file, unused=_unused_keys(source, converted)
    )
    return VaeModel(
        vae=_place(model, *placement), scaling_factor=float(vae_config["scaling_factor"])
    )


# --- ControlNets ---------------------------------------------------------------------------------


def load_controlnet(
    path: str | Path,
    *,
    config: Mapping[str, Any] | str | Path | None = None,
    unet_config: Mapping[str, Any] | None = None,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
) -> ControlNetModel:
    """Load a ControlNet: original `control_model.*` layout (or bare), diffusers keys, or a folder.

    The config comes from `config` (its "controlnet" section, or the dict itself), else the file's
    metadata, else it is derived from the weights' shapes on top of `unet_config` (or the shipped
    UNet config of the family its cross-attention width names). diffusers' own
    `create_controlnet_diffusers_config_from_ldm` is broken in 0.42 and is not used.
    """
    from diffusers.loaders.single_file_utils import convert_controlnet_checkpoint

    file = Path(path)
    placement = resolve_placement(device, dtype)
    if file.is_dir():
        from diffusers import ControlNetModel as DiffusersControlNet

        model = _from_pretrained(DiffusersControlNet, file, "controlnet", placement[1])
        return ControlNetModel(controlnet=_place(model, *placement), name=file.name)

    state_dict, metadata = read_state_dict(file)
    if _has_prefix(state_dict, CONTROLNET_PREFIX):
        source = {
            k.removeprefix(CONTROLNET_PREFIX): v
            for k, v in _under(state_dict, CONTROLNET_PREFIX).items()
        }
    else:
        source = state_dict
    if (
        "time_embedding.linear_1.weight" in source
        and "controlnet_cond_embedding.conv_in.weight" in source
    ):
        converted = source
    elif "time_embed.0.weight" in source and "input_hint_block.0.weight" in source:
        converted = convert_controlnet_checkpoint(
            source, {"layers_per_block": _ldm_layers_per_block(source, file)}
        )
    else:
        hint = " (it looks like a full checkpoint)" if _has_prefix(state_dict, UNET_PREFIX) else ""
        raise CheckpointError(
            f"{file.name} is not a ControlNet{hint}; keys look like: {_listing(sorted(state_dict), 5)}",
            code="wrong_family",
            path=file,
        )

    given = _given_configs(config, metadata, file)
    if given is not None:
        cn_config = dict(given.get("controlnet") or given)
    else:
        cn_config = controlnet_config_from_weights(converted, unet_config, file)
    model = _build_controlnet(cn_config)
    load_strict(
        model, converted, component="ControlNet", path=file, unused=_unused_keys(source, converted)
    )
    return ControlNetModel(controlnet=_place(model, *placement), name=file.name)


def _ldm_layers_per_block(weights: Mapping[str, Any], file: Path) -> int:
    """Resnets per block: the first downsampler sits at input block layers_per_block + 1."""
    blocks = sorted({int(k.split(".")[1]) for k in weights if k.startswith("input_blocks.")})
    for index in blocks:
        if f"input_blocks.{index}.0.op.weight" in weights:
            return index - 1
    if not blocks:
        raise CheckpointError(
            f"{file.name}: ControlNet has no input blocks", code="corrupt", path=file
        )
    return blocks[-1]


def controlnet_config_from_weights(
    weights: Mapping[str, torch.Tensor],
    unet_config: Mapping[str, Any] | None = None,
    path: str | Path | None = None,
) -> dict[str, Any]:
    """A diffusers ControlNet config from diffusers-layout weights' shapes, on top of a UNet config.

    Shapes fix the block layout, widths and conditioning embedding; what they cannot show (attention
    head sizes, upcasting) comes from `unet_config`, by default the shipped config of the family
    whose cross-attention width the weights have.
    """
    import inspect

    from diffusers import ControlNetModel as DiffusersControlNet

    def shape(key: str) -> tuple[int, ...]:
        if key not in weights:
            raise CheckpointError(
                f"ControlNet weights lack {key}; cannot derive a config", code="corrupt", path=path
            )
        return tuple(weights[key].shape)

    context = next(
        (int(v.shape[1]) for k, v in weights.items() if k.endswith("attn2.to_k.weight")), None
    )
    if unet_config is None:
        family = next((f for f, dim in CONTEXT_DIM.items() if dim == context), None)
        if family is None:
            raise CheckpointError(
                f"ControlNet cross-attention width {context} names no known family; pass unet_config",
                code="unknown_family",
                path=path,
            )
        unet_config = shipped_config(family)["unet"]
    accepted = set(inspect.signature(DiffusersControlNet.__init__).parameters) - {"self"}
    config = {k: v for k, v in unet_config.items() if k in accepted}

    blocks = sorted({int(k.split(".")[1]) for k in weights if k.startswith("down_blocks.")})
    layers = len({k.split(".")[3] for k in weights if k.startswith("down_blocks.0.resnets.")})
    with_attention = [
        any(k.startswith(f"down_blocks.{b}.attentions.") for k in weights) for b in blocks
    ]
    depth = [
        len(
            {
                k.split(".")[5]
                for k in weights
                if k.startswith(f"down_blocks.{b}.attentions.0.transformer_blocks.")
            }
        )
        or 1
        for b in blocks
    ]
    cond_blocks = len(
        {k.split(".")[2] for k in weights if k.startswith("controlnet_cond_embedding.blocks.")}
    )
    embedding = [shape("controlnet_cond_embedding.conv_in.weight")[0]] + [
        shape(f"controlnet_cond_embedding.blocks.{i}.weight")[0] for i in range(1, cond_blocks, 2)
    ]
    attention_key = next((k for k in weights if k.endswith("attentions.0.proj_in.weight")), None)
    config.update(
        in_channels=shape("conv_in.weight")[1],
        conditioning_channels=shape("controlnet_cond_embedding.conv_in.weight")[1],
        block_out_channels=[shape(f"down_blocks.{b}.resnets.0.conv2.weight")[0] for b in blocks],
        layers_per_block=layers,
        down_block_types=["CrossAttnDownBlock2D" if a else "DownBlock2D" for a in with_attention],
        transformer_layers_per_block=depth,
        conditioning_embedding_out_channels=embedding,
        use_linear_projection=bool(attention_key and len(weights[attention_key].shape) == 2),
    )
    if context is not None:
        config["cross_attention_dim"] = context
    if "add_embedding.linear_1.weight" in weights:
        config["addition_embed_type"] = "text_time"
        config["projection_class_embeddings_input_dim"] = shape("add_embedding.linear_1.weight")[1]
    heads = config.get("attention_head_dim")
    if isinstance(heads, (list, tuple)) and len(heads) != len(blocks):
        raise CheckpointError(
            f"the ControlNet has {len(blocks)} blocks but the UNet config gives {len(heads)} head "
            "sizes; pass a matching unet_config or config",
            code="bad_config",
            path=path,
        )
    return config
