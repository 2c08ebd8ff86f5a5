"""How derivation cost grows with network size: symdl's reverse mode against naive sympy.diff.

For scalar tanh MLPs (2 inputs, `depth` weight layers of `width` units, one linear output, MSE
loss) it prints the parameter count, symdl's time for all closed-form gradients, the time of one
`sympy.diff` per parameter (skipped past a budget), their ratio, and the op count of the CSE'd
value-and-gradient program over the forward program's.

    python bench/derive_scaling.py [--naive-budget 120] [--sizes 8x4,16x4,32x4,64x4] [--clock cpu|wall]

Times are the process's CPU time by default (a machine shared with other jobs disturbs it far
less than the wall clock), and the naive budget is CPU seconds too. Between consecutive sizes
it prints the growth of symdl's time over the growth of the parameter count (issue 12's target:
at most 1.3 from (32, 4) to (64, 4)).
"""

from __future__ import annotations

import argparse
import signal
import time

import sympy
from sympy.core.cache import clear_cache

import symdl as sd


def mlp_loss(width: int, depth: int, n_inputs: int = 2):
    """MSE loss of a tanh MLP on one example, and its parameters (weights, then biases).

    Each pre-activation is built as one `Add` of its terms: SymPy's `Matrix` product of
    symbolic entries sums term by term (each partial sum re-flattened and re-hashed), which is
    quadratic in the width and could not build the (32, 4) network in ten minutes."""
    x = list(sympy.symbols(f"x1:{n_inputs + 1}"))
    y = sympy.Symbol("y")
    params, layer = [], x
    sizes = [width] * (depth - 1) + [1]
    for k, size in enumerate(sizes, start=1):
        W = [[sympy.Symbol(f"w^{k}_{i}_{j}") for j in range(len(layer))] for i in range(size)]
        b = [sympy.Symbol(f"b^{k}_{i}") for i in range(size)]
        params += [w for row in W for w in row] + b
        z = [
            sympy.Add(*(sympy.Mul(w, a) for w, a in zip(W[i], layer, strict=True)), b[i])
            for i in range(size)
        ]
        layer = z if k == len(sizes) else [sympy.tanh(zi) for zi in z]
    return sd.mse(layer[0], y), params


class _OutOfTime(Exception):
    pass


def _out_of_time(signum, frame):
    raise _OutOfTime


CLOCK = [time.process_time]  # --clock: the process's CPU time, or time.perf_counter
TIMER = [signal.ITIMER_PROF, signal.SIGPROF]  # the naive budget, on the same clock


def measure(width: int, depth: int, naive_budget: float) -> dict:
    loss, params = mlp_loss(width, depth)
    clear_cache()  # neither side reuses what the other (or a smaller size) computed
    start = CLOCK[0]()
    derivation = sd.derive(loss, params)
    symdl_grads = derivation.closed_form()
    symdl_time = CLOCK[0]() - start
    compiled = derivation.compile()
    row = {
        "width": width,
        "depth": depth,
        "params": len(params),
        "symdl_s": symdl_time,
        "program_ratio": compiled.op_count / compiled.forward_op_count,
        "naive_s": None,
    }
    # Naive reference: one sympy.diff of the whole expression per parameter (SymPy's cache
    # helping across parameters, as it would a user), stopped once it passes the budget.
    expanded = loss.replace(lambda e: isinstance(e, sd.mse), lambda e: e.definition())
    clear_cache()
    naive: list = []
    start = CLOCK[0]()
    signal.signal(TIMER[1], _out_of_time)
    signal.setitimer(TIMER[0], naive_budget)  # one derivative alone may take hours
    try:
        for p in params:
            naive.append(sympy.diff(expanded, p))
        row["naive_s"] = CLOCK[0]() - start
    except _OutOfTime:
        row["naive_partial_s"] = CLOCK[0]() - start
        row["naive_done"] = len(naive)
    finally:
        signal.setitimer(TIMER[0], 0)
    # the two agree (at a random point, for the first and last parameters differentiated)
    point = {
        s: sympy.Float(0.1 + 0.8 * ((i * 7919) % 101) / 101)
        for i, s in enumerate(sorted(expanded.free_symbols, key=str))
    }
    for k in sorted({0, len(naive) - 1}) if naive else ():
        ours = float(symdl_grads[k].xreplace(point))
        theirs = float(naive[k].xreplace(point))
        assert abs(ours - theirs) <= 1e-9 * max(1.0, abs(theirs)), (params[k], ours, theirs)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--naive-budget", type=float, default=120.0, help="seconds")
    parser.add_argument("--sizes", default="4x2,8x3,8x4,16x4,32x4", help="WIDTHxDEPTH,...")
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu")
    args = parser.parse_args()
    if args.clock == "wall":
        CLOCK[0], TIMER[:] = time.perf_counter, [signal.ITIMER_REAL, signal.SIGALRM]
    print(f"clock: {args.clock}")
    print(
        f"{'(width, depth)':>14} {'params':>7} {'symdl s':>9} {'naive s':>10} {'ratio':>8} "
        f"{'program ratio':>14} {'growth':>8}"
    )
    previous = None
    for size in args.sizes.split(","):
        width, depth = map(int, size.split("x"))
        row = measure(width, depth, args.naive_budget)
        if row["naive_s"] is None:  # a lower bound: what the naive way spent before it stopped
            naive = (
                f"> {row['naive_partial_s']:.0f} (stopped after {row['naive_done']} of "
                f"{row['params']} derivatives)"
            )
            ratio = f"> {row['naive_partial_s'] / row['symdl_s']:.0f}x"
        else:
            naive = f"{row['naive_s']:.2f}"
            ratio = f"{row['naive_s'] / row['symdl_s']:.0f}x"
        # (time growth) / (parameter growth) from the previous size: 1 is linear
        growth = (
            ""
            if previous is None
            else f"{(row['symdl_s'] / previous['symdl_s']) / (row['params'] / previous['params']):.2f}"
        )
        previous = row
        print(
            f"{f'({width}, {depth})':>14} {row['params']:>7} {row['symdl_s']:>9.3f} "
            f"{naive:>10} {ratio:>8} {row['program_ratio']:>14.2f} {growth:>8}"
        )


if __name__ == "__main__":
    main()
