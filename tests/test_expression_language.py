"""The whole expression language: SymPy constructs people write (traces at symbolic sizes, sizes
used as numbers, matrix entries, Kronecker products, negative powers, Piecewise, Heaviside,
Min/Max, ...) derive, and every derivation compiles, with gradients checked against central
finite differences of the compiled value."""

from __future__ import annotations

import numpy as np
import pytest
import sympy
from sympy import (
    MatrixSymbol,
    OneMatrix,
    Trace,
)

import symdl as sd
from symdl.compile.codegen import ShapeError

n, m, N = sympy.symbols("n m N", integer=True, positive=True)
X, A = MatrixSymbol("X", n, n), MatrixSymbol("A", n, n)
SIZES = {n: 3, m: 2, N: 4}


def finite_difference_error(f, wrt, sizes=SIZES, seed=0, spd=()) -> float:
    """The worst relative difference between the compiled gradient of `f` and central finite
    differences of the compiled value, at random arrays of the given sizes (matrices in `spd`
    made symmetric positive definite)."""
    compiled = sd.derive(f, wrt).compile()
    rng = np.random.default_rng(seed)
    values = {}
    for a in compiled.args:
        if isinstance(a, MatrixSymbol):
            shape = tuple(int(sympy.sympify(d).xreplace(sizes)) for d in a.shape)
            v = rng.normal(size=shape)
            values[a.name] = v @ v.T + shape[0] * np.eye(shape[0]) if a in spd else v
        else:
            values[a.name] = rng.uniform(0.5, 1.5)
    _, grads = compiled(values)
    several = isinstance(wrt, list | tuple)
    worst = 0.0
    for w, g in zip(wrt if several else [wrt], grads if several else [grads], strict=True):
        point = np.asarray(values[w.name], dtype=float)
        fd = np.zeros_like(point)
        h = 1e-6
        for i in np.ndindex(point.shape):
            shifted = []
            for sign in (1, -1):
                moved = dict(values)
                moved[w.name] = point.copy()
                moved[w.name][i] += sign * h
                shifted.append(compiled(moved)[0])
            fd[i] = (shifted[0] - shifted[1]) / (2 * h)
        g = np.asarray(g, dtype=float).reshape(fd.shape)
        worst = max(worst, float(np.max(np.abs(fd - g)) / (1 + np.max(np.abs(fd)))))
    return worst


# symbolic sizes ----------------------------------------------------------------------------


def test_trace_at_the_root_compiles_at_symbolic_size():
    assert finite_difference_error(Trace(A * X), X) < 1e-6


def test_a_size_used_as_a_number_is_read_from_the_arrays():
    Z = MatrixSymbol("Z", 2, N)
    mean = OneMatrix(1, 2) * Z * OneMatrix(N, 1) / N
    compiled = sd.derive(mean, Z).compile()
    assert [str(a) for a in compiled.args] == ["Z"]  # N is not an input: Z's shape says it
    Zv = np.arange(8.0).reshape(2, 4)
    value, grad = compiled(Zv)
    assert value == pytest.approx(Zv.sum() / 4)
    np.testing.assert_allclose(grad, np.full((2, 4), 0.25))
    assert compiled(Z=Zv, N=4)[0] == pytest.approx(Zv.sum() / 4)  # a size by name is checked
    with pytest.raises(ShapeError, match=r"N = 5 was given.*Z.*N = 4"):
        compiled(Z=Zv, N=5)


def test_inconsistent_sizes_are_refused_naming_both_arrays():
    compiled = sd.derive(Trace(A * X), X).compile()
    with pytest.raises(ShapeError, match=r"X has shape \(n, n\).*n = 3 \(from A"):
        compiled(A=np.ones((3, 3)), X=np.ones((4, 4)))


def test_one_by_one_matrices_are_scalars():
    x, y = MatrixSymbol("x", n, 1), MatrixSymbol("y", n, 1)
    c = sympy.Symbol("c")
    for f in [x.T * A * x, (x.T * x) * (y.T * y), c * (x.T * y)]:
        assert finite_difference_error(f, x) < 1e-6
