"""Character data from the standard library's source: ids, round trips and windows."""

from __future__ import annotations

import numpy as np
import pytest

from funcnn.datasets import (
    ALPHABET,
    UNKNOWN,
    char_windows,
    decode_chars,
    encode_chars,
    stdlib_text,
)


def test_alphabet_is_newline_then_printable_ascii() -> None:
    assert len(ALPHABET) == 96 and ALPHABET[0] == "\n" and ALPHABET[1] == " "
    assert ALPHABET[-1] == "~" and UNKNOWN == 96


def test_encode_decode_round_trip_tabs_and_unknown_characters() -> None:
    ids = encode_chars("a\tb\u00e9\n")
    assert ids.dtype == np.int32
    assert ids.tolist() == [66, 1, 1, 1, 67, UNKNOWN, 0]  # the tab reaches column 4
    assert decode_chars(ids) == "a   b\N{REPLACEMENT CHARACTER}\n"
    assert encode_chars("b\u00e9c", unknown="drop").tolist() == [67, 68]
    with pytest.raises(ValueError, match=r"ids must lie in 0\.\.96"):
        decode_chars([97])
    with pytest.raises(ValueError, match="unknown must be 'keep' or 'drop'"):
        encode_chars("a", unknown="clip")


def test_stdlib_text_is_reproducible_and_checked() -> None:
    text = stdlib_text(5_000)
    assert len(text) == 5_000 and text == stdlib_text(5_000)
    assert "import" in text
    with pytest.raises(ValueError, match="asked for"):
        stdlib_text(10**12)
    with pytest.raises(ValueError, match="chars must be a positive int"):
        stdlib_text(0)


def test_char_windows_pair_each_id_with_the_next() -> None:
    x, y = char_windows(np.arange(10, dtype=np.int32), 3)
    assert x.tolist() == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]
    assert y.tolist() == [[1, 2, 3], [4, 5, 6], [7, 8, 9]]
    with pytest.raises(ValueError, match="make no window"):
        char_windows(np.arange(3), 3)
