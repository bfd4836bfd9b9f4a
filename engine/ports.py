"""Port types: the real types that flow along links, and how Python classes map onto them."""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar, get_args, get_origin


@dataclass(frozen=True)
class PortType:
    """A named type of value that can flow along a link between two nodes."""

    name: str
    description: str = ""
    primitive: bool = False
    # A UI hint for the editor; the engine never reads it.
    color: str = "#8a8a8a"
    # Names of the types this one may also be fed into (int literals feed float inputs, say).
    widens_to: tuple[str, ...] = field(default=())

    def accepts(self, source: PortType) -> bool:
        """Whether an output of type `source` may feed an input of this type."""
        # The one place compatibility is decided; model-family or latent-size checks hook in here.
        return source.name == self.name or self.name == ANY.name or self.name in source.widens_to


ANY = PortType("ANY", "Any value.", color="#cccccc")
INT = PortType("INT", "A whole number.", primitive=True, color="#6fa8dc", widens_to=("FLOAT",))
FLOAT = PortType("FLOAT", "A real number.", primitive=True, color="#93c47d")
STRING = PortType("STRING", "Text.", primitive=True, color="#b4a7d6")
BOOLEAN = PortType("BOOLEAN", "True or false.", primitive=True, color="#e06666")

MODEL = PortType("MODEL", "A denoising UNet with its noise schedule.", color="#b39ddb")
CLIP = PortType("CLIP", "A tokenizer plus text encoder(s).", color="#ffd54f")
VAE = PortType("VAE", "An autoencoder between pixels and latents.", color="#ef9a9a")
CONDITIONING = PortType("CONDITIONING", "Encoded text, with any ControlNets.", color="#ffb74d")
LATENT = PortType("LATENT", "A batch of latents, optionally with a noise mask.", color="#f48fb1")
IMAGE = PortType("IMAGE", "A batch of RGB images, values in [0, 1].", color="#64b5f6")
MASK = PortType("MASK", "A batch of masks, 1 where masked.", color="#81c784")
CONTROL_NET = PortType("CONTROL_NET", "A ControlNet model.", color="#4db6ac")
TOKENS = PortType("TOKENS", "Weighted token windows for a text encoder.", color="#fff176")

BUILTIN_TYPES: tuple[PortType, ...] = (
    ANY,
    INT,
    FLOAT,
    STRING,
    BOOLEAN,
    MODEL,
    CLIP,
    VAE,
    CONDITIONING,
    LATENT,
    IMAGE,
    MASK,
    CONTROL_NET,
    TOKENS,
)

_PRIMITIVE_CLASSES: dict[type, PortType] = {bool: BOOLEAN, int: INT, float: FLOAT, str: STRING}
_BOUND: dict[type, PortType] = {}
_BY_NAME: dict[str, PortType] = {t.name: t for t in BUILTIN_TYPES}

C = TypeVar("C", bound=type)


def binds(port: PortType) -> typing.Callable[[C], C]:
    """Class decorator: values of the decorated class flow through ports of type `port`."""

    def register(cls: C) -> C:
        _BOUND[cls] = port
        _BY_NAME.setdefault(port.name, port)
        return cls

    return register


def port_by_name(name: str) -> PortType | None:
    """The registered port type called `name`, if any."""
    return _BY_NAME.get(name)


def port_of(annotation: Any) -> PortType:
    """The port type of a field annotation; `X | None` counts as X, a `Literal` of strings as STRING."""
    annotation = strip_optional(annotation)
    if annotation is Any or annotation is object:
        return ANY
    if get_origin(annotation) is Literal:
        kinds = {type(v) for v in get_args(annotation)}
        if len(kinds) == 1 and (kind := kinds.pop()) in _PRIMITIVE_CLASSES:
            return _PRIMITIVE_CLASSES[kind]
        raise TypeError(f"Literal choices must share one primitive type: {annotation!r}")
    if get_origin(annotation) is typing.Annotated:
        return port_of(get_args(annotation)[0])
    if isinstance(annotation, type):
        if annotation in _PRIMITIVE_CLASSES:
            return _PRIMITIVE_CLASSES[annotation]
        for cls in annotation.__mro__:
            if cls in _BOUND:
                return _BOUND[cls]
    raise TypeError(f"{annotation!r} is not bound to a port type; decorate it with @binds(...)")


def strip_optional(annotation: Any) -> Any:
    """`X | None` and `Optional[X]` become X; anything else is returned unchanged."""
    if get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation
