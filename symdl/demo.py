"""The main job, `symdl demo` (and `make demo`): derive a small network's gradient step by
step, check it numerically, and write the derivation as LaTeX and Markdown."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import sympy

from symdl.calculus import derive
from symdl.files import write_atomic
from symdl.latex import standalone_document
from symdl.ops import binary_cross_entropy_with_logits, sigmoid


def small_network():
    """A 2-2-1 network with sigmoid hidden units and a logistic loss on one example."""
    x = sympy.symbols("x_1 x_2", real=True)
    y = sympy.Symbol("y", real=True)
    W1 = sympy.Matrix(2, 2, lambda i, j: sympy.Symbol(f"w^{{(1)}}_{{{i + 1}{j + 1}}}", real=True))
    b1 = sympy.Matrix(2, 1, lambda i, j: sympy.Symbol(f"b^{{(1)}}_{{{i + 1}}}", real=True))
    w2 = sympy.Matrix(1, 2, lambda i, j: sympy.Symbol(f"w^{{(2)}}_{{{j + 1}}}", real=True))
    b2 = sympy.Symbol("b^{(2)}", real=True)
    z1 = W1 * sympy.Matrix(x) + b1
    a1 = z1.applyfunc(sigmoid)
    z2 = (w2 * a1)[0] + b2
    loss = binary_cross_entropy_with_logits(z2, y)
    names = {z1[i]: f"z^{{(1)}}_{{{i + 1}}}" for i in range(2)}
    names |= {a1[i]: f"a^{{(1)}}_{{{i + 1}}}" for i in range(2)}
    names[z2] = "z^{(2)}"
    params = [*W1, *b1, *w2, b2]
    return loss, params, names


def central_differences(f, point: np.ndarray, h: float = 1e-6) -> np.ndarray:
    """Central differences of scalar `f` at `point`, one coordinate at a time."""
    grad = np.empty_like(point)
    for i in range(point.size):
        step = np.zeros_like(point)
        step[i] = h
        grad[i] = (f(point + step) - f(point - step)) / (2 * h)
    return grad


def run(out: str | Path = "symdl-demo", seed: int = 0) -> list[Path]:
    """Run the demo, print what it does, and return the files it wrote."""
    loss, params, names = small_network()
    derivation = derive(loss, params, names=names)
    print("Forward and backward steps of a 2-2-1 sigmoid network with a logistic loss:\n")
    print(derivation)

    compiled = derivation.compile()
    rng = np.random.default_rng(seed)
    inputs = {str(s): rng.normal() for s in compiled.args}
    inputs["y"] = 1.0
    _, symbolic = compiled(**inputs)
    names_of_params = [str(p) for p in params]

    def loss_at(theta):
        return compiled(**(inputs | dict(zip(names_of_params, theta, strict=True))))[0]

    theta = np.array([inputs[n] for n in names_of_params])
    numeric = central_differences(loss_at, theta)
    error = np.max(np.abs(np.array(symbolic) - numeric) / np.maximum(1.0, np.abs(numeric)))
    print(
        f"\nGradient check at a random point: max relative error {error:.1e} "
        f"over {len(params)} parameters (central differences, h = 1e-6)"
    )
    if error > 1e-6:
        raise SystemExit("the symbolic gradient disagrees with central differences")

    out = Path(out)
    written = [
        write_atomic(out / "derivation.tex", standalone_document(derivation.to_latex())),
        write_atomic(
            out / "derivation.md", "# Backpropagation, 2-2-1 network\n\n" + derivation.to_markdown()
        ),
    ]
    print("\nWrote:")
    for path in written:
        print(f"  {path.resolve()}")
    return written
