"""Stable gradients where the value is stable: BCE on probabilities clamps its slope at p = 0
or 1; BCE of sigmoid(z) and log(sigmoid(z)) take their logit forms (sigma(z) - y), so value and
gradient stay finite and right for z of +-1000, in closed form and compiled."""

from __future__ import annotations

import numpy as np
import pytest
import sympy
from scipy.special import expit

import symdl as sd

z, y, p = sympy.symbols("z y p", real=True)
LOGITS = [-1000.0, -745.0, -40.0, -1.5, 0.0, 2.0, 40.0, 1000.0]


def _compiled(expr, wrt):
    return sd.derive(expr, wrt).compile()


@pytest.mark.parametrize("target", [0.0, 0.3, 1.0])
def test_bce_of_sigmoid_is_finite_and_right_for_large_logits(target):
    loss = sd.binary_cross_entropy(sd.sigmoid(z), y)
    (step,) = sd.derive(loss, z).steps[:1]
    assert str(step.rhs) == "binary_cross_entropy(sigmoid(z), y)"  # shown as written
    assert r"\operatorname{BCE}\left(\sigma\left(z\right), y\right)" in sympy.latex(step.rhs)
    closed = sd.grad(loss, z)
    assert sympy.simplify(closed - (sd.sigmoid(z) - y)) == 0
    f = _compiled(loss, [z])
    for logit in LOGITS:
        value, (slope,) = f(z=logit, y=target)
        exact_value = np.logaddexp(0.0, logit) - target * logit
        assert np.isclose(value, exact_value, rtol=1e-12, atol=1e-300), (logit, value)
        assert np.isclose(slope, expit(logit) - target, rtol=1e-12, atol=1e-300), (logit, slope)
        assert np.isfinite(float(closed.subs({z: logit, y: target}).evalf()))
    # the second derivative too
    (h,) = sd.hessian(loss, [z])
    assert sympy.simplify(h - sd.sigmoid(z) * (1 - sd.sigmoid(z))) == 0


def test_a_named_probability_keeps_the_textbook_chain():
    w, b, x = sympy.symbols("w b x", real=True)
    logit = w * x + b
    loss = sd.binary_cross_entropy(sd.sigmoid(logit), y)
    steps = sd.derive(loss, [w, b], names={logit: "z", sd.sigmoid(logit): "p"}).steps
    assert [str(s.name) for s in steps][:3] == ["z", "p", "L"]
    plain = sd.derive(loss, [w, b], names={logit: "z"}).steps
    assert [str(s.name) for s in plain][:3] == ["z", "L", "bar_z"]  # the logit form, one step
    assert str(plain[1].rhs) == "binary_cross_entropy(sigmoid(z), y)"


def test_bce_of_sigmoid_in_a_vector_and_through_a_layer():
    w, b, x = sympy.symbols("w b x", real=True)
    loss = sd.binary_cross_entropy([sd.sigmoid(w * x + b), sd.sigmoid(b)], [y, 1 - y])
    f = _compiled(loss, [w, b])
    for big in (50.0, 1000.0, -1000.0):
        value, grads = f(w=big, b=big, x=1.0, y=1.0)
        assert np.isfinite(value) and np.all(np.isfinite(grads)), (big, value, grads)
    assert sd.check_grad(loss, [w, b], points=3)


def test_log_sigmoid_is_finite_and_right_for_large_logits():
    expr = sympy.log(sd.sigmoid(z))
    f = _compiled(expr, [z])
    for logit in LOGITS:
        value, (slope,) = f(z=logit)
        assert np.isclose(value, -np.logaddexp(0.0, -logit), rtol=1e-12, atol=1e-300)
        assert np.isclose(slope, expit(-logit), rtol=1e-12, atol=1e-300)
    closed = sd.grad(expr, z)
    reference = sympy.diff(sympy.log(1 / (1 + sympy.exp(-z))), z)
    assert sympy.simplify(closed.rewrite("elementary") - reference) == 0
    assert float(closed.subs(z, -1000).evalf()) == 1.0
    assert str(sd.derive(expr, z).steps[0].rhs) == "log(sigmoid(z))"
    assert sd.check_grad(3 * expr + z**2, z, points=3)
    assert sd.verify(expr, z, "1 - sigma(z)")


@pytest.mark.parametrize("probability", [0.0, 1.0, 1e-300, 1 - 1e-16])
def test_bce_on_probabilities_clamps_its_slopes(probability):
    loss = sd.binary_cross_entropy(p, y)
    f = _compiled(loss, [p, y])
    for target in (0.0, 1.0):
        value, grads = f(p=probability, y=target)
        assert np.isfinite(value) and np.all(np.isfinite(grads)), (probability, target, grads)
    # away from 0 and 1 the slopes are exact
    value, (dp, dy) = f(p=0.25, y=1.0)
    assert np.isclose(dp, (0.25 - 1) / (0.25 * 0.75)) and np.isclose(dy, np.log(0.75 / 0.25))
    # shown as the exact slopes; .doit() gives them as plain SymPy expressions
    dp_closed, dy_closed = sd.grad(loss, [p, y])
    assert str(dp_closed) == "(p - y)/(p*(1 - p))"
    assert dp_closed.doit() == (p - y) / (p * (1 - p))
    assert dy_closed.doit() == sympy.log(1 - p) - sympy.log(p)
    assert sd.verify(loss, p, "(p - y)/(p*(1 - p))")


def test_matrix_bce_of_sigmoid_is_the_textbook_sigma_minus_y_and_finite_at_1000():
    """Issue 11: in matrix form BCE(sigmoid(Z), Y) used to keep (σ−Y)∘(σ∘(1−σ))^{∘−1}∘(1−σ)∘σ,
    0/0 at logits of ±1000; it is now the logit form, as the scalar one is."""
    N = sympy.Symbol("N", integer=True, positive=True)
    Z, Y = sympy.MatrixSymbol("Z", 3, N), sympy.MatrixSymbol("Y", 3, N)
    f = sd.binary_cross_entropy(sd.sigmoid(Z), Y)
    assert str(sd.grad(f, Z)) == "(1/(3*N))*(-Y + sigmoid(Z))"
    assert str(f) == "binary_cross_entropy(sigmoid(Z), Y)"
    z = np.array([[1000.0, -1000.0], [0.5, 2.0], [-3.0, 0.0]])
    y = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    value, (gradient,) = sd.derive(f, [Z]).compile()(Z=z, Y=y)
    softplus = np.logaddexp(0.0, z)
    assert value == pytest.approx((softplus - y * z).mean(), rel=1e-12)
    np.testing.assert_allclose(gradient, (expit(z) - y) / z.size, rtol=1e-12)
