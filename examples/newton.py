"""Newton's method and Gauss-Newton with symdl's Hessians against gradient descent on logistic
regression: the gradient norm at each iteration (newton.png) and the iterations to convergence.

    python examples/newton.py [--out DIR] [--seed 0]

The per-example loss is symdl's binary cross-entropy on the logit z = w . x + b; `sd.grad` and
`sd.hessian` give its gradient and Hessian in (w, b). Gauss-Newton uses J^T H_z J with
H_z = d^2 loss / dz^2 from `sd.hessian` in z alone and J = (x, 1): for the logistic link it
equals the Hessian (printed as a check). Exits with 1 unless Newton converges in far fewer
iterations than gradient descent. SYMDL_EXAMPLE_SMALL=1 uses fewer points.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
from pathlib import Path

import numpy as np
import sympy
from matplotlib.figure import Figure

import symdl as sd

SMALL = os.environ.get("SYMDL_EXAMPLE_SMALL") == "1"


def problem(seed: int, n: int):
    """Data and NumPy functions for the mean loss's gradient, Hessian and Gauss-Newton matrix."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 2))
    y = (X @ np.array([1.5, -2.0]) + 0.3 + 0.8 * rng.normal(size=n) > 0).astype(float)
    w = sympy.symbols("w0:3", real=True)
    x = sympy.symbols("x0:2", real=True)
    t, z = sympy.symbols("t z", real=True)
    logit = w[0] * x[0] + w[1] * x[1] + w[2]
    loss = sd.binary_cross_entropy_with_logits([logit], [t])
    g = sympy.lambdify([w, x, t], sd.grad(loss, list(w)))
    H = sympy.lambdify([w, x, t], sd.hessian(loss, list(w)))
    curvature = sd.hessian(sd.binary_cross_entropy_with_logits([z], [t]), [z])[0, 0]
    h_z = sympy.lambdify([z, t], curvature)
    Xb = np.hstack([X, np.ones((n, 1))])

    def mean(f, v):
        return np.mean(
            [np.array(f(v, xi, yi), dtype=float) for xi, yi in zip(X, y, strict=True)], 0
        )

    def gradient(v):
        return mean(g, v).ravel()

    def hessian(v):
        return mean(H, v)

    def gauss_newton(v):
        weights = np.array([float(h_z(zi, yi)) for zi, yi in zip(Xb @ v, y, strict=True)])
        return (Xb * weights[:, None]).T @ Xb / n

    return gradient, hessian, gauss_newton


def run(step, gradient, limit: int, tol: float = 1e-8) -> list[float]:
    """Gradient norms from v = 0 until below `tol` (or `limit` steps)."""
    v, norms = np.zeros(3), []
    for _ in range(limit):
        norms.append(float(np.linalg.norm(gradient(v))))
        if norms[-1] < tol:
            break
        v = step(v)
    return norms


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("."), help="folder for the PNG")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    gradient, hessian, gauss_newton = problem(args.seed, 60 if SMALL else 400)
    at = np.array([0.5, -0.5, 0.1])
    print(f"Gauss-Newton = Hessian at a test point: {np.allclose(gauss_newton(at), hessian(at))}")
    limit = 1000 if SMALL else 3000
    norms = {
        "Newton": run(lambda v: v - np.linalg.solve(hessian(v), gradient(v)), gradient, 50),
        "Gauss-Newton": run(
            lambda v: v - np.linalg.solve(gauss_newton(v), gradient(v)), gradient, 50
        ),
        "gradient descent (lr 1)": run(lambda v: v - gradient(v), gradient, limit),
    }
    figure = Figure(figsize=(6, 4), layout="constrained")
    axes = figure.subplots()
    for name, curve in norms.items():
        axes.semilogy(range(len(curve)), curve, ".-" if len(curve) < 50 else "-", label=name)
        if curve[-1] < 1e-8:
            print(f"{name}: {len(curve) - 1} iterations to a gradient norm below 1e-8")
        else:
            print(f"{name}: gradient norm {curve[-1]:.1e} after {len(curve)} iterations")
    axes.set(
        xlabel="iteration", ylabel="gradient norm", xscale="symlog", title="logistic regression"
    )
    axes.legend()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    path = args.out / "newton.png"
    path.write_bytes(buffer.getvalue())
    print(f"convergence plot saved to {path}")
    newton, descent = len(norms["Newton"]), len(norms["gradient descent (lr 1)"])
    return 0 if newton <= 12 and descent > 10 * newton else 1


if __name__ == "__main__":
    sys.exit(main())
