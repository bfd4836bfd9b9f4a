"""How a node is declared: a class whose annotated attributes are its inputs, with a typed `run`.

    class EmptyLatentOut(Outputs):
        latent: Latent

    @node("EmptyLatent", category="latent", version="1.0.0")
    class EmptyLatent(Node):
        \"\"\"An all-zero latent batch.\"\"\"

        width: int = Input(512, ge=64, le=8192, multiple_of=8)

        def run(self, ctx: RunContext) -> EmptyLatentOut: ...

The declaration is the single source of truth: `NodeSpec` derived from it feeds the graph
validator, the catalog the editor reads, and the cache key (through `version`).
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, TypeVar, get_args, get_origin

import annotated_types
from pydantic import BaseModel, ConfigDict, PrivateAttr, Strict, TypeAdapter
from typing_extensions import dataclass_transform

from engine.ports import port_of, strip_optional

if TYPE_CHECKING:
    from engine.config import Paths
    from engine.context import RunContext

_SEMVER_PARTS = 3
ChoicesSource = Callable[["Paths"], Sequence[str]]
# A check beyond type and bounds: the problem with a value, or None; `paths` may be None.
ValueCheck = Callable[[Any, "Paths | None"], "str | None"]


@dataclasses.dataclass(frozen=True)
class InputInfo:
    """What `Input(...)` records about one input; read by `@node` into an `InputSpec`."""

    default: Any = dataclasses.field(default=dataclasses.MISSING)
    ge: float | None = None
    le: float | None = None
    gt: float | None = None
    lt: float | None = None
    multiple_of: float | None = None
    step: float | None = None
    choices: ChoicesSource | None = None
    multiline: bool = False
    link_only: bool | None = None
    tooltip: str = ""
    display_name: str | None = None
    check: ValueCheck | None = None


def Input(  # reads like a field declaration, as pydantic's Field does
    default: Any = dataclasses.MISSING,
    *,
    ge: float | None = None,
    le: float | None = None,
    gt: float | None = None,
    lt: float | None = None,
    multiple_of: float | None = None,
    step: float | None = None,
    choices: ChoicesSource | None = None,
    multiline: bool = False,
    link_only: bool | None = None,
    tooltip: str = "",
    display_name: str | None = None,
    check: ValueCheck | None = None,
) -> Any:
    """Declare an input: default, numeric bounds, UI hints, and whether it must come from a link.

    `choices` is a callable returning the allowed strings at validation time (files in a model
    folder, say); static choices are written as a `Literal[...]` annotation instead.
    `link_only` defaults to True for non-primitive port types and False for primitives.
    `check(value, paths)` returns what is wrong with a literal that type and bounds allow (a
    file name that would leave its folder, say), or None; `paths` is None without folders.
    """
    return InputInfo(
        default=default,
        ge=ge,
        le=le,
        gt=gt,
        lt=lt,
        multiple_of=multiple_of,
        step=step,
        choices=choices,
        multiline=multiline,
        link_only=link_only,
        tooltip=tooltip,
        display_name=display_name,
        check=check,
    )


class InputSpec(BaseModel):
    """One input of a node type, as the catalog, validator and editor see it."""

    name: str
    type: str
    required: bool
    default: Any = None
    link_only: bool
    optional: bool = False
    ge: float | None = None
    le: float | None = None
    gt: float | None = None
    lt: float | None = None
    multiple_of: float | None = None
    step: float | None = None
    choices: list[Any] | None = None
    dynamic_choices: bool = False
    multiline: bool = False
    tooltip: str = ""
    display_name: str

    _adapter: TypeAdapter[Any] | None = PrivateAttr(default=None)
    _choices_source: ChoicesSource | None = PrivateAttr(default=None)
    _check: ValueCheck | None = PrivateAttr(default=None)

    def validate_literal(self, value: Any, paths: Paths | None) -> Any:
        """The value as the node will see it; raises pydantic's ValidationError or ValueError."""
        if value is None and self.optional:
            return None
        assert self._adapter is not None, "literal inputs always carry an adapter"
        checked = self._adapter.validate_python(value)
        if self._check is not None and (problem := self._check(checked, paths)) is not None:
            raise InvalidValue(problem)
        if self._choices_source is not None and paths is not None:
            allowed = list(self._choices_source(paths))
            if checked not in allowed:
                where = getattr(self._choices_source, "where", None)
                raise ChoiceError(allowed, where(paths) if where is not None else None)
        return checked

    def current_choices(self, paths: Paths | None) -> list[Any] | None:
        """Static choices, or the dynamic ones as they are now under `paths`."""
        if self._choices_source is not None:
            return list(self._choices_source(paths)) if paths is not None else []
        return self.choices


