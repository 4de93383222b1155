"""Book chapter 6: optimizing by chance, to show why gradients are needed.

Dense(2, 3) - ReLU - Dense(3, 3) - softmax, scored by categorical cross-entropy, tuned
without any gradient in the chapter's two ways:

- random search: draw every weight and bias as `0.05 * N(0, 1)`, keep the set with the
  lowest loss (the chapter's first attempt; barely better than chance);
- random walk: add `0.05 * N(0, 1)` to every weight and bias, keep the change only when
  the loss drops (the chapter's second attempt).

The walk fits the vertical data (three blobs) but not the spiral. Both searches are
vectorised: the random search scores all candidates in one `vmap`, the walk is a
`lax.scan` over iterations, `vmap`ped over independent walks.

    python examples/ch06_random_search.py [--epochs ITERATIONS] [--walks N] [--quick]
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from functools import partial
from typing import NamedTuple

import book_common as book
import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

import funcnn as fn
from funcnn.losses import categorical_crossentropy
from funcnn.metrics import categorical_accuracy
from funcnn.typing import Array, Params, PRNGKey

STEP = 0.05
"""Scale of the random weights and of the random changes: `0.05 * N(0, 1)`."""


class Walk(NamedTuple):
    """The outcome of random walks: final loss and accuracy `(walks,)` and, per iteration,
    the best loss and its accuracy so far `(iterations, walks)`."""

    loss: Array
    accuracy: Array
    loss_trace: Array
    accuracy_trace: Array


def network() -> fn.Layer:
    """The chapter's small classifier: 2 -> 3 -> ReLU -> 3 -> softmax."""
    return fn.serial(fn.Dense(3), fn.ReLU(), fn.Dense(3), fn.Softmax())


def score(net: fn.Layer, params: Params, x: Array, y: Array) -> tuple[Array, Array]:
    """`(mean categorical cross-entropy, accuracy)` of `params` on `(x, y)`."""
    probs, _ = net.apply(params, {}, x)
    return (jnp.mean(categorical_crossentropy(probs, y)),
            jnp.mean(categorical_accuracy(probs, y)))


@partial(jax.jit, static_argnums=(0, 5))
def random_search(net: fn.Layer, template: Params, x: Array, y: Array, key: PRNGKey,
                  candidates: int) -> tuple[Array, Array]:
    """Score `candidates` random weight sets (shaped like `template`) at once;
    `(loss, acc)` of the best."""
    flat, unravel = ravel_pytree(template)
    weights = STEP * jax.random.normal(key, (candidates, flat.size), flat.dtype)
    losses, accuracies = jax.vmap(lambda w: score(net, unravel(w), x, y))(weights)
    best = jnp.argmin(losses)
    return losses[best], accuracies[best]


@partial(jax.jit, static_argnums=(0, 5, 6))
def random_walk(net: fn.Layer, start: Params, x: Array, y: Array, key: PRNGKey,
                iterations: int, walks: int) -> Walk:
    """`walks` independent walks of `iterations` steps from `start`, run as one program."""
    flat, unravel = ravel_pytree(start)

    def one_walk(changes: Array) -> tuple[Array, Array, Array, Array]:
        def step(carry: tuple[Array, Array, Array], change: Array) -> tuple[
                tuple[Array, Array, Array], tuple[Array, Array]]:
            best, best_loss, best_acc = carry
            trial = best + change
            loss, acc = score(net, unravel(trial), x, y)
            better = loss < best_loss
            kept = (jnp.where(better, trial, best), jnp.where(better, loss, best_loss),
                    jnp.where(better, acc, best_acc))
            return kept, kept[1:]

        loss0, acc0 = score(net, start, x, y)
        (_, loss, acc), (loss_trace, acc_trace) = jax.lax.scan(step, (flat, loss0, acc0),
                                                               changes)
        return loss, acc, loss_trace, acc_trace

    # every random change at once, (walks, iterations, n_params): one vectorised draw
    changes = STEP * jax.random.normal(key, (walks, iterations, flat.size), flat.dtype)
    return Walk(*jax.vmap(one_walk, out_axes=(0, 0, 1, 1))(changes))


def _walks(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--walks", type=int, default=16,
                        help="independent random walks per data set (default 16)")


def main(argv: Sequence[str] | None = None) -> book.Outcome:
    """Run both searches on both data sets; print the log of the first walk and the final
    figures: `{"<data>_<search>_loss"/"_acc": ...}`, walks averaged (no histories)."""
    args = book.parse_args(__doc__.splitlines()[0], argv, epochs=10_000, quick_epochs=1000,
                           print_every=1000, book_stream=False, add_arguments=_walks)
    if args.walks < 1:
        raise SystemExit(f"--walks must be at least 1, got {args.walks}")
    source = book.Source(args.seed)
    net = network()
    figures: dict[str, float] = {}
    for name, (x, y) in (("vertical", source.vertical(100, 3)),
                         ("spiral", source.spiral(100, 3))):
        start, _ = source.init(net, (2,))
        loss, acc = random_search(net, start, x, y, source.next_key(), args.epochs)
        print(f"\n{name} data, random search over {args.epochs} weight sets: "
              f"loss: {float(loss):.3f}, acc: {float(acc):.3f}")
        walk = random_walk(net, start, x, y, source.next_key(), args.epochs, args.walks)
        print(f"{name} data, random walk of {args.epochs} iterations (walk 1 of {args.walks}):")
        for i in range(args.print_every - 1, args.epochs, args.print_every):
            print(f"iteration: {i + 1}, loss: {float(walk.loss_trace[i, 0]):.3f}, "
                  f"acc: {float(walk.accuracy_trace[i, 0]):.3f}")
        print(f"{name} data, random walk, all {args.walks} walks: "
              f"loss: {float(jnp.mean(walk.loss)):.3f} (min {float(jnp.min(walk.loss)):.3f}, "
              f"max {float(jnp.max(walk.loss)):.3f}), acc: {float(jnp.mean(walk.accuracy)):.3f} "
              f"(min {float(jnp.min(walk.accuracy)):.3f}, max {float(jnp.max(walk.accuracy)):.3f})")
        figures.update({f"{name}_search_loss": float(loss), f"{name}_search_acc": float(acc),
                        f"{name}_walk_loss": float(jnp.mean(walk.loss)),
                        f"{name}_walk_acc": float(jnp.mean(walk.accuracy)),
                        f"{name}_walk_acc_min": float(jnp.min(walk.accuracy)),
                        f"{name}_walk_acc_max": float(jnp.max(walk.accuracy))})
    return book.Outcome(figures, {})


if __name__ == "__main__":
    main()
