"""Text nodes: tokenize a weighted prompt, and encode tokens into conditioning."""

from __future__ import annotations

from engine.context import RunContext
from engine.node import Input, Node, Outputs, node
from nodes.sd.values import ClipModel, Conditioning, Tokens

CLIP_SKIP_HELP = "0 = the model family's default; 1 = last layer, 2 = penultimate, ..."


class TokensOut(Outputs):
    tokens: Tokens


class ConditioningOut(Outputs):
    conditioning: Conditioning


@node("Tokenize", category="conditioning")
class Tokenize(Node):
    """Split a prompt into 77-token windows with weights: (word:1.2), (word), [word], \\( escapes."""

    clip: ClipModel = Input()
    text: str = Input("", multiline=True)

    def run(self, ctx: RunContext) -> TokensOut:
        from nodes.sd.tokenizer import tokenize

        return TokensOut(tokens=tokenize(self.text, self.clip.family, self.clip.tokenizer))


@node("EncodeTokens", category="conditioning")
class EncodeTokens(Node):
    """Encode tokens with the text encoder; weights move each token away from the empty prompt."""

    clip: ClipModel = Input()
    tokens: Tokens = Input()
    clip_skip: int = Input(0, ge=0, le=24, tooltip=CLIP_SKIP_HELP)

    def run(self, ctx: RunContext) -> ConditioningOut:
        return ConditioningOut(conditioning=_encode(self.clip, self.tokens, self.clip_skip))


@node("EncodeText", category="conditioning")
class EncodeText(Node):
    """Tokenize and encode a prompt in one step."""

    clip: ClipModel = Input()
    text: str = Input("", multiline=True)
    clip_skip: int = Input(0, ge=0, le=24, tooltip=CLIP_SKIP_HELP)

    def run(self, ctx: RunContext) -> ConditioningOut:
        from nodes.sd.tokenizer import tokenize

        tokens = tokenize(self.text, self.clip.family, self.clip.tokenizer)
        return ConditioningOut(conditioning=_encode(self.clip, tokens, self.clip_skip))


def _encode(clip: ClipModel, tokens: Tokens, clip_skip: int) -> Conditioning:
    from nodes.sd.residency import module_device
    from nodes.sd.text_encoder import encode

    for encoder in (clip.text_encoder, clip.text_encoder_2):
        if encoder is not None:
            module_device(encoder)
    return encode(clip, tokens, clip_skip or None)
