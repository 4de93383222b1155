"""`summary`: a network's table of param paths, output shapes and parameter counts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax

from funcnn.nn.combinators import output_shape
from funcnn.nn.layer import Layer, is_pair_shape
from funcnn.tree import count_params
from funcnn.typing import DTypeLike, Shape


class SummaryRow(NamedTuple):
    """One line of a summary: param-key path, layer kind, per-example output shape, #params."""

    path: str
    kind: str
    output_shape: Shape
    n_params: int


def summary_rows(layer: Layer, input_shape: Shape, dtype: DTypeLike | None = None,
                 prefix: str = "") -> tuple[list[SummaryRow], Shape]:
    """Rows for `layer` and, through its `child_inputs` wiring, its children; returns the
    rows and the output shape. A layer without wiring (a leaf, or a combinator that does not
    say how it feeds its children) is one row with all of its params."""
    shape = tuple(input_shape)
    p, s = jax.eval_shape(lambda k: layer.init(k, shape), jax.random.key(0))
    out = output_shape(layer, p, s, shape, dtype)
    path = prefix or layer.name.lower()
    total = count_params(p)
    if layer.child_inputs is None:
        return [SummaryRow(path, layer.name, out, total)], out
    rows: list[SummaryRow] = []
    for name, child, child_shape in layer.child_inputs(shape):
        child_path = f"{prefix}/{name}" if prefix else name
        rows.extend(summary_rows(child, child_shape, None, child_path)[0])
    own = total - sum(r.n_params for r in rows)
    if own:  # params the combinator holds itself, beside its children's
        rows.append(SummaryRow(path, layer.name, out, own))
    return rows, out


def batched(shape: Any) -> str:
    """A per-example shape with its batch axis, `(None, 3)`; a pair's as `((None, T, F),
    (None, T))`."""
    if is_pair_shape(shape):
        return "(" + ", ".join(batched(s) for s in shape) + ")"
    return str((None, *tuple(shape)))


def summary_table(layer: Layer, input_shape: Shape, dtype: DTypeLike | None = None) -> str:
    """The summary as text: one row per layer, then the total parameter count."""
    rows, _ = summary_rows(layer, tuple(input_shape), dtype)
    table = [("layer", "kind", "output shape", "params")] + [
        (r.path, r.kind, batched(r.output_shape), f"{r.n_params:,}") for r in rows
    ]
    widths = [max(len(row[c]) for row in table) for c in range(4)]

    def fmt(row: tuple[str, str, str, str]) -> str:
        return "  ".join(
            cell.rjust(w) if c == 3 else cell.ljust(w)
            for c, (cell, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()

    rule = "-" * len(fmt(table[0]))
    total = sum(r.n_params for r in rows)
    lines = [f"input shape: {batched(input_shape)}", rule, fmt(table[0]), rule]
    lines += [fmt(row) for row in table[1:]]
    lines += [rule, f"total params: {total:,}"]
    return "\n".join(lines)


def summary(layer: Layer, input_shape: Shape, dtype: DTypeLike | None = None,
            print_fn: Callable[[str], object] = print) -> None:
    """Print each layer's path, output shape and parameter count, and the total."""
    print_fn(summary_table(layer, input_shape, dtype))
