"""The book's generated data sets (package `nnfs`), keyed with `jax.random` keys.

Every set comes back class by class (all samples of class 0, then class 1, ...), exactly as
the book builds it; shuffle before minibatch training. Features are float32 and labels int32.
"""

from __future__ import annotations

import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from funcnn.typing import Array, PRNGKey

SPIRAL_NOISE = 0.2
"""Standard deviation of the angle noise in the book's spiral data."""

VERTICAL_NOISE = 0.1
"""Standard deviation of both coordinates' noise in the book's vertical data."""


def _check_count(name: str, value: object, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")
    return value


def _check_noise(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    noise = float(value)
    if not math.isfinite(noise) or noise < 0.0:
        raise ValueError(f"{name} must be finite and non-negative, got {value}")
    return noise


def class_labels(samples: int, classes: int) -> Array:
    """`(samples * classes,)` int32 labels `[0]*samples + [1]*samples + ...`."""
    _check_count("samples", samples)
    _check_count("classes", classes)
    return jnp.asarray(np.repeat(np.arange(classes, dtype=np.int32), samples))


def spiral_polar(samples: int, classes: int) -> tuple[Array, Array]:
    """The noise-free spiral in polar form: radius and angle, each `(classes, samples)`.

    Class `c` has `r = linspace(0, 1, samples)` and `t = linspace(4c, 4(c+1), samples)`.
    """
    _check_count("samples", samples)
    _check_count("classes", classes)
    radius = np.broadcast_to(np.linspace(0.0, 1.0, samples), (classes, samples))
    angle = np.stack([np.linspace(4.0 * c, 4.0 * (c + 1), samples) for c in range(classes)])
    return jnp.asarray(radius, dtype=jnp.float32), jnp.asarray(angle, dtype=jnp.float32)


def spiral_points(radius: Array, angle: Array) -> Array:
    """Points `(r sin 2.5t, r cos 2.5t)`, shape `radius.shape + (2,)`."""
    return jnp.stack([radius * jnp.sin(2.5 * angle), radius * jnp.cos(2.5 * angle)], axis=-1)


def spiral(
    key: PRNGKey, samples: int = 100, classes: int = 3, *, noise: float = SPIRAL_NOISE
) -> tuple[Array, Array]:
    """The book's spiral: `x` float32 `(samples * classes, 2)`, `y` int32 `(samples * classes,)`.

    For class `c`: `r = linspace(0, 1, samples)`, `t = linspace(4c, 4(c+1), samples) +
    noise * N(0, 1)`, point `(r sin 2.5t, r cos 2.5t)`. `noise=0` gives the exact geometry
    of `spiral_polar` and `spiral_points`.
    """
    _check_count("samples", samples)
    _check_count("classes", classes)
    data: tuple[Array, Array] = _spiral(key, samples, classes, _check_noise("noise", noise))
    return data


@partial(jax.jit, static_argnums=(1, 2))
def _spiral(key: PRNGKey, samples: int, classes: int, noise: float) -> tuple[Array, Array]:
    radius, angle = spiral_polar(samples, classes)
    angle = angle + noise * jax.random.normal(key, angle.shape, dtype=jnp.float32)
    x = spiral_points(radius, angle).reshape(samples * classes, 2)
    return x, class_labels(samples, classes)


def vertical(
    key: PRNGKey, samples: int = 100, classes: int = 3, *, noise: float = VERTICAL_NOISE
) -> tuple[Array, Array]:
    """The book's vertical data: `x` float32 `(samples * classes, 2)`, `y` int32.

    Class `c` is a blob around `(c / 3, 0.5)`: `(noise * N(0,1) + c/3, noise * N(0,1) + 0.5)`.
    """
    _check_count("samples", samples)
    _check_count("classes", classes)
    data: tuple[Array, Array] = _vertical(key, samples, classes, _check_noise("noise", noise))
    return data


@partial(jax.jit, static_argnums=(1, 2))
def _vertical(key: PRNGKey, samples: int, classes: int, noise: float) -> tuple[Array, Array]:
    labels = class_labels(samples, classes)
    centres = jnp.stack(
        [labels.astype(jnp.float32) / 3.0, jnp.full(labels.shape, 0.5, dtype=jnp.float32)],
        axis=-1,
    )
    x = centres + noise * jax.random.normal(key, centres.shape, dtype=jnp.float32)
    return x, labels


def sine(samples: int = 1000) -> tuple[Array, Array]:
    """The book's regression data: `x = arange(N) / N`, `y = sin(2 pi x)`, both float32 `(N, 1)`."""
    _check_count("samples", samples)
    data: tuple[Array, Array] = _sine(samples)
    return data


@partial(jax.jit, static_argnums=0)
def _sine(samples: int) -> tuple[Array, Array]:
    x = (jnp.arange(samples, dtype=jnp.float32) / samples).reshape(samples, 1)
    return x, jnp.sin(2.0 * jnp.pi * x)
