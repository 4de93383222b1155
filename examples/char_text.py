"""A character-level language model on Python's own standard library, against a unigram.

Data: the source of six standard-library modules of the running Python (no download),
read in this order: `argparse.py`, `dataclasses.py`, `functools.py`, `inspect.py`,
`textwrap.py`, `typing.py` from `os.path.dirname(os.__file__)`, concatenated, the first
`--chars` characters (default 300,000). Characters map to 97 ids: newline, the 95
printable ASCII characters from space to `~`, and one id for anything else (a tab counts
as four spaces). The first 90% of the text trains, the last 10% validates. Each split is
cut into non-overlapping windows of `--context` T ids (default 64): `x` the window `(N, T)`
int32, `y` the same window shifted one character on `(N, T)`, so the network predicts the
next character at every position from the characters up to it.

Two models, each ending in a softmax over the 97 ids at every position `(N, T, 97)`,
trained with Adam on minibatches of 32 windows reshuffled every epoch, 12 epochs,
validated after each epoch:

- `transformer`: Embedding(128, vocab=97) plus a learned position embedding (`PositionEmbedding`, a
  `(T, 128)` table added to every sequence), two pre-LayerNorm blocks
  `x + MHA(LN(x))` (4 heads, causal: position t attends to positions <= t) and
  `x + Dense(128)(ReLU(Dense(512)(LN(x))))`, a final LayerNorm, Dense(97), Softmax;
  Adam lr 1e-3;
- `lstm`: Embedding(64, vocab=97), LSTM(256) returning every step, Dense(97), Softmax;
  Adam lr 2e-3.

The loss is `funcnn.losses.token_crossentropy`: `categorical_crossentropy` at every
position `(N, T)`, averaged over the T positions of a window into the one value per
example `(N,)` that `fit` takes; the metric is `funcnn.metrics.token_accuracy`, the share
of positions whose most probable next character is right. Validation bits per character
are the validation loss in nats over ln 2 (`funcnn.losses.to_bits`). The baseline is a
unigram: the training text's character frequencies (add-one smoothed) scored on the
validation text. After training each model writes
`--sample-chars` characters (default 200), sampled at `--temperature` (default 0.7) with
a fixed key, fed a sliding window of the last T ids (primed with the validation text's
first T characters). The run ends with a table of parameters, validation bits per
character, validation accuracy (the most probable next character) and seconds per model.

    python examples/char_text.py [--epochs N] [--quick] [--models transformer,lstm]
                                 [--chars N] [--context T] [--batch-size B]
                                 [--sample-chars N] [--temperature X]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence

import book_common as book
import jax
import jax.numpy as jnp
import numpy as np

import funcnn as fn
from funcnn.datasets import (
    STDLIB_MODULES,
    UNKNOWN,
    char_windows,
    decode_chars,
    encode_chars,
    stdlib_text,
)
from funcnn.losses import to_bits, token_crossentropy
from funcnn.metrics import token_accuracy
from funcnn.optim import adam
from funcnn.typing import Array, NumpyArray, Params, PRNGKey, State

VOCAB = UNKNOWN + 1
D_MODEL = 128
"""The transformer's width."""
LSTM_EMBED, LSTM_HIDDEN = 64, 256
BATCH_SIZE = 32
VALIDATION_SHARE = 0.1
LEARNING_RATES = {"transformer": 1e-3, "lstm": 2e-3}










def _text(chars: int) -> str:
    """`stdlib_text(chars)`, or the command-line error when there are fewer characters."""
    try:
        return stdlib_text(chars)
    except ValueError as err:
        raise SystemExit(f"--chars: {err}") from None


def split(ids: NumpyArray) -> tuple[NumpyArray, NumpyArray]:
    """The training ids (the first 90%) and the validation ids (the last 10%)."""
    cut = round(len(ids) * (1 - VALIDATION_SHARE))
    return ids[:cut], ids[cut:]


def unigram_bits(train: NumpyArray, validation: NumpyArray) -> float:
    """Bits per character of the training frequencies (add-one smoothed) on `validation`."""
    counts = np.bincount(train, minlength=VOCAB) + 1.0
    log2_p = np.log2(counts / counts.sum())
    return float(-np.mean(log2_p[validation]))




