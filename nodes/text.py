"""Text nodes: tokenize a weighted prompt, and encode tokens into conditioning."""

from __future__ import annotations

from typing import Any

from engine.context import RunContext
from engine.errors import NodeInputError
from engine.limits import limits
from engine.node import Input, Node, Outputs, node
from nodes.generation import PROMPT, DescribesGeneration, Upstream
from nodes.sd.values import ClipModel, Conditioning, Tokens

CLIP_SKIP_HELP = "0 = the model family's default; 1 = last layer, 2 = penultimate, ..."


def check_prompt(text: str, _paths: object = None) -> str | None:
    """Why a prompt is too long to tokenize, or None."""
    allowed = limits().max_prompt_chars
    if len(text) <= allowed:
        return None
    return (
        f"the prompt has {len(text):,} characters, more than the {allowed:,} allowed "
        "(LATENTGRAPH_MAX_PROMPT_CHARS)"
    )


def _tokenize(text: str, clip: ClipModel) -> Tokens:
    """Tokenize within the prompt limits; a linked prompt is checked here, a literal one earlier."""
    from nodes.sd.tokenizer import tokenize

    problem = check_prompt(text)
    if problem is not None:
        raise NodeInputError("text", problem)
    tokens = tokenize(text, clip.family, clip.tokenizer)
    windows, allowed = tokens.ids.shape[0], limits().max_token_windows
    if windows > allowed:
        raise NodeInputError(
            "text",
            f"the prompt makes {windows} windows of 77 tokens, more than the {allowed} allowed "
            "(LATENTGRAPH_MAX_TOKEN_WINDOWS)",
        )
    return tokens


class TokensOut(Outputs):
    tokens: Tokens


class ConditioningOut(Outputs):
    conditioning: Conditioning


@node("Tokenize", category="conditioning")
class Tokenize(DescribesGeneration, Node):
    """Split a prompt into 77-token windows with weights: (word:1.2), (word), [word], \\( escapes."""

    clip: ClipModel = Input()
    text: str = Input("", multiline=True, check=check_prompt)

    @classmethod
    def generation_parameters(cls, inputs: Upstream) -> dict[str, Any]:
        return {PROMPT: inputs.value("text")}

    def run(self, ctx: RunContext) -> TokensOut:
        return TokensOut(tokens=_tokenize(self.text, self.clip))


@node("EncodeTokens", category="conditioning")
class EncodeTokens(DescribesGeneration, Node):
    """Encode tokens with the text encoder; weights move each token away from the empty prompt."""

    clip: ClipModel = Input()
    tokens: Tokens = Input()
    clip_skip: int = Input(0, ge=0, le=24, tooltip=CLIP_SKIP_HELP)

    @classmethod
    def generation_parameters(cls, inputs: Upstream) -> dict[str, Any]:
        return {"Clip skip": _clip_skip_label(inputs.value("clip_skip"))}

    def run(self, ctx: RunContext) -> ConditioningOut:
        return ConditioningOut(conditioning=_encode(self.clip, self.tokens, self.clip_skip))


@node("EncodeText", category="conditioning")
class EncodeText(DescribesGeneration, Node):
    """Tokenize and encode a prompt in one step."""

    clip: ClipModel = Input()
    text: str = Input("", multiline=True, check=check_prompt)
    clip_skip: int = Input(0, ge=0, le=24, tooltip=CLIP_SKIP_HELP)

    @classmethod
    def generation_parameters(cls, inputs: Upstream) -> dict[str, Any]:
        clip_skip = _clip_skip_label(inputs.value("clip_skip"))
        return {PROMPT: inputs.value("text"), "Clip skip": clip_skip}

    def run(self, ctx: RunContext) -> ConditioningOut:
        tokens = _tokenize(self.text, self.clip)
        return ConditioningOut(conditioning=_encode(self.clip, tokens, self.clip_skip))


def _clip_skip_label(clip_skip: int | None) -> int | None:
    """Clip skip as A1111 writes it: only when it skips layers (2 = penultimate, ...)."""
    return clip_skip if clip_skip is not None and clip_skip > 1 else None


def _encode(clip: ClipModel, tokens: Tokens, clip_skip: int) -> Conditioning:
    from nodes.sd.residency import module_device
    from nodes.sd.text_encoder import encode

    for encoder in (clip.text_encoder, clip.text_encoder_2):
        if encoder is not None:
            module_device(encoder)
    return encode(clip, tokens, clip_skip or None)
