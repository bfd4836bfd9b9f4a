"""Text encoding: layer choice (clip skip), prompt weights, windows and SDXL's two encoders."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from nodes.sd.text_encoder import encode
from nodes.sd.tiny_models import TINY_CLIP, TinyModels
from nodes.sd.tokenizer import clip_tokenizer, tokenize
from nodes.sd.values import ClipModel


@pytest.fixture(scope="module")
def clip(tiny_models: TinyModels) -> ClipModel:
    return ClipModel(
        tokenizer=clip_tokenizer(), text_encoder=tiny_models.text_encoder, family="sd1"
    )


def _hidden(encoder: Any, ids: torch.Tensor) -> Any:
    with torch.no_grad():
        return encoder(input_ids=ids, output_hidden_states=True)


def test_default_is_the_last_layer(clip: ClipModel) -> None:
    tokens = tokenize("a photo of a cat")
    cond = encode(clip, tokens)
    assert cond.embeds.shape == (1, 77, 32) and cond.pooled is None
    assert torch.equal(cond.embeds[0], _hidden(clip.text_encoder, tokens.ids).last_hidden_state[0])


def test_clip_skip_2_is_the_normalised_penultimate_layer(clip: ClipModel) -> None:
    tokens = tokenize("a photo of a cat")
    last = encode(clip, tokens, clip_skip=1).embeds
    skipped = encode(clip, tokens, clip_skip=2).embeds
    assert not torch.allclose(last, skipped)
    out = _hidden(clip.text_encoder, tokens.ids)
    with torch.no_grad():
        expected = clip.text_encoder.final_layer_norm(out.hidden_states[-2])
    assert torch.equal(skipped[0], expected[0])


def test_clip_skip_out_of_range_is_refused(clip: ClipModel) -> None:
    with pytest.raises(ValueError, match="clip_skip must be between 1 and 5"):
        encode(clip, tokenize("cat"), clip_skip=6)


def test_weight_one_equals_the_unweighted_encoding(clip: ClipModel) -> None:
    plain = encode(clip, tokenize("a photo of a cat")).embeds
    explicit = encode(clip, tokenize("a photo of a (cat:1.0)")).embeds
    assert torch.equal(plain, explicit)


def test_a_weighted_token_moves_away_from_the_empty_prompt(clip: ClipModel) -> None:
    plain = encode(clip, tokenize("a photo of a cat")).embeds[0]
    weighted = encode(clip, tokenize("a photo of a (cat:1.5)")).embeds[0]
    empty = _hidden(clip.text_encoder, tokenize("").ids).last_hidden_state[0]
    cat = 5  # BOS a photo of a [cat]
    torch.testing.assert_close(weighted[cat], (plain[cat] - empty[cat]) * 1.5 + empty[cat])
    others = [i for i in range(77) if i != cat]
    assert torch.equal(weighted[others], plain[others])
    assert not torch.allclose(weighted[cat], plain[cat])


def test_two_windows_concatenate_to_154_tokens(clip: ClipModel) -> None:
    tokens = tokenize("cat " * 80)
    assert tokens.ids.shape == (2, 77)
    cond = encode(clip, tokens)
    assert cond.embeds.shape == (1, 154, 32)
    for window in range(2):
        alone = _hidden(clip.text_encoder, tokens.ids[window : window + 1]).last_hidden_state[0]
        torch.testing.assert_close(cond.embeds[0, 77 * window : 77 * (window + 1)], alone)


def test_sdxl_concatenates_penultimate_states_and_pools_encoder_2() -> None:
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    torch.manual_seed(0)
    encoder_1 = CLIPTextModel(CLIPTextConfig(**TINY_CLIP)).eval()
    config_2 = {**TINY_CLIP, "hidden_size": 48, "intermediate_size": 64, "projection_dim": 40}
    encoder_2 = CLIPTextModelWithProjection(CLIPTextConfig(**config_2)).eval()
    clip = ClipModel(
        tokenizer=clip_tokenizer(),
        text_encoder=encoder_1,
        family="sdxl",
        text_encoder_2=encoder_2,
        tokenizer_2=clip_tokenizer(),
    )
    tokens = tokenize("cat " * 80, "sdxl")
    assert tokens.ids_2 is not None
    cond = encode(clip, tokens)
    assert cond.embeds.shape == (1, 154, 32 + 48)
    assert cond.pooled is not None and cond.pooled.shape == (1, 40)
    first = tokens.ids[:1]
    first_2 = tokens.ids_2[:1]
    out_1 = _hidden(encoder_1, first)
    out_2 = _hidden(encoder_2, first_2)
    torch.testing.assert_close(cond.embeds[0, :77, :32], out_1.hidden_states[-2][0])
    torch.testing.assert_close(cond.embeds[0, :77, 32:], out_2.hidden_states[-2][0])
    torch.testing.assert_close(cond.pooled, out_2.text_embeds)


def test_sdxl_needs_sdxl_tokens() -> None:
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    clip = ClipModel(
        tokenizer=clip_tokenizer(),
        text_encoder=CLIPTextModel(CLIPTextConfig(**TINY_CLIP)),
        family="sdxl",
        text_encoder_2=CLIPTextModelWithProjection(CLIPTextConfig(**TINY_CLIP)),
    )
    with pytest.raises(ValueError, match="tokens made for sdxl"):
        encode(clip, tokenize("cat", "sd1"))


@pytest.mark.parametrize("clip_skip", [1, 2, 3])
def test_clip_skip_matches_the_diffusers_pipeline_encode_prompt(
    tiny_models: TinyModels, clip: ClipModel, clip_skip: int
) -> None:
    """diffusers counts the layers skipped (1 = penultimate); we count as A1111 (2 = penultimate)."""
    import copy

    from diffusers import EulerDiscreteScheduler, StableDiffusionPipeline

    encoder = copy.deepcopy(tiny_models.text_encoder)
    if not hasattr(encoder, "text_model"):
        # diffusers 0.42's clip_skip path reads `text_model.final_layer_norm`, the transformers 4
        # layout; transformers 5 keeps the norm on the model itself. A plain attribute (not a
        # registered submodule) lets the pipeline find it on this copy.
        object.__setattr__(encoder, "text_model", encoder)
    pipe = StableDiffusionPipeline(
        vae=tiny_models.vae,
        text_encoder=encoder,
        tokenizer=clip_tokenizer(),
        unet=tiny_models.unet,
        scheduler=EulerDiscreteScheduler(),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    prompt = "a photo of a cat"
    with torch.no_grad():
        theirs, _ = pipe.encode_prompt(
            prompt,
            device="cpu",
            num_images_per_prompt=1,
            do_classifier_free_guidance=False,
            clip_skip=None if clip_skip == 1 else clip_skip - 1,
        )
    ours = encode(clip, tokenize(prompt), clip_skip=clip_skip).embeds
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-6)