def transformer_block(features: int, heads: int) -> list[fn.Layer]:
    """Pre-LayerNorm attention and feed-forward sublayers, each inside a residual."""
    attention = fn.serial(fn.LayerNorm(), fn.MultiHeadAttention(features, heads=heads, causal=True))
    feed_forward = fn.serial(fn.LayerNorm(),
                             fn.Dense(4 * features, w_init=fn.initializers.he_normal()),
                             fn.ReLU(),
                             fn.Dense(features, w_init=fn.initializers.glorot_uniform()))
    return [fn.residual(attention), fn.residual(feed_forward)]


def transformer() -> fn.Layer:
    """A causal transformer: ids -> embedding + positions -> 2 blocks -> next-char probs."""
    return fn.serial(fn.Embedding(D_MODEL, vocab=VOCAB), fn.PositionEmbedding(),
                     *transformer_block(D_MODEL, 4), *transformer_block(D_MODEL, 4),
                     fn.LayerNorm(), fn.Dense(VOCAB), fn.Softmax())


def lstm() -> fn.Layer:
    """An LSTM over the embedded ids, one next-char softmax per step."""
    return fn.serial(fn.Embedding(LSTM_EMBED, vocab=VOCAB), fn.LSTM(LSTM_HIDDEN), fn.Dense(VOCAB),
                     fn.Softmax())


MODELS: dict[str, Callable[[], fn.Layer]] = {"transformer": transformer, "lstm": lstm}
"""The models by name, in the order they run."""


def _flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models", default=",".join(MODELS),
                        help=f"comma-separated models to train (default {','.join(MODELS)})")
    parser.add_argument("--chars", type=int, default=300_000,
                        help="characters of standard-library source to use (default 300000)")
    parser.add_argument("--context", type=int, default=64,
                        help="window length T in characters (default 64)")
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE,
                        help=f"windows per minibatch (default {BATCH_SIZE})")
    parser.add_argument("--sample-chars", type=int, default=200,
                        help="characters to sample from each model (default 200)")
    parser.add_argument("--temperature", type=float, default=0.7,
                        help="sampling temperature, 0 for greedy (default 0.7)")


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    """The shared flags plus the model, data and sampling flags, checked."""
    args = book.parse_args(__doc__.splitlines()[0], argv, epochs=12, quick_epochs=1,
                           print_every=1, book_stream=False, add_arguments=_flags)
    args.models = book.chosen_models(args.models, list(MODELS))
    if args.context < 2:
        raise SystemExit(f"--context must be at least 2, got {args.context}")
    if args.chars < 20 * args.context:
        raise SystemExit(f"--chars must be at least 20 x --context = {20 * args.context}, "
                         f"got {args.chars}")
    if args.temperature < 0:
        raise SystemExit(f"--temperature must be at least 0, got {args.temperature}")
    return args


def model_keys(seed: int, name: str) -> tuple[PRNGKey, PRNGKey, PRNGKey]:
    """Keys for model `name`'s initial weights, its shuffles and its sample: functions of
    the seed and the model alone, so `--models` does not change them."""
    init_key, fit_key, sample_key = jax.random.split(
        jax.random.fold_in(jax.random.key(seed), 200 + list(MODELS).index(name)), 3)
    return init_key, fit_key, sample_key


def sample(net: fn.Layer, params: Params, state: State, prime: NumpyArray, chars: int,
           temperature: float, key: PRNGKey) -> NumpyArray:
    """`chars` ids drawn one at a time from the model's next-char probabilities given the
    last T ids (a sliding window starting at `prime`), at `temperature` (0: greedy)."""

    def step(window: Array, step_key: PRNGKey) -> tuple[Array, Array]:
        probs, _ = net.apply(params, state, window[None])
        log_p = jnp.log(jnp.maximum(probs[0, -1], 1e-30))
        if temperature == 0:
            nxt = jnp.argmax(log_p).astype(jnp.int32)
        else:
            nxt = jax.random.categorical(step_key, log_p / temperature).astype(jnp.int32)
        return jnp.concatenate([window[1:], nxt[None]]), nxt

    _, ids = jax.jit(lambda w, k: jax.lax.scan(step, w, jax.random.split(k, chars)))(
        jnp.asarray(prime, jnp.int32), key)
    return np.asarray(ids)


