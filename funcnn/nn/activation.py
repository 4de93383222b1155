"""Activation layers (book chapters 4, 16, 17): parameter-free `y = fn(x)` over the
functions of `funcnn.activations`."""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

from funcnn import activations
from funcnn.nn.layer import Layer, parameter_free
from funcnn.typing import Array


def Activation(fn: Callable[[Array], Array], name: str, **config: Any) -> Layer:
    """A parameter-free layer `y = fn(x)` of any shape. Two activations share compiled
    programs only when they are the same `fn` object with the same name and config."""
    return parameter_free(name, fn, config)


def _builtin(fn: Callable[[Array], Array], name: str, defined_by: Callable[..., Array],
             **config: Any) -> Layer:
    """An activation whose `fn` is `defined_by` with `config`'s settings (a fresh closure
    each call): described by `defined_by`, so rebuilt copies share compiled programs."""
    return parameter_free(name, fn, config, determined_by=(defined_by,))


def ReLU() -> Layer:
    """`max(x, 0)`."""
    return Activation(activations.relu, "ReLU")


def LeakyReLU(negative_slope: float = 0.01) -> Layer:
    """`x if x > 0 else negative_slope * x`."""
    return _builtin(lambda x: activations.leaky_relu(x, negative_slope), "LeakyReLU",
                    activations.leaky_relu, negative_slope=negative_slope)


def Sigmoid() -> Layer:
    """`1 / (1 + exp(-x))`."""
    return Activation(activations.sigmoid, "Sigmoid")


def Tanh() -> Layer:
    """`tanh(x)`."""
    return Activation(activations.tanh, "Tanh")


def Linear() -> Layer:
    """Identity, the regression output of the book's chapter 17."""
    return Activation(activations.linear, "Linear")


def Step() -> Layer:
    """Heaviside step `x > 0` (chapter 4; its gradient is zero everywhere)."""
    return Activation(activations.step, "Step")


_LAST_AXIS_SOFTMAX: weakref.WeakSet[Callable[..., Any]] = weakref.WeakSet()
"""The `apply` functions of layers made by `Softmax()` over the last axis."""


def Softmax(axis: int = -1) -> Layer:
    """Stable softmax over `axis` (the last by default)."""
    layer = _builtin(lambda x: activations.softmax(x, axis), "Softmax", activations.softmax,
                     axis=axis)
    if axis == -1:
        _LAST_AXIS_SOFTMAX.add(layer.apply)
    return layer


def is_last_axis_softmax(layer: Layer) -> bool:
    """True for a layer made by `Softmax()` (over the last axis); not for other layers that
    happen to be named "Softmax"."""
    return layer.apply in _LAST_AXIS_SOFTMAX


def LogSoftmax(axis: int = -1) -> Layer:
    """Stable log-softmax over `axis` (the last by default)."""
    return _builtin(lambda x: activations.log_softmax(x, axis), "LogSoftmax",
                    activations.log_softmax, axis=axis)
