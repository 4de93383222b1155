"""`Flatten`: reshape layers that merge example axes (book chapter 19's image input)."""

from __future__ import annotations

from funcnn.nn.errors import LayerError
from funcnn.nn.layer import Layer, parameter_free
from funcnn.typing import Array, Shape


def Flatten(ndim: int = 2) -> Layer:
    """Merge the trailing `ndim` axes into one: `(..., d1, ..., d_ndim) -> (..., d1*...*d_ndim)`.

    Example axes are the trailing ones, so the same layer flattens one image `(28, 28)`
    or a batch `(B, 28, 28)`; `init` checks that examples have exactly `ndim` axes.
    """
    if not isinstance(ndim, int) or isinstance(ndim, bool) or ndim < 1:
        raise ValueError(f"Flatten: ndim must be a positive int, got {ndim!r}")

    def check_shape(shape: Shape) -> None:
        if len(shape) != ndim:
            hint = f"; use Flatten(ndim={len(shape)})" if shape else ""
            raise LayerError(
                "Flatten",
                f"Flatten(ndim={ndim}) expects examples with {ndim} axes, got shape {shape}"
                f"{hint}",
            )

    def flatten(x: Array) -> Array:
        if x.ndim < ndim:
            raise LayerError("Flatten", f"expected at least {ndim} axes, got shape {x.shape}")
        return x.reshape((*x.shape[: x.ndim - ndim], -1))

    return parameter_free("Flatten", flatten, {"ndim": ndim}, check_shape, determined_by=())