class ChoiceError(ValueError):
    """A literal that is not among an input's dynamic choices; `where` names the folder searched."""

    def __init__(self, allowed: list[Any], where: str | None = None) -> None:
        self.allowed = allowed
        self.where = where
        super().__init__(f"not among the {len(allowed)} available choices")


class InvalidValue(ValueError):
    """A literal its input's `check` refused; the message says why."""


class OutputSpec(BaseModel):
    """One named, typed output of a node type."""

    name: str
    type: str
    display_name: str


class NodeSpec(BaseModel):
    """Everything known about a node type without running it."""

    model_config = ConfigDict(frozen=True)

    type: str
    version: str
    category: str
    display_name: str
    description: str
    output_node: bool
    volatile: bool
    inputs: list[InputSpec]
    outputs: list[OutputSpec]
    module: str

    def input(self, name: str) -> InputSpec | None:
        """The input called `name`, if the node has one."""
        return next((i for i in self.inputs if i.name == name), None)

    def output(self, name: str) -> OutputSpec | None:
        """The output called `name`, if the node has one."""
        return next((o for o in self.outputs if o.name == name), None)


@dataclasses.dataclass(kw_only=True)
# Subclasses become keyword-only dataclasses (below); this tells type checkers so.
@dataclass_transform(kw_only_default=True)
class Outputs:
    """Base of a node's result: subclasses declare one annotated field per output port.

    `ui` carries what an output node shows a person (saved image paths, say); it is not a port.
    """

    ui: dict[str, Any] | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        dataclasses.dataclass(kw_only=True)(cls)

    def ports(self) -> dict[str, Any]:
        """The output values by port name."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "ui"}


class Node:
    """Base of every node; subclasses are declared with `@node(...)` and implement `run`."""

    spec: ClassVar[NodeSpec]
    outputs_class: ClassVar[type[Outputs]]
    node_id: str = ""

    def run(self, ctx: RunContext) -> Outputs:
        """Compute the node's outputs from its inputs (set as attributes before the call)."""
        raise NotImplementedError

    @classmethod
    def check_literals(cls, literals: dict[str, Any]) -> list[tuple[str, str]]:
        """Problems between literal inputs (steps and denoise, say), as (input, message) pairs.

        Only literal values are present; linked inputs are missing from `literals`.
        """
        return []

    def memory_estimate(self) -> tuple[str, int] | None:
        """(device, bytes) this node will need, with its inputs set; None when unknown.

        The executor refuses to run a node whose estimate exceeds the device's budget.
        """
        return None

    def fingerprint(self, paths: Paths) -> str:
        """For volatile nodes: what changes when the result would (the hash of a file it reads).

        It is called with only the literal inputs set; linked inputs are None at that point.
        `paths` are the run's folders, for nodes that read files.
        The default returns a fresh value, so the node re-runs every time.
        """
        import uuid

        return uuid.uuid4().hex


N = TypeVar("N", bound=type[Node])


