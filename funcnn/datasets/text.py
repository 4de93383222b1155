"""Character data that is on every machine: the Python standard library's own source,
as int32 ids over newline + printable ASCII, cut into next-character windows."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from funcnn.typing import NumpyArray

STDLIB_MODULES = ("argparse.py", "dataclasses.py", "functools.py", "inspect.py",
                  "textwrap.py", "typing.py")
"""The standard-library files `stdlib_text` reads, in this order."""

ALPHABET = "\n" + "".join(chr(code) for code in range(32, 127))
"""Ids 0..95: newline, then the printable ASCII characters from space to `~`."""
UNKNOWN = len(ALPHABET)
"""The id `encode_chars` gives every other character (96) when asked to keep them."""
UNKNOWN_GLYPH = "\N{REPLACEMENT CHARACTER}"


def stdlib_text(chars: int | None = None, modules: Sequence[str] = STDLIB_MODULES) -> str:
    """The first `chars` characters (all when None) of `modules`' sources, concatenated."""
    root = os.path.dirname(os.__file__)
    parts = []
    for name in modules:
        with open(os.path.join(root, name), encoding="utf-8") as source:
            parts.append(source.read())
    text = "".join(parts)
    if chars is not None:
        if not isinstance(chars, int) or isinstance(chars, bool) or chars <= 0:
            raise ValueError(f"stdlib_text: chars must be a positive int, got {chars!r}")
        if chars > len(text):
            raise ValueError(f"stdlib_text: asked for {chars:,} characters, "
                             f"{', '.join(modules)} have {len(text):,}")
        text = text[:chars]
    return text


def encode_chars(text: str, *, unknown: str = "keep") -> NumpyArray:
    """Characters to int32 ids (`ALPHABET`'s index; tabs become four spaces). Any other
    character is `UNKNOWN` with `unknown="keep"` (vocabulary 97) or left out with
    `unknown="drop"` (vocabulary 96)."""
    if unknown not in ("keep", "drop"):
        raise ValueError(f"encode_chars: unknown must be 'keep' or 'drop', got {unknown!r}")
    index = {char: i for i, char in enumerate(ALPHABET)}
    text = text.expandtabs(4)
    if unknown == "drop":
        text = "".join(char for char in text if char in index)
    return np.fromiter((index.get(char, UNKNOWN) for char in text), np.int32, len(text))


def decode_chars(ids: Sequence[int] | NumpyArray) -> str:
    """Ids back to characters (`UNKNOWN` as `UNKNOWN_GLYPH`)."""
    values = np.asarray(ids)
    if values.size and (values.min() < 0 or values.max() > UNKNOWN):
        raise ValueError(f"decode_chars: ids must lie in 0..{UNKNOWN}, got "
                         f"{int(values.min())}..{int(values.max())}")
    return "".join(ALPHABET[i] if i < UNKNOWN else UNKNOWN_GLYPH for i in values)


def char_windows(ids: NumpyArray, context: int) -> tuple[NumpyArray, NumpyArray]:
    """Non-overlapping windows `x (N, T)` of `context` ids and their next ids `y (N, T)`
    (`y[n, t] = ids[n*T + t + 1]`); the tail that fills no window is left out."""
    if not isinstance(context, int) or isinstance(context, bool) or context <= 0:
        raise ValueError(f"char_windows: context must be a positive int, got {context!r}")
    values = np.asarray(ids)
    n = (len(values) - 1) // context
    if n == 0:
        raise ValueError(f"char_windows: {len(values)} ids make no window of {context} "
                         "plus its next id")
    x = values[:n * context].reshape(n, context)
    y = values[1:n * context + 1].reshape(n, context)
    return x, y
