"""Derive `vocab.json` and `merges.txt` from OpenAI CLIP's `bpe_simple_vocab_16e6.txt.gz`.

Run once by hand (`python derive.py path/to/bpe_simple_vocab_16e6.txt.gz`); the outputs are committed,
so nothing at run time needs this script, the .gz file or open_clip.
"""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

# CLIP's vocabulary: 256 byte symbols, the same with "</w>", the merges, then two specials.
VOCAB_SIZE = 49408
MERGE_COUNT = VOCAB_SIZE - 256 - 256 - 2


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible byte→printable-character table, in its canonical order."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    chars = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(printable, (chr(c) for c in chars), strict=True))


def derive(bpe_gz: Path, out_dir: Path) -> None:
    """Write vocab.json and merges.txt into `out_dir` exactly as CLIP's SimpleTokenizer builds them."""
    lines = gzip.decompress(bpe_gz.read_bytes()).decode("utf-8").split("\n")
    # Line 0 is a version header; CLIP keeps only the first MERGE_COUNT pairs after it.
    merges = [tuple(line.split()) for line in lines[1 : 1 + MERGE_COUNT]]
    symbols = list(bytes_to_unicode().values())
    vocab = symbols + [s + "</w>" for s in symbols] + ["".join(pair) for pair in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    assert len(vocab) == VOCAB_SIZE, len(vocab)
    token_ids = {token: i for i, token in enumerate(vocab)}
    (out_dir / "vocab.json").write_text(json.dumps(token_ids, ensure_ascii=False), encoding="utf-8")
    body = "\n".join(" ".join(pair) for pair in merges)
    (out_dir / "merges.txt").write_text("#version: 0.2\n" + body + "\n", encoding="utf-8")


if __name__ == "__main__":
    derive(Path(sys.argv[1]), Path(__file__).parent)
