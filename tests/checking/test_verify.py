"""sd.verify: correct published formulas are equal, classic mistakes are different, with a
counterexample whose values are checked against sympy.diff of the elementary function."""

from __future__ import annotations

import doctest
from pathlib import Path

import numpy as np
import pytest
import sympy
from sympy import Matrix, Symbol

import symdl as sd

from ..conftest import expand_ops


def vector(name: str, n: int) -> Matrix:
    return Matrix(n, 1, lambda i, _: Symbol(f"{name}{i}", real=True))


def matrix(name: str, rows: int, cols: int) -> Matrix:
    return Matrix(rows, cols, lambda i, j: Symbol(f"{name}_{i}{j}", real=True))


def true_value(f, w, point) -> float:
    """∂f/∂w at `point` by sympy.diff of the elementary f (independent of symdl's chain rule)."""
    return float(sympy.diff(expand_ops(f), w).evalf(30, subs=point))


def assert_counterexample_is_real(verdict, f, claimed_entries):
    """The counterexample's values are the true derivative and the claim at its point."""
    c = verdict.counterexample
    assert c is not None
    assert c.true == pytest.approx(true_value(f, c.wrt, c.point), rel=1e-9, abs=1e-12)
    claim = claimed_entries[c.index] if c.index else claimed_entries
    assert c.claimed == pytest.approx(
        float(sympy.sympify(claim).evalf(30, subs=c.point)), rel=1e-9, abs=1e-12
    )
    assert c.claimed != pytest.approx(c.true, rel=1e-6, abs=1e-9)


def assert_equal_at_a_point(f, wrt, claimed, rng):
    """The test's own formula is right: compared with sympy.diff at a random point."""
    wrt = Matrix(wrt)
    claimed = Matrix(claimed)
    point = {s: float(rng.uniform(0.2, 1.5)) for s in sympy.sympify(f).free_symbols}
    for k in range(len(wrt)):
        assert float(claimed[k].evalf(30, subs=point)) == pytest.approx(
            true_value(f, wrt[k], point), rel=1e-9, abs=1e-12
        )


# --------------------------------------------------------------------------- the classic mistakes


def test_forgotten_transpose_in_a_t_x_b(rng):
    """∂(aᵀXb)/∂X = a bᵀ (Matrix Cookbook, eq. 70); b aᵀ is the forgotten transpose."""
    a, b, X = vector("a", 3), vector("b", 3), matrix("X", 3, 3)
    f = (a.T * X * b)[0]
    right, wrong = a * b.T, b * a.T
    assert_equal_at_a_point(f, X, right, rng)
    verdict = sd.verify(f, X, right)
    assert verdict and verdict.method == "symbolic"
    assert sd.verify(f, X, "a*b.T") and sd.verify(f, X, r"a b^\top")
    for claim in (wrong, "b*a.T", r"b\,a^{T}"):
        verdict = sd.verify(f, X, claim)
        assert not verdict
        assert_counterexample_is_real(verdict, f, wrong)
        i, j = verdict.counterexample.index
        assert i != j  # the diagonal of a b^T and b a^T agree


def test_forgotten_transpose_with_a_non_square_matrix_is_a_shape_mismatch():
    a, b, X = vector("a", 2), vector("b", 3), matrix("X", 2, 3)
    f = (a.T * X * b)[0]
    assert sd.verify(f, X, "a*b.T")
    verdict = sd.verify(f, X, "b*a.T")
    assert not verdict and verdict.method == "shape"
    assert "3x2" in verdict.reason and "2x3" in verdict.reason and "transpose" in verdict.reason
    assert "transpose" in verdict.explain()


def test_softmax_cross_entropy_is_p_minus_y_not_y_minus_p(rng):
    """d CE(z, y)/dz = softmax(z) − y for a one-hot y."""
    z = vector("z", 3)
    y = Matrix([0, 0, 1])
    f = -sympy.log(sympy.exp(z[2]) / sum(sympy.exp(zi) for zi in z))  # written out, no op
    p = Matrix([sympy.exp(zi) / sum(sympy.exp(zk) for zk in z) for zi in z])
    assert_equal_at_a_point(f, z, p - y, rng)
    assert sd.verify(f, z, p - y)
    assert sd.verify(sd.cross_entropy(list(z), 2), z, "softmax(z) - Matrix([0, 0, 1])")
    for claim in (y - p, "Matrix([0, 0, 1]) - softmax(z)"):
        verdict = sd.verify(f, z, claim)
        assert not verdict
        assert_counterexample_is_real(verdict, f, y - p)


