"""JAX's persistent compilation cache, pointed at a funcnn directory.

Compiling a training program costs 0.5-1.5 s on a CPU; with the cache on, a later process
that builds the same program (same network, shapes, optimizer settings and JAX version)
loads it from disk instead. The `funcnn` command turns it on; library users call
`enable_compilation_cache()` once, before their first `fit`.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["CACHE_ENV", "default_cache_directory", "enable_compilation_cache"]

CACHE_ENV = "FUNCNN_CACHE"
"""Environment variable naming the cache directory (default `~/.cache/funcnn/jax`)."""


def default_cache_directory() -> Path:
    """`$FUNCNN_CACHE` when set, else `~/.cache/funcnn/jax`."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "funcnn" / "jax")


def enable_compilation_cache(directory: str | os.PathLike[str] | None = None,
                             min_compile_time_s: float = 0.1) -> Path:
    """Store every compiled program that took at least `min_compile_time_s` seconds to
    compile in `directory` (default `default_cache_directory()`), and load it from there
    in later processes. Returns the directory; raises OSError when it cannot be created."""
    if not min_compile_time_s >= 0:
        raise ValueError(f"enable_compilation_cache: min_compile_time_s must be >= 0, got "
                         f"{min_compile_time_s!r}")
    import jax  # here, so that the command line starts without loading JAX

    path = default_cache_directory() if directory is None else Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(path))  # type: ignore[no-untyped-call]
    jax.config.update(  # type: ignore[no-untyped-call]
        "jax_persistent_cache_min_compile_time_secs", float(min_compile_time_s))
    return path
