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


# constructs people write ---------------------------------------------------------------------


def test_entries_of_a_matrix_mix_with_scalar_functions():
    z = MatrixSymbol("z", 3, 1)
    f = sympy.log(sympy.exp(z[0, 0]) + sympy.exp(z[1, 0]) + sympy.exp(z[2, 0]))
    compiled = sd.derive(f, z).compile()
    zv = np.array([[0.3], [-1.0], [2.0]])
    value, grad = compiled(zv)
    softmax = np.exp(zv) / np.exp(zv).sum()
    assert value == pytest.approx(np.log(np.exp(zv).sum()))
    np.testing.assert_allclose(grad, softmax)
    assert finite_difference_error(f, z) < 1e-6


def test_an_entry_of_a_product_stays_in_matrix_form():
    x = MatrixSymbol("x", n, 1)
    f = sympy.exp((x.T * A * x)[0, 0])  # SymPy makes an index sum of it
    assert not sd.grad(f, x).has(sympy.Sum)
    assert finite_difference_error(f, x) < 1e-6
    assert finite_difference_error(sympy.sqrt((x.T * x)[0, 0]), x) < 1e-6


def test_kronecker_products():
    B = MatrixSymbol("B", m, m)
    traced = Trace(sympy.KroneckerProduct(X, X))  # = tr(X)^2
    Xv = np.random.default_rng(1).normal(size=(3, 3))
    _, grad = sd.derive(traced, X).compile()(Xv)
    np.testing.assert_allclose(grad, 2 * np.trace(Xv) * np.eye(3), atol=1e-12)
    K = sympy.KroneckerProduct(X, B)
    assert finite_difference_error(Trace(K.T * K), [X, B]) < 1e-6
    assert finite_difference_error(traced, X) < 1e-6


def test_inverse_and_every_integer_matrix_power():
    for f in [Trace(X.I * X.I), Trace(A * X**-3), Trace(A * X**2), Trace(A * X.I)]:
        assert finite_difference_error(f, X, spd=[X]) < 1e-5, f


def test_determinant_and_diagonals():
    v = MatrixSymbol("v", n, 1)
    assert finite_difference_error(sympy.log(sympy.Determinant(X)), X, spd=[X]) < 1e-5
    assert finite_difference_error(sympy.Determinant(A * X), X) < 1e-5
    assert finite_difference_error(Trace(sympy.DiagMatrix(v) * A * X), [v, X]) < 1e-6
    assert finite_difference_error(Trace(v.T * sympy.DiagonalOf(A * X)), [v, X]) < 1e-6


def test_hadamard_powers_with_any_exponent():
    p = sympy.Symbol("p")
    positive = sd.elementwise(sympy.exp, X)
    for f in [
        Trace(A.T * sympy.HadamardPower(positive, p)),
        Trace(A.T * sympy.HadamardPower(positive, -1)),
        Trace(A.T * sympy.HadamardPower(positive, sympy.Rational(1, 2))),
    ]:
        assert finite_difference_error(f, [X] + ([p] if f.has(p) else [])) < 1e-6, f


def test_a_scalar_function_of_a_matrix_is_refused_with_the_fix():
    W = MatrixSymbol("W", n, n)
    with pytest.raises(sd.UnsupportedExpression, match=r"sd\.elementwise\(sympy\.tanh, W\*X\)"):
        sd.derive(sympy.tanh(W * X), W)
    Z = sd.elementwise(sympy.tanh, W * X)
    assert finite_difference_error(Trace(A.T * Z), W) < 1e-6


def test_a_matrix_operation_without_a_rule_is_refused_when_the_program_is_built():
    K = sympy.BlockMatrix([[X, A]])
    with pytest.raises(sd.UnsupportedExpression, match="BlockMatrix"):
        sd.build_program([Trace(K * K.T)])


x_ = sympy.Symbol("x")
SCALAR_CASES = [
    sympy.Piecewise((x_**2, x_ > 1), (x_, True)),
    sympy.Piecewise((sympy.exp(x_) - 1, x_ < 0), (x_, True)) * sympy.tanh(x_),  # ELU-like
    sympy.Heaviside(x_ - 0.3) * x_**2,
    sympy.Heaviside(x_) + sympy.DiracDelta(x_ - 5) * x_,
    sympy.Min(x_, 1) + sympy.Max(x_, x_**2),
    sympy.Abs(x_) * sympy.sin(x_) + sympy.sign(x_) * x_**3,
    sympy.Max(sympy.Abs(x_ - 1), sympy.Min(x_, 0.5)) ** 2,
]


@pytest.mark.parametrize("f", SCALAR_CASES, ids=str)
def test_scalar_functions_with_kinks_derive_compile_and_check(f):
    d = sd.derive(f, x_)
    compiled = d.compile()
    real = sympy.Symbol("x", real=True)  # as symdl takes every symbol
    exact = sympy.diff(f.xreplace({x_: real}), real).replace(sympy.DiracDelta, lambda *a: 0)
    reference = sympy.lambdify(real, exact)
    value_of = sympy.lambdify(x_, f.replace(sympy.DiracDelta, lambda *a: 0))
    for point in [-1.7, -0.4, 0.45, 0.8, 1.3, 2.2]:
        value, grad = compiled(point)
        assert value == pytest.approx(float(value_of(point)))
        assert grad == pytest.approx(float(reference(point)))
    assert sd.check_grad(f, x_, at={x_: 0.8})