def test_softmax_cross_entropy_with_a_soft_target_needs_the_sum_of_y():
    """For a target y that need not sum to 1 the gradient is p Σy − y; p − y is wrong."""
    z, y = vector("z", 3), vector("y", 3)
    f = sd.cross_entropy(list(z), list(y))
    assert sd.verify(f, z, "sum(y)*softmax(z) - y")
    verdict = sd.verify(f, z, "softmax(z) - y")
    assert not verdict
    assert_counterexample_is_real(verdict, f, sd.softmax(list(z)) - y)


def test_mse_gradient_needs_the_one_over_n(rng):
    """d/dŷ (1/N) Σ (ŷ_i − y_i)² = (2/N)(ŷ − y); without 1/N it is N times too large."""
    yhat, y = vector("yhat", 3), vector("y", 3)
    f = sd.mse(list(yhat), list(y))
    right, wrong = 2 * (yhat - y) / 3, 2 * (yhat - y)
    assert_equal_at_a_point(f, yhat, right, rng)
    assert sd.verify(f, yhat, "2*(yhat - y)/3")
    assert sd.verify(f, yhat, r"\frac{2}{3}\left(\mathbf{yhat} - \mathbf{y}\right)")
    verdict = sd.verify(f, yhat, "2*(yhat - y)")
    assert not verdict
    assert_counterexample_is_real(verdict, f, wrong)


def batch_norm(n: int = 3):
    """Batch norm over n samples, then a linear read-out with upstream gradient c: L = Σ c_i y_i."""
    x, c = vector("x", n), vector("c", n)
    gamma, beta = sympy.symbols("gamma beta", real=True)
    eps = Symbol("epsilon", positive=True)
    mu = sum(x) / n
    var = sum((xi - mu) ** 2 for xi in x) / n
    s = sympy.sqrt(var + eps)
    xhat = (x - mu * sympy.ones(n, 1)) / s
    loss = sum(ci * (gamma * xh + beta) for ci, xh in zip(c, xhat, strict=True))
    return loss, x, c, gamma, s, xhat


def test_batch_norm_backward_must_not_treat_mean_and_variance_as_constants(rng):
    """Ioffe & Szegedy (2015): dx = γ/(N σ) (N c − Σc − x̂ Σ c x̂); γ c / σ ignores μ(x), σ²(x)."""
    loss, x, c, gamma, s, xhat = batch_norm()
    n = len(x)
    sum_c = sum(c)
    sum_cx = sum(ci * xi for ci, xi in zip(c, xhat, strict=True))
    right = Matrix([gamma / (n * s) * (n * c[i] - sum_c - xhat[i] * sum_cx) for i in range(n)])
    wrong = gamma * c / s
    assert_equal_at_a_point(loss, x, right, rng)
    assert sd.verify(loss, x, right)
    verdict = sd.verify(loss, x, wrong)
    assert not verdict
    assert_counterexample_is_real(verdict, loss, wrong)


def test_sigmoid_derivative_written_as_sigma_one_plus_sigma():
    z = Symbol("z", real=True)
    f = sd.sigmoid(z)
    for right in (
        r"\sigma(z)\,(1-\sigma(z))",
        "sigma(z)*(1 - sigma(z))",
        "exp(-z)/(1 + exp(-z))**2",
    ):
        assert sd.verify(f, z, right), right
    for wrong in (r"\sigma(z)(1+\sigma(z))", "sigma(z)*(1 + sigma(z))"):
        verdict = sd.verify(f, z, wrong)
        assert not verdict
        assert_counterexample_is_real(verdict, f, sd.sigmoid(z) * (1 + sd.sigmoid(z)))


def convolution(n: int = 5, k: int = 3):
    """A 1-D convolution (cross-correlation, as in deep learning) read out by upstream g."""
    x, w, g = vector("x", n), vector("w", k), vector("g", n - k + 1)
    y = [sum(w[m] * x[j + m] for m in range(k)) for j in range(n - k + 1)]
    return sum(gj * yj for gj, yj in zip(g, y, strict=True)), x, w, g


