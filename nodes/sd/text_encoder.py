"""Encode weighted token windows with a ClipModel into a Conditioning.

`clip_skip` counts layers from the end as A1111 and ComfyUI do (1 = the last layer):

| family | default | clip_skip=1 | clip_skip=k > 1 |
|---|---|---|---|
| sd1 | 1 | last_hidden_state (final layer norm applied) | final_layer_norm(hidden_states[-k]) |
| sd2 | 1 | as sd1; diffusers' SD2 encoder already drops OpenCLIP-H's last layer (23 of 24) | as sd1 |
| sdxl | 2 | last_hidden_state of both encoders | hidden_states[-k] of both, no final layer norm |

SD1 with clip_skip=2 applies the final layer norm to the penultimate state, as A1111, ComfyUI
(CLIPSetLastLayer -2) and diffusers' `clip_skip` do; SDXL was trained on the raw penultimate state.

Weights follow ComfyUI: each token's embedding becomes (z - z_empty) * w + z_empty, where z_empty is
the encoding of the empty prompt; tokens of weight exactly 1.0 are left bit-for-bit untouched.
Windows are encoded as a batch and concatenated along the token axis. SDXL concatenates CLIP-L (768)
and OpenCLIP-G (1280) to 2048 features; its pooled vector is encoder 2's projected EOS state of the
first window (diffusers' `text_embeds`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nodes.sd.tokenizer import tokenize
from nodes.sd.values import ClipModel, Conditioning, Family, Tokens

if TYPE_CHECKING:
    import torch

DEFAULT_CLIP_SKIP: dict[Family, int] = {"sd1": 1, "sd2": 1, "sdxl": 2}


def encode(clip: ClipModel, tokens: Tokens, clip_skip: int | None = None) -> Conditioning:
    """Encode `tokens` with `clip`; `clip_skip` None means the family's default (table above)."""
    import torch

    skip = DEFAULT_CLIP_SKIP[clip.family] if clip_skip is None else clip_skip
    # SDXL trained on the raw penultimate state; SD1/SD2 practice normalises whatever layer is used.
    final_norm = clip.family != "sdxl"
    empty = tokenize("", clip.family)
    with torch.no_grad():
        embeds, _ = _encode_windows(
            clip.text_encoder, tokens.ids, tokens.weights, empty.ids, skip, final_norm
        )
        if clip.family != "sdxl":
            return Conditioning(embeds=embeds)
        if clip.text_encoder_2 is None or tokens.ids_2 is None or tokens.weights_2 is None:
            raise ValueError("SDXL needs a second text encoder and tokens made for sdxl (ids_2)")
        assert empty.ids_2 is not None
        embeds_2, pooled_2 = _encode_windows(
            clip.text_encoder_2, tokens.ids_2, tokens.weights_2, empty.ids_2, skip, final_norm
        )
    return Conditioning(embeds=torch.cat([embeds, embeds_2], dim=-1), pooled=pooled_2)


def _encode_windows(
    encoder: Any,
    ids: torch.Tensor,
    weights: torch.Tensor,
    empty_ids: torch.Tensor,
    clip_skip: int,
    final_norm: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(1, windows*77, D) weighted hidden states and (1, D_pooled) from the first window."""
    import torch

    device = next(encoder.parameters()).device
    hidden, pooled = _hidden_states(encoder, ids.to(device), clip_skip, final_norm)  # (W, 77, D)
    if bool((weights != 1.0).any()):
        empty, _ = _hidden_states(
            encoder, empty_ids.to(device), clip_skip, final_norm
        )  # (1, 77, D)
        w = weights.to(device=device, dtype=hidden.dtype).unsqueeze(-1)  # (W, 77, 1)
        hidden = torch.where(w == 1.0, hidden, (hidden - empty) * w + empty)
    return hidden.reshape(1, -1, hidden.shape[-1]), pooled[:1]


def _hidden_states(
    encoder: Any, ids: torch.Tensor, clip_skip: int, final_norm: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    layers = encoder.config.num_hidden_layers
    if not 1 <= clip_skip <= layers:
        raise ValueError(f"clip_skip must be between 1 and {layers}, got {clip_skip}")
    out = encoder(input_ids=ids, output_hidden_states=clip_skip > 1)
    # CLIPTextModelWithProjection returns the projected pooled vector as text_embeds.
    pooled = out.text_embeds if hasattr(out, "text_embeds") else out.pooler_output
    if clip_skip == 1:
        return out.last_hidden_state, pooled
    hidden = out.hidden_states[-clip_skip]
    if final_norm:
        # transformers 5's CLIPTextModel is flat; the projection model still wraps `text_model`.
        hidden = getattr(encoder, "text_model", encoder).final_layer_norm(hidden)
    return hidden, pooled
