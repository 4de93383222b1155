"""The sample order of each training epoch: a NumPy permutation seeded by a key's words and
the epoch number, drawn on the host. `fit` over arrays and `ArraySource` over a stream
share it, so both see the samples in the same order."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from funcnn.typing import NumpyArray, PRNGKey

__all__ = ["epoch_orders", "key_seed"]


def key_seed(key: PRNGKey) -> NumpyArray:
    """The words of a key (typed or raw uint32), on the host: `(..., words)` uint32."""
    if not isinstance(key, jax.Array):
        return np.asarray(key, np.uint32)
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        key = jax.random.key_data(key)
    return np.asarray(jax.device_get(key), np.uint32)


def epoch_orders(seed: NumpyArray, ids: NumpyArray, n: int) -> NumpyArray:
    """The sample orders of epochs `ids`: `(len(ids), n)` int32, epoch `e`'s a permutation
    by NumPy's generator seeded with the key's words and `e` (drawn on the host: an
    on-device sort-based shuffle cost 10-25% of an epoch). A `seed` with leading axes
    (an ensemble's keys) gives orders with those axes first."""
    if seed.ndim > 1:
        return np.stack([epoch_orders(s, ids, n) for s in seed])
    words = [int(w) for w in seed]
    return np.stack([np.random.default_rng([*words, int(e)]).permutation(n).astype(np.int32)
                     for e in ids])