# one computation per value ---------------------------------------------------------------------


def test_a_transposed_copy_of_the_network_is_the_same_steps():
    h = sympy.Symbol("h", integer=True, positive=True)
    Xd = MatrixSymbol("X", n, N)
    W1, W2 = MatrixSymbol("W_1", h, n), MatrixSymbol("W_2", n, h)
    R = sd.elementwise(sympy.tanh, W2 * sd.elementwise(sympy.tanh, W1 * Xd)) - Xd
    derivation = sd.derive(Trace(R.T * R), [W1, W2])  # SymPy pushes Rᵀ inside tanh
    functions = [s for s in derivation.forward if isinstance(s.rhs, sd.elementwise)]
    assert len(functions) == 2, derivation  # tanh(W_1 X) and tanh(W_2 v), once each
    assert finite_difference_error(Trace(R.T * R), [W1, W2], {**SIZES, h: 2}) < 1e-6


def test_a_function_inside_an_elementwise_derivative_is_computed_once():
    W, Xd, Cd = MatrixSymbol("W", n, n), MatrixSymbol("X", n, N), MatrixSymbol("C", n, N)
    f = Trace(Cd.T * sd.elementwise(lambda u: u * sympy.tanh(sd.softplus(u)), W * Xd))  # mish
    source = sd.derive(f, W).compile().source
    assert source.count("tanh") == 1, source  # one array for the forward step and mish'(Z)
    assert finite_difference_error(f, W) < 1e-6
    twice = sd.elementwise(lambda u: sympy.sin(sympy.exp(u)) * sympy.cos(sympy.exp(u)), W * Xd)
    compiled = sd.derive(Trace(Cd.T * twice), W).compile()
    for function in ("exp", "sin", "cos"):  # each once, for the forward step and its derivative
        assert compiled.source.count(f"numpy.{function}(") == 1, compiled.source
    assert finite_difference_error(Trace(Cd.T * twice), W) < 1e-6


def test_sums_over_an_index_of_functions_of_entries_have_a_matrix_form():
    """Σ_i f((W x)_i) and Σ_i g(x_i), written with the user's own index at symbolic sizes,
    derive in matrix form and agree with finite differences at explicit ones."""
    n_, m_ = sympy.symbols("n m", integer=True, positive=True)
    i, k = sympy.symbols("i k", integer=True)
    Wn, xn = sympy.MatrixSymbol("W", m_, n_), sympy.MatrixSymbol("x", n_, 1)
    f = sympy.Sum(sympy.Sum(Wn[i, k] * xn[k, 0], (k, 0, n_ - 1)) ** 2, (i, 0, m_ - 1))
    assert sd.grad(f, Wn) == 2 * Wn * xn * xn.T
    softplus_sum = sympy.Sum(sympy.log(1 + sympy.exp(xn[i, 0])), (i, 0, n_ - 1))
    assert isinstance(sd.grad(softplus_sum, xn), sympy.MatrixExpr)
    W3, x3 = sympy.MatrixSymbol("W", 3, 3), sympy.MatrixSymbol("x", 3, 1)
    tanh_sum = sympy.Sum(sympy.tanh(sympy.Sum(W3[i, k] * x3[k, 0], (k, 0, 2))), (i, 0, 2))
    assert sd.check_grad(tanh_sum, [W3, x3])


def test_slices_blocks_dot_products_and_adjoints_derive():
    n_ = sympy.Symbol("n", integer=True, positive=True)
    X4, A4 = sympy.MatrixSymbol("X", 4, 4), sympy.MatrixSymbol("A", 4, 4)
    x4, y4 = sympy.MatrixSymbol("x", 4, 1), sympy.MatrixSymbol("y", 4, 1)
    for f, wrt in (
        (sympy.Trace(X4[0:2, 0:2] * A4[0:2, 0:2]), X4),
        ((X4[1, :] * x4)[0, 0] ** 2, X4),
        (
            sympy.Trace(
                sympy.BlockMatrix([[X4, A4], [A4, X4]]) * sympy.BlockMatrix([[X4, X4], [A4, X4]]).T
            ),
            X4,
        ),
        (sympy.DotProduct(x4, y4) ** 2, x4),
        (sympy.Trace(X4.adjoint() * A4 * X4), X4),
        (sympy.Trace(X4.conjugate() * A4), X4),
    ):
        assert sd.check_grad(f, wrt), f
    Xn, An = sympy.MatrixSymbol("X", n_, n_), sympy.MatrixSymbol("A", n_, n_)
    compiled = sd.derive(sympy.Trace(Xn[0:2, :] * An[:, 0:2]), Xn).compile()
    Xv, Av = np.random.default_rng(0).normal(size=(2, 4, 4))
    _, gradient = compiled({"X": Xv, "A": Av})
    assert np.allclose(gradient, np.r_[Av[:, 0:2].T, np.zeros((2, 4))])
    block = sympy.BlockMatrix([[Xn, An], [An, Xn]])
    with pytest.raises(TypeError, match="BlockMatrix of symbolic size"):
        sd.grad(sympy.Trace(block * block), Xn)
