"""Argument and shape checks shared by the convolution and pooling layers: int-or-tuple
sizes, padding ("SAME", "VALID" or explicit `(lo, hi)` pairs), the rank of an input with
`n` spatial axes and its output size."""

from __future__ import annotations

from collections.abc import Sequence

from funcnn.nn.conv_lowering import Pads, output_size, same_padding
from funcnn.nn.errors import LayerError
from funcnn.typing import Array, Shape

PaddingArg = str | Sequence[int] | Sequence[Sequence[int]]
""""SAME" | "VALID" (any case) | one `(lo, hi)` pair per spatial axis (1D: also `(lo, hi)`)."""

_AXES = {1: "(W, C)", 2: "(H, W, C)"}


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def int_tuple(layer: str, label: str, value: object, n: int) -> tuple[int, ...]:
    """A positive int or a tuple of `n` positive ints, as an `n`-tuple."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return (value,) * n
    if (isinstance(value, tuple | list) and len(value) == n
            and all(_is_int(v) and v > 0 for v in value)):
        return tuple(int(v) for v in value)
    raise ValueError(f"{layer}: {label} must be a positive int or a tuple of {n} positive "
                     f"ints, got {value!r}")


def padding_arg(layer: str, value: object, n: int, explicit: bool = True) -> str | Pads:
    """"SAME" / "VALID" (upper-cased), or `n` explicit `(lo, hi)` pairs of ints >= 0."""
    if isinstance(value, str):
        if value.upper() in ("SAME", "VALID"):
            return value.upper()
    elif explicit and isinstance(value, tuple | list):
        pairs = [value] if n == 1 and len(value) == 2 and all(map(_is_int, value)) else value
        if len(pairs) == n and all(
                isinstance(p, tuple | list) and len(p) == 2
                and all(_is_int(v) and v >= 0 for v in p) for p in pairs):
            return tuple((int(p[0]), int(p[1])) for p in pairs)
    options = '"SAME", "VALID"' + (f" or {n} (lo, hi) pairs of ints >= 0" if explicit else "")
    raise ValueError(f"{layer}: padding must be {options}, got {value!r}")


def config_padding(padding: str | Pads) -> str | list[list[int]]:
    """The padding as JSON-friendly config."""
    return padding if isinstance(padding, str) else [list(p) for p in padding]


def resolve_pads(padding: str | Pads, spatial: Sequence[int], kernel: Sequence[int],
                 strides: Sequence[int], dilation: Sequence[int]) -> Pads:
    """Explicit `(lo, hi)` per spatial axis ("SAME" by `same_padding`, "VALID" zeros)."""
    if padding == "VALID":
        return ((0, 0),) * len(spatial)
    if padding == "SAME":
        return tuple(same_padding(n, k, s, d) for n, k, s, d in
                     zip(spatial, kernel, strides, dilation, strict=True))
    return tuple(padding)  # type: ignore[arg-type]


def spatial_output(layer: str, spatial: Sequence[int], kernel: Sequence[int],
                   strides: Sequence[int], dilation: Sequence[int], pads: Pads) -> Shape:
    """Output spatial sizes; a LayerError if a window does not fit the padded input."""
    out = tuple(output_size(n, k, s, d, p) for n, k, s, d, p in
                zip(spatial, kernel, strides, dilation, pads, strict=True))
    if any(o < 1 for o in out):
        raise LayerError(layer, f"window {tuple(kernel)} (dilation {tuple(dilation)}) does "
                         f"not fit the spatial size {tuple(spatial)} padded by {pads}: "
                         f"output would be {out}")
    return out


def check_example_shape(layer: str, shape: Shape, n: int) -> None:
    """`init`'s input shape must be one example, `n` spatial axes then channels."""
    if len(shape) != n + 1:
        raise LayerError(layer, f"expected one example of shape {_AXES[n]} (no batch axis), "
                         f"got input_shape {shape}")


def check_input_rank(layer: str, x: Array, n: int) -> bool:
    """Whether `x` is one example `(*S, C)` (else a batch `(B, *S, C)`); other ranks fail."""
    if x.ndim not in (n + 1, n + 2):
        raise LayerError(layer, f"expected input (B, {_AXES[n][1:]} or one example {_AXES[n]},"
                         f" got shape {x.shape}")
    return x.ndim == n + 1
