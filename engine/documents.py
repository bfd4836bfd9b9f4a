"""Strict JSON decoding for everything a user hands us: graph files, `--set` values, config files
and request bodies.

The standard library's `json` does the parsing; this module only adds what it does not check
and turns every way it can fail into one `DocumentError` with a readable message: bytes that are
not UTF-8 (a PNG, UTF-16, latin-1), a byte-order mark, nesting deeper than `MAX_DEPTH`, numbers
longer than `MAX_NUMBER_CHARS`, NaN/Infinity, duplicate keys and lone surrogates (which no file
or UTF-8 stream can hold, so they would fail later, far from their cause).
"""

from __future__ import annotations

import codecs
import json
import math
from typing import Any

MAX_DEPTH = 64
MAX_NUMBER_CHARS = 100
# File signatures people mistake for graph files, by what they are.
_SIGNATURES = {
    b"\x89PNG\r\n\x1a\n": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
    b"GIF8": "a GIF image",
    b"PK\x03\x04": "a zip archive",
    b"\x1f\x8b": "a gzip archive",
}
_UTF16_32_BOMS = (
    codecs.BOM_UTF32_LE,
    codecs.BOM_UTF32_BE,
    codecs.BOM_UTF16_LE,
    codecs.BOM_UTF16_BE,
)


class DocumentError(ValueError):
    """A document that is not strict, UTF-8 JSON; the message says what and where."""


class NotJson(DocumentError):
    """Text that is not JSON at all (as opposed to JSON we refuse)."""


def decode_text(raw: bytes, what: str) -> str:
    """UTF-8 text from bytes; a UTF-8 byte-order mark is dropped, anything else not UTF-8 refused."""
    for signature, kind in _SIGNATURES.items():
        if raw.startswith(signature):
            raise DocumentError(f"{what} is {kind}, not a JSON document")
    if raw.startswith(_UTF16_32_BOMS) or (len(raw) >= 2 and b"\x00" in raw[:4]):
        raise DocumentError(f"{what} looks like UTF-16 or UTF-32 text; save it as UTF-8")
    if raw.startswith(codecs.BOM_UTF8):
        raw = raw[len(codecs.BOM_UTF8) :]
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DocumentError(
            f"{what} is not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}, "
            f"line {line}); save it as UTF-8"
        ) from None


def parse_json(text: str | bytes, what: str) -> Any:
    """Decode one strict JSON document; raises DocumentError naming `what` and the position."""
    if isinstance(text, bytes):
        text = decode_text(text, what)
    elif text.startswith("\ufeff"):
        text = text[1:]
    try:
        value = json.loads(
            text,
            object_pairs_hook=_unique_keys,
            parse_int=_parse_int,
            parse_float=_parse_float,
            parse_constant=_refuse_constant,
        )
    except json.JSONDecodeError as exc:
        raise NotJson(
            f"{what} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
        ) from None
    except _Refused as exc:
        raise DocumentError(f"{what}: {exc}") from None
    except RecursionError:
        raise DocumentError(f"{what} is nested more than {MAX_DEPTH} levels deep") from None
    check_value(value, what)
    return value


def check_value(value: Any, what: str) -> None:
    """Refuse values no JSON document should hold: deep nesting and lone surrogates.

    Iterative, so that a hostile document cannot exhaust the interpreter's stack here.
    """
    stack: list[tuple[Any, int, str]] = [(value, 1, "")]
    while stack:
        item, depth, where = stack.pop()
        if depth > MAX_DEPTH:
            raise DocumentError(f"{what} is nested more than {MAX_DEPTH} levels deep")
        if isinstance(item, str):
            _check_string(item, what, where)
        elif isinstance(item, dict):
            for key, child in item.items():
                _check_string(str(key), what, where)
                stack.append((child, depth + 1, f"{where}.{key}" if where else str(key)))
        elif isinstance(item, (list, tuple)):
            stack.extend((child, depth + 1, f"{where}[{i}]") for i, child in enumerate(item))
        elif isinstance(item, float) and not math.isfinite(item):
            raise DocumentError(f"{what}{_at(where)}: {item} is not a JSON number")


def _check_string(text: str, what: str, where: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise DocumentError(
            f"{what}{_at(where)}: a string holds a lone surrogate (\\u{ord(text[exc.start]):04x}),"
            " which is not text"
        ) from None


def _at(where: str) -> str:
    return f" at {where}" if where else ""


class _Refused(ValueError):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _Refused(f"the key {key!r} appears twice in one object")
        result[key] = value
    return result


def _parse_int(digits: str) -> int:
    if len(digits) > MAX_NUMBER_CHARS:
        raise _Refused(f"a number has more than {MAX_NUMBER_CHARS} digits")
    return int(digits)


def _parse_float(digits: str) -> float:
    if len(digits) > MAX_NUMBER_CHARS:
        raise _Refused(f"a number has more than {MAX_NUMBER_CHARS} digits")
    value = float(digits)
    if not math.isfinite(value):
        raise _Refused(f"{digits} is too large for a number")
    return value


def _refuse_constant(name: str) -> Any:
    raise _Refused(f"{name} is not a JSON number")
