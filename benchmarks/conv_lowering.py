"""Which lowering should a convolution or a pooling use? Forward + backward per step, in a
plain jitted loop and inside `lax.scan` (how `fit` runs its steps), for each lowering of
`funcnn.nn.conv_lowering` (lax.conv vs shifted slices + one dot_general) and of
`funcnn.nn.pool` (lax.reduce_window vs shifted slices).

Each step takes the gradient of `sum(ct * f(x, w)**2) / 2` with respect to what `--grad`
names (`w`, `x` or both) and moves `x` and `w` by it: the loss is not linear in `x` or `w`,
so no gradient is loop-invariant and nothing can be hoisted out of the scan.

    python benchmarks/conv_lowering.py [--quick] [--steps 20] [--repeats 3] [--ops ...]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

from funcnn.nn.conv_lowering import conv_lax, conv_slices, conv_transpose, same_padding
from funcnn.nn.pool import pool

Fn = Callable[[jax.Array, jax.Array], jax.Array]

CONV_CASES = (((64, 28, 28, 1), 16), ((64, 14, 14, 16), 32))
TRANSPOSE_CASE = ((64, 7, 7, 32), 16)  # 3x3, stride 2, SAME: -> 64x14x14x16
POOL_CASES = ((64, 28, 28, 16), (64, 14, 14, 32))


def conv_fn(lowering: Callable[..., jax.Array], shape: Sequence[int]) -> Fn:
    pads = tuple(same_padding(n, 3, 1) for n in shape[1:3])
    return lambda x, w: lowering(x, w, (1, 1), pads, (1, 1), 1)


def transpose_fn(lowering: str) -> Fn:
    return lambda x, w: conv_transpose(x, w, (2, 2), "SAME", lowering)  # type: ignore[arg-type]


def pool_fn(kind: str, lowering: str) -> Fn:
    # w scales the input so that the step has a weight gradient too
    return lambda x, w: pool(x * w, kind, (2, 2), (2, 2), ((0, 0), (0, 0)), lowering)


def step(f: Fn, grad: str, x: jax.Array, w: jax.Array, ct: jax.Array,
         ) -> tuple[jax.Array, jax.Array]:
    argnums = {"w": (1,), "x": (0,), "both": (0, 1)}[grad]
    def loss(a: jax.Array, b: jax.Array) -> jax.Array:
        return 0.5 * jnp.sum(ct * jnp.square(f(a, b)))

    grads = jax.grad(loss, argnums=argnums)(x, w)
    gx = grads[0] if 0 in argnums else jnp.zeros_like(x)
    gw = grads[-1] if 1 in argnums else jnp.zeros_like(w)
    return x - 1e-3 * gx, w - 1e-3 * gw


def time_ms(call: Callable[[], Any], repeats: int) -> float:
    """Best of `repeats` wall times of `call()` (after one warm-up), in ms."""
    jax.block_until_ready(call())
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(call())
        best = min(best, time.perf_counter() - start)
    return 1e3 * best


def per_step_ms(f: Fn, grad: str, x: jax.Array, w: jax.Array, steps: int, repeats: int,
                ) -> tuple[float, float]:
    """(plain jit loop, inside lax.scan) milliseconds per step."""
    ct = jnp.ones_like(f(x, w))
    jitted = jax.jit(partial(step, f, grad))

    def loop() -> tuple[jax.Array, jax.Array]:
        a, b = x, w
        for _ in range(steps):
            a, b = jitted(a, b, ct)
        return a, b

    @jax.jit
    def scanned(a: jax.Array, b: jax.Array) -> tuple[jax.Array, jax.Array]:
        def body(carry: tuple[jax.Array, jax.Array], _: None,
                 ) -> tuple[tuple[jax.Array, jax.Array], None]:
            return step(f, grad, *carry, ct), None
        out, _ = lax.scan(body, (a, b), None, length=steps)
        return out

    plain = time_ms(loop, repeats) / steps
    in_scan = time_ms(lambda: scanned(x, w), repeats) / steps
    return plain, in_scan


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="batch 8 instead of 64")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--grad", default="w,x,both", help="comma-separated: w, x, both")
    parser.add_argument("--ops", default="conv,transpose,pool",
                        help="comma-separated: conv, transpose, pool")
    args = parser.parse_args(argv)
    grads, ops = args.grad.split(","), args.ops.split(",")
    key = jax.random.key(0)
    print(f"backend: {jax.default_backend()}, {args.steps} steps, best of {args.repeats}")
    print("| op | grad | lowering | ms/step jit | ms/step scan |")
    print("|---|---|---|---|---|")
    for shape, cout in CONV_CASES if "conv" in ops else ():
        shape = (8, *shape[1:]) if args.quick else shape
        x = jax.random.normal(key, shape)
        w = 0.1 * jax.random.normal(key, (3, 3, shape[-1], cout))
        name = f"conv3x3 {'x'.join(map(str, shape))}->{cout}"
        for grad in grads:
            for label, lowering in (("lax.conv", conv_lax), ("slices", conv_slices)):
                plain, in_scan = per_step_ms(conv_fn(lowering, shape), grad, x, w, args.steps,
                                             args.repeats)
                print(f"| {name} | {grad} | {label} | {plain:.2f} | {in_scan:.2f} |",
                      flush=True)
    shape, cout = TRANSPOSE_CASE
    shape = (8, *shape[1:]) if args.quick else shape
    x = jax.random.normal(key, shape)
    w = 0.1 * jax.random.normal(key, (3, 3, shape[-1], cout))
    for label in ("lax", "slices") if "transpose" in ops else ():
        plain, in_scan = per_step_ms(transpose_fn(label), "both", x, w, args.steps,
                                     args.repeats)
        print(f"| conv_transpose3x3/2 {'x'.join(map(str, shape))}->{cout} | both | {label} "
              f"| {plain:.2f} | {in_scan:.2f} |", flush=True)
    for shape in POOL_CASES if "pool" in ops else ():
        shape = (8, *shape[1:]) if args.quick else shape
        x = jax.random.normal(key, shape)
        w = jnp.ones((shape[-1],))
        for kind in ("max", "avg"):
            name = f"{kind}pool2x2 {'x'.join(map(str, shape))}"
            for label in ("reduce_window", "slices"):
                plain, in_scan = per_step_ms(pool_fn(kind, label), "x", x, w, args.steps,
                                             args.repeats)
                print(f"| {name} | x | {label} | {plain:.2f} | {in_scan:.2f} |", flush=True)


if __name__ == "__main__":
    main()
