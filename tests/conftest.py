"""Test-wide JAX settings: implicit rank promotion is an error everywhere, and matrix
products use full float32 precision (on GPUs the default may be TF32, too coarse for
tests that compare with analytic values to 1e-5)."""

import jax

jax.config.update("jax_numpy_rank_promotion", "raise")
jax.config.update("jax_default_matmul_precision", "highest")
