"""Primitive value nodes: one number, text or switch that several other nodes can share."""

from __future__ import annotations

from engine.context import RunContext
from engine.node import Input, Node, Outputs, node


class IntOut(Outputs):
    value: int


class FloatOut(Outputs):
    value: float


class TextOut(Outputs):
    text: str


class BooleanOut(Outputs):
    value: bool


@node("Int", category="primitives")
class Int(Node):
    """A whole number, such as a seed shared by two samplers."""

    value: int = Input(0, ge=-(2**63), le=2**64 - 1)

    def run(self, ctx: RunContext) -> IntOut:
        return IntOut(value=self.value)


@node("Float", category="primitives")
class Float(Node):
    """A real number."""

    value: float = Input(0.0)

    def run(self, ctx: RunContext) -> FloatOut:
        return FloatOut(value=self.value)


@node("Text", category="primitives")
class Text(Node):
    """A piece of text, such as a prompt shared by several encoders."""

    text: str = Input("", multiline=True)

    def run(self, ctx: RunContext) -> TextOut:
        return TextOut(text=self.text)


@node("Boolean", category="primitives")
class Boolean(Node):
    """A switch."""

    value: bool = False

    def run(self, ctx: RunContext) -> BooleanOut:
        return BooleanOut(value=self.value)


@node("ShowText", category="primitives", output_node=True)
class ShowText(Node):
    """Shows a piece of text as the run's result, in the CLI output, the API and the editor."""

    text: str = Input(link_only=True)

    def run(self, ctx: RunContext) -> Outputs:
        return Outputs(ui={"text": [self.text]})
