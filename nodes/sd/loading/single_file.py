"""Load a single-file SD1/SD2/SDXL checkpoint (original LDM/CompVis layout) into UNet, CLIP and VAE.

The file's keys are converted with diffusers' own converters (`diffusers.loaders.single_file_utils`)
into models built from the configs `model_configs.py` chooses. Single .safetensors files stream
(`streaming.py`): models are built on the meta device, the converters run on meta tensors to learn
where each weight comes from, then every tensor is read once, cast to the compute dtype as it is
assigned and let go, so a load peaks at the model plus one tensor. Pickles (.ckpt) are read whole
first and then go through the same path. `load_checkpoint` also takes diffusers folders.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nodes.sd.devices import resolve_placement
from nodes.sd.loading.detection import (
    CLIP_L_PREFIX,
    OPEN_CLIP_H_PREFIX,
    SD2_V_SENTINEL,
    SDXL_CLIP_G_PREFIX,
    SDXL_CLIP_L_PREFIX,
    UNET_PREFIX,
    VAE_PREFIX,
    detect_family,
    detect_prediction_type,
)
from nodes.sd.loading.diffusers_folder import load_diffusers_folder
from nodes.sd.loading.model_configs import (
    SCALING_FACTOR,
    given_configs,
    noise_schedule,
    require_sections,
    shipped_config,
)
from nodes.sd.loading.strict import (
    build_text_encoder,
    build_unet,
    build_vae,
    load_streaming,
    place,
    under,
)
from nodes.sd.loading.weight_files import CheckpointError, open_tensors
from nodes.sd.offline import stay_offline
from nodes.sd.tokenizer import clip_tokenizer
from nodes.sd.values import Checkpoint, ClipModel, Family, Prediction, UNetModel, VaeModel

if TYPE_CHECKING:
    import torch

    from nodes.sd.loading.streaming import Convert, TensorSource

log = logging.getLogger(__name__)


def load_checkpoint(
    path: str | Path,
    *,
    config: Mapping[str, Any] | str | Path | None = None,
    prediction_type: Prediction | None = None,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
) -> Checkpoint:
    """Load a single-file SD1/SD2/SDXL checkpoint, or a diffusers folder, into UNet, CLIP and VAE."""
    stay_offline()
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
    given = given_configs(config, metadata, file)
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
    require_sections(configs, components + (["text_encoder_2"] if family == "sdxl" else []), file)

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
            unet=place(unet, *placement),
            family=family,
            prediction_type=prediction,
            schedule=noise_schedule(configs["scheduler"]),
        ),
        clip=ClipModel(
            tokenizer=clip_tokenizer(),
            text_encoder=place(text_encoder, *placement),
            family=family,
            text_encoder_2=place(text_encoder_2, *placement)
            if text_encoder_2 is not None
            else None,
            tokenizer_2=clip_tokenizer() if text_encoder_2 is not None else None,
        ),
        vae=VaeModel(vae=place(vae, *placement), scaling_factor=scaling),
    )


def _load_ldm_unet(
    state_dict: TensorSource,
    config: Mapping[str, Any],
    file: Path,
    placement: tuple[torch.device, torch.dtype],
) -> Any:
    from diffusers.loaders.single_file_utils import convert_ldm_unet_checkpoint

    model = build_unet(config)
    load_streaming(
        model,
        state_dict,
        under(state_dict, UNET_PREFIX),
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

    keys = under(state_dict, VAE_PREFIX)
    if not keys:
        raise CheckpointError(
            f"{file.name} has no VAE weights (no key starts with {VAE_PREFIX!r})",
            code="missing_component",
            path=file,
        )
    model = build_vae(config)
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
        keys = under(state_dict, prefix)
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
        model = build_text_encoder(configs["text_encoder"], with_projection=False)
        load(
            model, OPEN_CLIP_H_PREFIX, open_clip(model, OPEN_CLIP_H_PREFIX),
            "text encoder (OpenCLIP-H)", _SD2_DROPPED,
        )  # fmt: skip
        return model, None

    prefix = SDXL_CLIP_L_PREFIX if family == "sdxl" else CLIP_L_PREFIX
    model = build_text_encoder(configs["text_encoder"], with_projection=False)
    # Old files store CLIP-L without the `text_model.` level; the converter only strips the prefix.
    load(
        model, prefix, lambda source: convert_ldm_clip_checkpoint(source, remove_prefix=prefix),
        "text encoder (CLIP-L)", frozenset(),
    )  # fmt: skip
    if family != "sdxl":
        return model, None

    model_2 = build_text_encoder(configs["text_encoder_2"], with_projection=True)
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
