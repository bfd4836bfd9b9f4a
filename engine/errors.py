"""Errors as values: every problem has a code, a message and a location (node id, input name)."""

from __future__ import annotations

from enum import Enum
from typing import Any

from pydantic import BaseModel, ConfigDict


class ErrorCode(str, Enum):
    """What went wrong, as a stable machine-readable code."""

    INVALID_GRAPH = "invalid_graph"
    UNKNOWN_NODE_TYPE = "unknown_node_type"
    MISSING_INPUT = "missing_input"
    UNKNOWN_INPUT = "unknown_input"
    INPUT_CONFLICT = "input_conflict"
    LINK_REQUIRED = "link_required"
    INVALID_LINK = "invalid_link"
    LINK_TO_MISSING_NODE = "link_to_missing_node"
    LINK_TO_MISSING_OUTPUT = "link_to_missing_output"
    TYPE_MISMATCH = "type_mismatch"
    VALUE_OUT_OF_RANGE = "value_out_of_range"
    VALUE_NOT_MULTIPLE = "value_not_multiple"
    VALUE_NOT_IN_CHOICES = "value_not_in_choices"
    INVALID_TYPE = "invalid_type"
    INVALID_VALUE = "invalid_value"
    CYCLE = "cycle"
    NO_OUTPUT_NODE = "no_output_node"
    UNKNOWN_OUTPUT_NODE = "unknown_output_node"


class GraphError(BaseModel):
    """One validation problem, located at a node and input where it has one."""

    model_config = ConfigDict(frozen=True)

    code: ErrorCode
    message: str
    node_id: str | None = None
    input: str | None = None
    value: Any = None
    # The node ids on a cycle, in order, for `cycle` errors.
    cycle: list[str] | None = None

    def render(self) -> str:
        """A one-line human form: `node.input: message [code]`."""
        where = ".".join(p for p in (self.node_id, self.input) if p)
        prefix = f"{where}: " if where else ""
        return f"{prefix}{self.message} [{self.code.value}]"


class GraphValidationError(Exception):
    """A graph failed validation; `errors` lists every problem found, not just the first."""

    def __init__(self, errors: list[GraphError]) -> None:
        self.errors = errors
        lines = "\n".join("  " + e.render() for e in errors)
        super().__init__(f"graph is invalid ({len(errors)} error(s)):\n{lines}")


class NodeFailure(BaseModel):
    """A node that raised while running, with what the CLI, server and editor need to show it."""

    node_id: str
    node_type: str
    exception_type: str
    message: str
    traceback: list[str] = []
    # The input at fault, when the node could tell (see NodeInputError).
    input: str | None = None


class ResourceLimitError(Exception):
    """A node would need more than a limit allows (memory, pixels, token windows)."""


class NodeInputError(Exception):
    """Raised by a node when one of its inputs is unusable at run time (a corrupt image, say)."""

    def __init__(self, input: str, message: str) -> None:
        self.input = input
        super().__init__(message)
