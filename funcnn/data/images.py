"""Images from files or arrays: Pillow loading, and the book's chapter-22 preprocessing of
a new photo. Needs the optional extra `data` (Pillow), imported only when an image is read."""

from __future__ import annotations

import os
from pathlib import Path
from types import ModuleType
from typing import Any, TypeAlias

import jax.numpy as jnp
import numpy as np

from funcnn.typing import Array, NumpyArray

_MISSING_PILLOW = (
    "reading images needs Pillow, which is not installed; "
    "install it with `pip install funcnn[data]`"
)


def require_pillow() -> ModuleType:
    """The `PIL.Image` module, or an ImportError that says how to install it."""
    try:
        from PIL import Image
    except ImportError as error:
        raise ImportError(_MISSING_PILLOW) from error
    return Image


class _UnscalablePixelsError(ValueError):
    """Pixels beyond 0..255 in an image of no known bit depth."""


_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")
_WIDE_MODES = ("I", "F")  # 32-bit integer and float pixels: no bit depth to scale by


def gray_pixels(image: Any, where: str) -> NumpyArray:
    """A Pillow image as uint8 gray `(H, W)`: Pillow's "L" conversion, except that 16-bit
    grayscale (modes "I;16*", and "I" from a PNG, as Pillow < 10.3 opens them) is scaled by
    its bit depth, `v -> round(v * 255 / 65535)`, where "L" would clip at 255. Other "I" and
    "F" images must hold values in 0..255; otherwise a ValueError names `where`."""
    if image.mode in _SIXTEEN_BIT_MODES or (image.mode == "I" and image.format == "PNG"):
        values = np.asarray(image).astype(np.int64)  # 0..65535: PNG has at most 16 bits
        return ((values + 128) // 257).astype(np.uint8)  # round(v / 257), never a tie
    if image.mode in _WIDE_MODES:
        _check_8_bit_range(np.asarray(image), image.mode, where)
    return np.asarray(image.convert("L"), dtype=np.uint8)


def _check_8_bit_range(values: NumpyArray, mode: str, where: str) -> None:
    """A ValueError naming `where` unless every value is within 0..255."""
    if bool(np.all((values >= 0) & (values <= 255))):
        return
    span = ("include NaN" if np.isnan(values).any()
            else f"span {np.min(values).item()}..{np.max(values).item()}, beyond 0..255")
    raise _UnscalablePixelsError(
        f"{where}: pixel values {span}, and Pillow mode {mode} images have no known bit "
        "depth; save the image as 8- or 16-bit grayscale")


def read_grayscale(path: Path) -> NumpyArray:
    """One image file as a uint8 `(H, W)` array (see `gray_pixels`); errors name it."""
    image_module = require_pillow()
    try:
        with image_module.open(path) as image:
            return gray_pixels(image, str(path))
    except _UnscalablePixelsError:
        raise
    except (OSError, ValueError, SyntaxError) as error:
        raise ValueError(f"{path}: cannot read as an image ({error})") from error


ImageSource: TypeAlias = Any
"""A path, a Pillow image, or a uint8 array `(H, W)`, `(H, W, 1)`, `(H, W, 3)` or `(H, W, 4)`."""


def _to_grayscale(image: ImageSource, image_module: Any) -> Any:
    if isinstance(image, image_module.Image):
        return image_module.fromarray(gray_pixels(image, "preprocess_image"))
    if isinstance(image, str | os.PathLike):
        return image_module.fromarray(read_grayscale(Path(image)), mode="L")
    pixels = np.asarray(image)
    if pixels.dtype != np.uint8:
        raise TypeError(f"preprocess_image needs uint8 pixels in 0..255, got dtype {pixels.dtype}")
    modes = {1: "L", 3: "RGB", 4: "RGBA"}
    if pixels.ndim == 3 and pixels.shape[2] in modes:
        mode = modes[pixels.shape[2]]
        pixels = pixels[:, :, 0] if mode == "L" else pixels
    elif pixels.ndim == 2:
        mode = "L"
    else:
        raise ValueError(
            f"preprocess_image needs an image of shape (H, W) or (H, W, 1|3|4), got {pixels.shape}"
        )
    return image_module.fromarray(np.ascontiguousarray(pixels), mode=mode).convert("L")


def preprocess_image(
    image: ImageSource,
    *,
    size: tuple[int, int] = (28, 28),
    invert: bool = True,
    flatten: bool = True,
) -> Array:
    """The book's chapter-22 preparation of a new photo for a Fashion-MNIST model.

    Grayscale (Pillow's luma `L = 0.299 R + 0.587 G + 0.114 B`; alpha ignored, as by the
    book's `cv2.imread`; 16-bit gray scaled to 8 bits by `gray_pixels`, as in
    `image_folder`), resize to `size` `(height, width)` with Pillow's bilinear filter
    (antialiased when shrinking, unlike `cv2.resize`), invert (`255 - x`, for dark-on-light
    photos), scale `(x - 127.5) / 127.5` into [-1, 1]. Returns float32 `(H * W,)` with
    `flatten`, else `(H, W)`; add a batch axis with `[None]`.
    """
    height, width = size
    if min(height, width) < 1:
        raise ValueError(f"size must be positive (height, width), got {size}")
    image_module = require_pillow()
    gray = _to_grayscale(image, image_module)
    resized = gray.resize((width, height), resample=image_module.Resampling.BILINEAR)
    pixels = np.asarray(resized, dtype=np.float32)
    if invert:
        pixels = 255.0 - pixels
    scaled = jnp.asarray((pixels - 127.5) / 127.5, dtype=jnp.float32)
    return scaled.reshape(-1) if flatten else scaled
