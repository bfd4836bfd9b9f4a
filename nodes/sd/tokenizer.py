"""CLIP tokenization with prompt weights, offline: OpenAI's BPE files ship in `tokenizer_data/`.

Weight syntax (A1111/ComfyUI): `(text:1.2)` sets 1.2, `(text)` multiplies by 1.1, `[text]` divides
by 1.1, nesting multiplies, and `\\(` `\\)` `\\[` `\\]` `\\\\` are literal characters. An unmatched
closing bracket is literal text; an unclosed opening bracket weights everything after it, as A1111 does.

Padding: CLIP-L (SD1, and SDXL's first encoder) pads with the end token 49407; OpenCLIP (SD2's
ViT-H and SDXL's bigG) pads with 0 ("!"), as diffusers' and ComfyUI's tokenizers for those models do.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nodes.sd.values import Family, Tokens

if TYPE_CHECKING:
    import torch

DATA_DIR = Path(__file__).parent / "tokenizer_data"
BOS_ID = 49406
EOS_ID = 49407
OPEN_CLIP_PAD_ID = 0
WINDOW = 77
CONTENT_PER_WINDOW = WINDOW - 2  # each window is BOS + 75 tokens + EOS
ROUND_FACTOR = 1.1

_ATTENTION = re.compile(
    r"""
      \\[\\()\[\]]                                   # escaped bracket or backslash
    | \(
    | \[
    | :\s*(?P<weight>[+-]?(?:\d+(?:\.\d*)?|\.\d+))\s*\)   # ":1.2)" closes a round bracket
    | \)
    | \]
    | [^\\()\[\]:]+                                  # plain text
    | [\\:]                                          # a lone backslash or colon
    """,
    re.VERBOSE,
)


@functools.lru_cache(maxsize=1)
def clip_tokenizer() -> Any:
    """The CLIP BPE tokenizer (transformers.CLIPTokenizer) built from the shipped vocabulary, cached."""
    from transformers import CLIPTokenizer

    # transformers 5 takes `vocab=`/`merges=`; the v4 `vocab_file=` keywords are silently ignored.
    return CLIPTokenizer(
        vocab=str(DATA_DIR / "vocab.json"),
        merges=str(DATA_DIR / "merges.txt"),
        model_max_length=WINDOW,
    )


def parse_weights(text: str) -> list[tuple[str, float]]:
    """Split a prompt into (text, weight) runs; adjacent runs of equal weight are merged."""
    runs: list[list[Any]] = []
    round_open: list[int] = []
    square_open: list[int] = []

    def scale_from(start: int, factor: float) -> None:
        for run in runs[start:]:
            run[1] *= factor

    for match in _ATTENTION.finditer(text):
        piece = match.group(0)
        weight = match.group("weight")
        if piece.startswith("\\") and len(piece) == 2:
            runs.append([piece[1], 1.0])
        elif piece == "(":
            round_open.append(len(runs))
        elif piece == "[":
            square_open.append(len(runs))
        elif weight is not None and round_open:
            scale_from(round_open.pop(), float(weight))
        elif piece == ")" and round_open:
            scale_from(round_open.pop(), ROUND_FACTOR)
        elif piece == "]" and square_open:
            scale_from(square_open.pop(), 1 / ROUND_FACTOR)
        else:
            runs.append([piece, 1.0])
    for start in round_open:
        scale_from(start, ROUND_FACTOR)
    for start in square_open:
        scale_from(start, 1 / ROUND_FACTOR)

    merged: list[tuple[str, float]] = []
    for piece, weight in runs:
        if merged and merged[-1][1] == weight:
            merged[-1] = (merged[-1][0] + piece, weight)
        else:
            merged.append((piece, weight))
    return merged


def weighted_token_ids(text: str, tokenizer: Any | None = None) -> list[tuple[int, float]]:
    """The prompt's content tokens (no BOS/EOS), each with its weight."""
    tokenizer = tokenizer or clip_tokenizer()
    runs = [(piece, weight) for piece, weight in parse_weights(text) if piece.strip()]
    if not runs:
        return []
    # verbose=False: runs longer than 77 tokens are expected here; windows() splits them later.
    encoded = tokenizer([piece for piece, _ in runs], add_special_tokens=False, verbose=False)
    encoded = encoded["input_ids"]
    return [
        (token, weight) for ids, (_, weight) in zip(encoded, runs, strict=True) for token in ids
    ]


def windows(
    tokens: list[tuple[int, float]], pad_id: int
) -> tuple[list[list[int]], list[list[float]]]:
    """Cut content tokens into 77-token windows: BOS, up to 75 tokens, EOS, then `pad_id`."""
    ids_rows: list[list[int]] = []
    weight_rows: list[list[float]] = []
    for start in range(0, max(len(tokens), 1), CONTENT_PER_WINDOW):
        chunk = tokens[start : start + CONTENT_PER_WINDOW]
        padding = CONTENT_PER_WINDOW - len(chunk)
        ids_rows.append([BOS_ID, *(t for t, _ in chunk), EOS_ID, *([pad_id] * padding)])
        weight_rows.append([1.0, *(w for _, w in chunk), 1.0, *([1.0] * padding)])
    return ids_rows, weight_rows


def pad_id_for(family: Family) -> int:
    """The padding token of the family's first (or only) text encoder."""
    return OPEN_CLIP_PAD_ID if family == "sd2" else EOS_ID


def tokenize(text: str, family: Family = "sd1", tokenizer: Any | None = None) -> Tokens:
    """Tokenize a weighted prompt into 77-token windows; SDXL also gets OpenCLIP-G's padding in ids_2."""
    tokens = weighted_token_ids(text, tokenizer)
    ids, weights = windows(tokens, pad_id_for(family))
    ids_2 = weights_2 = None
    if family == "sdxl":
        ids_2_rows, weights_2_rows = windows(tokens, OPEN_CLIP_PAD_ID)
        ids_2, weights_2 = _as_tensors(ids_2_rows, weights_2_rows)
    ids_t, weights_t = _as_tensors(ids, weights)
    return Tokens(ids=ids_t, weights=weights_t, ids_2=ids_2, weights_2=weights_2, text=text)


def _as_tensors(
    ids: list[list[int]], weights: list[list[float]]
) -> tuple[torch.Tensor, torch.Tensor]:
    import torch

    return torch.tensor(ids, dtype=torch.int64), torch.tensor(weights, dtype=torch.float32)
