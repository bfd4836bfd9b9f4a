"""The offline CLIP tokenizer: exact ids, padding, windows and prompt-weight parsing."""

from __future__ import annotations

import json

import pytest

from nodes.sd.tokenizer import (
    BOS_ID,
    DATA_DIR,
    EOS_ID,
    clip_tokenizer,
    parse_weights,
    tokenize,
    weighted_token_ids,
)

CAT_IDS = [49406, 320, 1125, 539, 320, 2368, 49407]


def test_shipped_vocabulary_is_clips() -> None:
    vocab = json.loads((DATA_DIR / "vocab.json").read_text(encoding="utf-8"))
    merges = (DATA_DIR / "merges.txt").read_text(encoding="utf-8").splitlines()
    assert len(vocab) == 49408
    assert vocab["<|startoftext|>"] == BOS_ID and vocab["<|endoftext|>"] == EOS_ID
    assert merges[0] == "#version: 0.2" and len(merges) == 1 + 48894
    assert (DATA_DIR / "LICENSE.txt").is_file()


def test_a_photo_of_a_cat_gives_clips_ids_padded_with_eos() -> None:
    tokens = tokenize("a photo of a cat")
    assert tokens.ids.shape == (1, 77) and tokens.weights.shape == (1, 77)
    assert tokens.ids[0, :7].tolist() == CAT_IDS
    assert tokens.ids[0, 7:].tolist() == [EOS_ID] * 70
    assert tokens.weights.eq(1.0).all()
    assert tokens.ids_2 is None and tokens.text == "a photo of a cat"


def test_tokenizer_is_built_once_and_limited_to_77() -> None:
    assert clip_tokenizer() is clip_tokenizer()
    assert clip_tokenizer().model_max_length == 77
    assert clip_tokenizer()("a photo of a cat")["input_ids"] == CAT_IDS


def test_openclip_families_pad_with_zero() -> None:
    sd2 = tokenize("a photo of a cat", "sd2")
    assert sd2.ids[0, :7].tolist() == CAT_IDS and sd2.ids[0, 7:].eq(0).all()
    xl = tokenize("a photo of a cat", "sdxl")
    assert xl.ids[0].tolist() == tokenize("a photo of a cat").ids[0].tolist()
    assert xl.ids_2 is not None and xl.weights_2 is not None
    assert xl.ids_2[0, :7].tolist() == CAT_IDS and xl.ids_2[0, 7:].eq(0).all()
    assert xl.weights_2.tolist() == xl.weights.tolist()


def test_empty_prompt_is_one_window_of_bos_eos() -> None:
    tokens = tokenize("")
    assert tokens.ids.shape == (1, 77)
    assert tokens.ids[0, :2].tolist() == [BOS_ID, EOS_ID]


def test_long_prompt_becomes_windows_of_75_tokens() -> None:
    tokens = tokenize("cat " * 160)  # "cat" is one token
    assert tokens.ids.shape == (3, 77)
    for row in tokens.ids.tolist():
        assert row[0] == BOS_ID
    assert tokens.ids[0].tolist() == [BOS_ID] + [2368] * 75 + [EOS_ID]
    assert tokens.ids[1].tolist() == [BOS_ID] + [2368] * 75 + [EOS_ID]
    assert tokens.ids[2, :12].tolist() == [BOS_ID] + [2368] * 10 + [EOS_ID]
    assert tokens.ids[2, 12:].eq(EOS_ID).all()


def test_exactly_75_tokens_fit_one_window() -> None:
    assert tokenize("cat " * 75).ids.shape == (1, 77)
    assert tokenize("cat " * 76).ids.shape == (2, 77)


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("plain text", [("plain text", 1.0)]),
        ("a (red:1.5) car", [("a ", 1.0), ("red", 1.5), (" car", 1.0)]),
        ("(red)", [("red", 1.1)]),
        ("[red]", [("red", 1 / 1.1)]),
        ("((red))", [("red", 1.1 * 1.1)]),
        ("((red:1.5))", [("red", 1.5 * 1.1)]),
        ("(a (b:2.0) c:0.5)", [("a ", 0.5), ("b", 1.0), (" c", 0.5)]),
        ("[[red]]", [("red", 1 / 1.1 / 1.1)]),
        ("(red : 1.25 )", [("red ", 1.25)]),
        (r"\(literal\) (x)", [("(literal) ", 1.0), ("x", 1.1)]),
        (r"(a \(b\))", [("a (b)", 1.1)]),
        (r"back\\slash", [("back\\slash", 1.0)]),
        ("time: 5pm", [("time: 5pm", 1.0)]),
        ("close) only", [("close) only", 1.0)]),
        ("(unclosed", [("unclosed", 1.1)]),
    ],
)
def test_weight_parsing(prompt: str, expected: list[tuple[str, float]]) -> None:
    parsed = parse_weights(prompt)
    assert [text for text, _ in parsed] == [text for text, _ in expected]
    assert [w for _, w in parsed] == pytest.approx([w for _, w in expected])


def test_weights_follow_tokens() -> None:
    pairs = weighted_token_ids("a (photo:1.3) of a [cat]")
    assert [t for t, _ in pairs] == CAT_IDS[1:-1]
    assert [w for _, w in pairs] == pytest.approx([1.0, 1.3, 1.0, 1.0, 1 / 1.1])
    tokens = tokenize("a (photo:1.3) of a [cat]")
    assert tokens.ids[0, :7].tolist() == CAT_IDS
    assert tokens.weights[0, :7].tolist() == pytest.approx([1.0, 1.0, 1.3, 1.0, 1.0, 1 / 1.1, 1.0])
    assert tokens.weights[0, 7:].eq(1.0).all()


def test_weighted_tokens_cross_window_boundaries() -> None:
    tokens = tokenize("cat " * 70 + "(dog:2.0) " * 10)
    assert tokens.ids.shape == (2, 77)
    assert tokens.weights[0, 71:76].tolist() == [2.0] * 5
    assert tokens.weights[1, 1:6].tolist() == [2.0] * 5
    assert tokens.weights[1, 6:].eq(1.0).all()