def node(
    type_name: str,
    *,
    category: str,
    version: str = "1.0.0",
    display_name: str | None = None,
    output_node: bool = False,
    volatile: bool = False,
) -> Callable[[N], N]:
    """Class decorator that derives and attaches the node's `NodeSpec`."""
    if not type_name.isidentifier():
        raise ValueError(f"node type {type_name!r} must be an identifier")
    if len(version.split(".")) != _SEMVER_PARTS or not all(p.isdigit() for p in version.split(".")):
        raise ValueError(f"node {type_name}: version {version!r} is not MAJOR.MINOR.PATCH")

    def declare(cls: N) -> N:
        hints = typing.get_type_hints(cls, include_extras=True)
        run_hints = typing.get_type_hints(cls.run)
        outputs_class = run_hints.get("return")
        if not (isinstance(outputs_class, type) and issubclass(outputs_class, Outputs)):
            raise TypeError(f"node {type_name}: run() must be annotated to return an Outputs class")
        own = [n for n in hints if not n.startswith("_") and n not in _RESERVED]
        inputs = [
            _input_spec(type_name, n, hints[n], getattr(cls, n, dataclasses.MISSING)) for n in own
        ]
        output_hints = typing.get_type_hints(outputs_class)
        outputs = [
            OutputSpec(
                name=f.name, type=port_of(output_hints[f.name]).name, display_name=_title(f.name)
            )
            for f in dataclasses.fields(outputs_class)
            if f.name != "ui"
        ]
        cls.spec = NodeSpec(
            type=type_name,
            version=version,
            category=category,
            display_name=display_name or _title(type_name),
            description=(cls.__doc__ or "").strip(),
            output_node=output_node,
            volatile=volatile,
            inputs=inputs,
            outputs=outputs,
            module=cls.__module__,
        )
        cls.outputs_class = outputs_class
        for spec_input in inputs:
            # Instances get their inputs as attributes; drop the InputInfo class defaults.
            if isinstance(cls.__dict__.get(spec_input.name), InputInfo):
                delattr(cls, spec_input.name)
        return cls

    return declare


_RESERVED = {"spec", "outputs_class", "node_id"}


def _input_spec(node_type: str, name: str, annotation: Any, declared: Any) -> InputSpec:
    info = declared if isinstance(declared, InputInfo) else InputInfo(default=declared)
    port = port_of(annotation)
    inner = strip_optional(annotation)
    optional = inner is not annotation
    has_default = info.default is not dataclasses.MISSING
    link_only = info.link_only if info.link_only is not None else not port.primitive
    static_choices = list(get_args(inner)) if get_origin(inner) is Literal else None
    spec = InputSpec(
        name=name,
        type=port.name,
        required=not has_default and not optional,
        default=info.default if has_default else None,
        link_only=link_only,
        optional=optional,
        ge=info.ge,
        le=info.le,
        gt=info.gt,
        lt=info.lt,
        multiple_of=info.multiple_of,
        step=info.step,
        choices=static_choices,
        dynamic_choices=info.choices is not None,
        multiline=info.multiline,
        tooltip=info.tooltip,
        display_name=info.display_name or _title(name),
    )
    if not link_only:
        if not port.primitive:
            raise TypeError(f"node {node_type}: input {name} of type {port.name} must be link-only")
        bounds = [
            kind(bound)
            for kind, bound in (
                (annotated_types.Ge, info.ge),
                (annotated_types.Le, info.le),
                (annotated_types.Gt, info.gt),
                (annotated_types.Lt, info.lt),
                (annotated_types.MultipleOf, info.multiple_of),
            )
            if bound is not None
        ]
        # Strict: "false" is not True and 5.9 is not 5. A Literal already matches exactly.
        strict = [] if static_choices is not None else [Strict()]
        metadata = (inner, *strict, *bounds)
        annotated: Any = Annotated.__class_getitem__(metadata) if len(metadata) > 1 else inner  # type: ignore[attr-defined]
        spec._adapter = TypeAdapter(annotated)
        if has_default and info.default is not None:
            spec._adapter.validate_python(info.default)  # a bad default is the author's bug
    spec._choices_source = info.choices
    spec._check = info.check
    return spec


def _title(name: str) -> str:
    """`batch_size` → "Batch Size", `VAEDecode` stays as it is."""
    return name.replace("_", " ").title() if "_" in name or name.islower() else name