def test_convolution_input_gradient_needs_the_flipped_kernel(rng):
    """dL/dx = the full convolution of g with the kernel flipped: dx_i = Σ_j g_j w_{i−j}."""
    loss, x, w, g = convolution()
    n, k = len(x), len(w)
    right = Matrix(
        [sum(g[j] * w[i - j] for j in range(len(g)) if 0 <= i - j < k) for i in range(n)]
    )
    wrong = Matrix(
        [sum(g[j] * w[k - 1 - (i - j)] for j in range(len(g)) if 0 <= i - j < k) for i in range(n)]
    )
    assert_equal_at_a_point(loss, x, right, rng)
    assert sd.verify(loss, x, right)
    verdict = sd.verify(loss, x, wrong)
    assert not verdict
    assert_counterexample_is_real(verdict, loss, wrong)


# --------------------------------------------------------------------------- behaviour


def test_a_claim_made_at_one_point_only():
    x, y = sympy.symbols("x y", real=True)
    f = x**2 * y
    assert sd.verify(f, x, "3", at={x: 1.5, y: 1.0})  # 2 x y = 3 there
    assert not sd.verify(f, x, "3", at={x: 1.0, y: 1.0})
    assert not sd.verify(f, x, "3")  # not everywhere
    assert sd.verify(f, x, "2*y", at={"x": 1.0})  # the rest drawn at random


def test_piecewise_claims_are_checked_on_both_sides_of_each_kink():
    x, w = sympy.symbols("x w", real=True)
    f = sd.relu(w * x) + sd.l1([w])
    assert sd.verify(f, w, "Heaviside(w*x)*x + sign(w)")
    verdict = sd.verify(f, w, "x + sign(w)")  # right only where w x > 0
    assert not verdict
    c = verdict.counterexample
    assert c.point[w] * c.point[x] < 0
    verdict = sd.verify(f, w, "x*(1 + sign(w*x))/2 + sign(w)")  # equal off the kinks
    assert verdict and verdict.method.startswith("symbolic, on each of 2 pieces")
    verdict = sd.verify(f, w, "x + sign(w) - 10**-30")  # wrong by 1e-30 on one side
    assert not verdict and not verdict.agrees
    assert "on both sides of 2 of 2 branch conditions" in verdict.details


def test_sequence_and_matrix_claims_and_shapes():
    x, y = sympy.symbols("x y", real=True)
    assert sd.verify(x * y, [x, y], [y, x])
    assert sd.verify(x * y, [x, y], "[y, x]")
    assert sd.verify(x * y, [x, y], Matrix([y, x]))
    verdict = sd.verify(x * y, [x, y], "y")
    assert not verdict and verdict.method == "shape"
    verdict = sd.verify(x * y, [x, y], [x, y])
    assert not verdict and verdict.counterexample is not None


def test_verdict_reports_method_counterexample_and_explanation():
    x, y = sympy.symbols("x y", real=True)
    verdict = sd.verify(sympy.sin(x) * y, x, "cos(x)*y")
    assert verdict.method == "symbolic"
    assert "EQUAL" in verdict.explain()
    verdict = sd.verify(sympy.sin(x) * y, x, "-cos(x)*y")
    assert not verdict
    assert verdict.method.startswith("numeric, 64 points, max error")
    text = verdict.explain()
    assert "DIFFERENT" in text and "claim gives" in text
    assert r"\cos" in verdict.to_latex() and r"\neq" in verdict.to_latex()
    assert verdict._repr_latex_().startswith("$$")
    assert "crimson" in verdict._repr_html_()


def test_tiny_float_differences_are_confirmed_in_high_precision():
    """exp(z)/(1 + exp(z))^2 loses digits for large z in float64, yet equals sigma'(z)."""
    z = Symbol("z", real=True)
    verdict = sd.verify(sd.sigmoid(5 * z), z, "5*exp(5*z)/(1 + exp(5*z))**2")
    assert verdict
    almost = sd.verify(sd.sigmoid(z), z, "sigma(z)*(1 - sigma(z)) + 1e-7")
    assert not almost  # a real difference of 1e-7 is reported


