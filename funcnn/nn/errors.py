"""Errors that name the layer path where they happened.

A layer raises `LayerError("Dense", "expected last dimension 784, got 100")`; each
enclosing combinator prefixes its own position, so the user reads
`serial[2]/Dense: expected last dimension 784, got 100`.
"""

from __future__ import annotations


class LayerError(ValueError):
    """A bad shape, value or parameter tree met by a layer; `path` locates the layer."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason

    def within(self, prefix: str) -> LayerError:
        """The same error seen from an enclosing layer at `prefix`."""
        return type(self)(f"{prefix}/{self.path}", self.reason)


class LayerTypeError(LayerError, TypeError):
    """A layer received an input of the wrong dtype (e.g. integers where floats are needed)."""