Data = tuple[NumpyArray, NumpyArray, NumpyArray, NumpyArray]


def train(name: str, args: argparse.Namespace, data: Data,
          ) -> tuple[dict[str, float], fn.History]:
    """Train model `name`, print its log and its sample; its figures (params, validation
    bits/char and accuracy, seconds) and its History."""
    x, y, x_val, y_val = data
    net = MODELS[name]()
    init_key, fit_key, sample_key = model_keys(args.seed, name)
    start = time.perf_counter()
    params, state = net.init(init_key, (args.context,))
    result = fn.fit(net, params, state, adam(LEARNING_RATES[name]), token_crossentropy,
                    x, y, key=fit_key, epochs=args.epochs, batch_size=args.batch_size,
                    validation_data=(x_val, y_val), metric=token_accuracy,
                    progress=args.progress)
    seconds = time.perf_counter() - start
    history = result.history
    print(f"{name}:")
    book.print_log(history, args.print_every, validation_each=True)
    text = decode_chars(sample(net, result.params, result.state, x_val[0], args.sample_chars,
                         args.temperature, sample_key))
    print(f"{name} sample ({args.sample_chars} characters, temperature {args.temperature}):")
    print(text)
    print("-" * 40)
    return {"params": float(fn.count_params(result.params)),
            "val_bits": float(to_bits(history.val_loss[-1])),
            "val_acc": history.val_accuracy[-1], "seconds": seconds}, history


def table(rows: dict[str, dict[str, float]], baseline: float, epochs: int) -> str:
    """The closing table: the unigram baseline, then one line per model."""
    lines = [f"after {epochs} epochs:",
             f"{'model':<12} {'params':>8} {'val bits/char':>14} {'val acc':>8} {'seconds':>8}",
             f"{'unigram':<12} {VOCAB - 1:>8,} {baseline:>14.3f} {'':>8} {'':>8}"]
    lines += [f"{name:<12} {int(r['params']):>8,} {r['val_bits']:>14.3f} {r['val_acc']:>8.3f} "
              f"{r['seconds']:>8.1f}" for name, r in rows.items()]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> book.Outcome:
    """Train the chosen models, print their logs, samples and the table; return the figures
    (`unigram_bits`, `<model>_params`, `<model>_val_bits`, `<model>_val_acc`,
    `<model>_seconds`)."""
    args = parse(argv)
    ids = encode_chars(_text(args.chars))
    train_ids, val_ids = split(ids)
    x, y = char_windows(train_ids, args.context)
    x_val, y_val = char_windows(val_ids, args.context)
    baseline = unigram_bits(train_ids, val_ids)
    print(f"Python {'.'.join(map(str, sys.version_info[:3]))} standard library: "
          f"{len(ids):,} characters of {', '.join(STDLIB_MODULES)}; {VOCAB} ids "
          f"({int(np.sum(ids == UNKNOWN))} unknown); {len(train_ids):,} training and "
          f"{len(val_ids):,} validation characters in windows of {args.context}: "
          f"{x.shape[0]} and {x_val.shape[0]}")
    print(f"unigram baseline: {baseline:.3f} bits/char on the validation text")
    print(f"samples continue the first {args.context} validation characters: "
          f"{decode_chars(x_val[0])!r}")
    rows: dict[str, dict[str, float]] = {}
    histories: dict[str, fn.History] = {}
    for name in args.models:
        rows[name], histories[name] = train(name, args, (x, y, x_val, y_val))
    print(table(rows, baseline, args.epochs))
    figures: dict[str, float] = {"unigram_bits": baseline}
    figures.update({f"{name}_{key}": value for name, row in rows.items()
                    for key, value in row.items()})
    return book.Outcome(figures, histories)


if __name__ == "__main__":
    main()
