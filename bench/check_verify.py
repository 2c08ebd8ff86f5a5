"""Accuracy of sd.check_grad per method over every declared op, and time of sd.verify and
sd.check_grad on two-layer networks (explicit matrices of symbols), measured in one run.

    .venv/bin/python bench/check_verify.py
"""

from __future__ import annotations

import time

import numpy as np
import sympy
from sympy import Matrix, Symbol

import symdl as sd
from symdl.ops import declared


def accuracy(points_per_op: int = 5) -> None:
    rng = np.random.default_rng(0)
    worst = dict.fromkeys(("central", "richardson", "complex"), (0.0, ""))
    for name, op in sorted(declared().items()):
        expr, ranges = op.example()
        for _ in range(points_per_op):
            point = {s: float(rng.uniform(lo, hi)) for s, (lo, hi) in ranges.items()}
            for method in worst:
                try:
                    check = sd.check_grad(expr, list(ranges), at=point, method=method)
                except ValueError:  # a drawn point at a kink
                    continue
                if check.max_error > worst[method][0]:
                    worst[method] = (check.max_error, name)
    print(f"check_grad, {len(declared())} ops x {points_per_op} points from their example ranges:")
    for method, (error, name) in worst.items():
        print(f"  {method:10} largest error {error:.1e} ({name})")


def network(n_in: int, n_hidden: int, n_out: int):
    x = Matrix(sympy.symbols(f"x0:{n_in}", real=True))
    V = Matrix(n_hidden, n_in, lambda i, j: Symbol(f"V_{i}{j}", real=True))
    W = Matrix(n_out, n_hidden, lambda i, j: Symbol(f"W_{i}{j}", real=True))
    h = (V * x).applyfunc(sd.sigmoid)
    z = W * h
    y = Matrix([int(k == 1) for k in range(n_out)])
    return sd.cross_entropy(list(z), 1), x, V, W, h, z, y


def timing() -> None:
    print("seconds per call on a two-layer sigmoid network with softmax cross-entropy:")
    for sizes in [(3, 3, 2), (4, 5, 3), (6, 8, 4)]:
        f, x, V, W, h, z, y = network(*sizes)
        delta = sd.softmax(list(z)) - y
        dh = (W.T * delta).multiply_elementwise(h.applyfunc(lambda e: e * (1 - e)))
        a = V * x
        slope = a.applyfunc(lambda e: sympy.exp(-e) / (1 + sympy.exp(-e)) ** 2)
        dh_exp = (W.T * delta).multiply_elementwise(slope)  # equal, but not in the same form
        jobs = {
            "verify dV, right": lambda f=f, V=V, dh=dh, x=x: sd.verify(f, V, dh * x.T),
            "verify dV, exp form": lambda f=f, V=V, d=dh_exp, x=x: sd.verify(f, V, d * x.T),
            "verify dV, no sigma'": lambda f=f, V=V, W=W, d=delta, x=x: sd.verify(
                f, V, (W.T * d) * x.T
            ),
            "check_grad all": lambda f=f, V=V, W=W: sd.check_grad(f, [*V, *W]),
        }
        for name, job in jobs.items():
            start = time.perf_counter()
            result = job()
            elapsed = time.perf_counter() - start
            method = result.method
            print(f"  {str(sizes):10} {name:22} {bool(result)!s:6} {elapsed:5.2f}  ({method})")


if __name__ == "__main__":
    accuracy()
    timing()