def test_claims_may_use_names_defined_with_where():
    """δ = p − y for a linear softmax layer: ∂L/∂W = δ xᵀ, written with δ."""
    x, W = vector("x", 2), matrix("W", 3, 2)
    f = sd.cross_entropy(list(W * x), 1)
    delta = sd.softmax(list(W * x)) - Matrix([0, 1, 0])
    assert sd.verify(f, W, "delta*x.T", where={"delta": delta})
    assert sd.verify(f, W, r"\delta\, x^\top", where={"delta": delta})
    assert not sd.verify(f, W, "x*delta.T", where={"delta": delta})
    with pytest.raises(sd.ParseError, match="unknown name 'delta'"):
        sd.verify(f, W, "delta*x.T")
    with pytest.raises(ValueError, match="not a name"):
        sd.verify(f, W, "x", where={"__class__": delta})


def test_bad_claim_text_raises_parse_error():
    x = Symbol("x", real=True)
    with pytest.raises(sd.ParseError, match="unknown name 'q'"):
        sd.verify(x**2, x, "2*q")
    with pytest.raises(sd.ParseError, match="not finite"):
        sd.verify(x**2, x, "log(0)*x")


def test_odd_claims_are_different_or_refused_by_name():
    x = Symbol("x", real=True)
    assert sd.verify(x**2, x, sympy.Derivative(x**2, x))  # an unevaluated derivative is done
    assert not sd.verify(x**2, x, "sqrt(-1)*x")  # complex: nan, not its real part 0
    assert not sd.verify(x**2, x, sympy.oo)
    with pytest.raises(ValueError, match=r"cannot evaluate \[g\(x\)\] numerically"):
        sd.verify(x**2, x, sympy.Function("g")(x))


def test_two_layer_network_gradient(rng):
    """A two-layer network: the per-layer formula δ₂ = p − y, dW₂ = δ₂ hᵀ is equal."""
    x = vector("x", 3)
    W1, W2 = matrix("V", 3, 3), matrix("W", 2, 3)
    h = (W1 * x).applyfunc(sd.sigmoid)
    z = W2 * h
    f = sd.cross_entropy(list(z), 1)
    p = sd.softmax(list(z))
    delta = p - Matrix([0, 1])
    verdict = sd.verify(f, W2, delta * h.T)
    assert verdict
    wrong = sd.verify(f, W2, h * delta.T)
    assert not wrong and wrong.method == "shape"
    dh = (W2.T * delta).multiply_elementwise(h.applyfunc(lambda e: e * (1 - e)))
    assert sd.verify(f, W1, dh * x.T)
    assert not sd.verify(f, W1, (W2.T * delta) * x.T)  # forgot σ'


def test_matrix_symbols_are_written_out_at_small_sizes():
    n, m = sympy.symbols("n m", integer=True, positive=True)
    a, X, b = (
        sympy.MatrixSymbol("a", n, 1),
        sympy.MatrixSymbol("X", n, m),
        sympy.MatrixSymbol("b", m, 1),
    )
    f = (a.T * X * b)[0, 0]
    assert sd.verify(f, X, "a*b.T")
    assert not sd.verify(f, X, "b*a.T")


def test_docs_examples_run():
    """docs/checking.md: every example in it is a doctest."""
    path = Path(__file__).parents[2] / "docs" / "checking.md"
    failures, tried = doctest.testfile(
        str(path),
        module_relative=False,
        optionflags=doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS,
    )
    assert tried > 0 and failures == 0


@pytest.fixture
def rng():
    return np.random.default_rng(7)


def test_text_inside_a_list_is_parsed_never_run(tmp_path):
    """A claim or gradient given as a list of strings is parsed like one string: SymPy's
    sympify would have run `__import__(...)` as code."""
    x, y = sympy.symbols("x y")
    marker = tmp_path / "ran"
    attack = f"__import__('pathlib').Path({str(marker)!r}).touch()"
    with pytest.raises(sd.ParseError):
        sd.verify(x**2 * y, [x, y], [attack, "x**2"])
    with pytest.raises(sd.ParseError):
        sd.check_grad(x**2 * y, [x, y], grad=[attack, "x**2"])
    assert not marker.exists()
    assert sd.verify(x**2 * y, [x, y], ["2*x*y", r"x^{2}"])
    check = sd.check_grad(x**2 * y, (x, y), grad=("2*x*y", "x"), points=2)
    assert not check and check.worst.wrt == y
