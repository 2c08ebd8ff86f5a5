"""sd.grad, sd.jacobian, sd.hessian and sd.derive against sympy.diff, the independent reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
import sympy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import symdl as sd
from symdl.ops import declared

from ..conftest import evaluate

X, Y, Z = sympy.symbols("x y z", real=True)
SYMBOLS = (X, Y, Z)

UNARY_OPS = [sd.relu, sd.sigmoid, sd.softplus, sd.elu, sd.gelu, sd.silu, sd.leaky_relu]


def _unary(e):
    return st.sampled_from([sympy.exp, lambda a: sympy.log(1 + a**2), sympy.tanh, *UNARY_OPS]).map(
        lambda f: f(e)
    )


def _binary(pair):
    a, b = pair
    return st.sampled_from(
        [
            a + b,
            a - b,
            a * b,
            a / (1 + b**2),
            a**2 * b,
            sd.logsumexp([a, b]),
            sd.softmax([a, b, X])[0],
            sd.log_softmax([a, b])[1],
            sd.mse([a], [b]),
            sd.binary_cross_entropy_with_logits(a, sd.sigmoid(b)),
            sd.cross_entropy([a, b, Y], [sd.sigmoid(a), 0, 1]),
            sd.huber(a, b),
            sd.l2([a, b]),
        ]
    )


leaves = st.one_of(st.sampled_from(SYMBOLS), st.integers(1, 3).map(sympy.Integer))
expressions = st.recursive(
    leaves,
    lambda children: st.one_of(
        children.flatmap(_unary), st.tuples(children, children).flatmap(_binary)
    ),
    max_leaves=8,
)


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-10, abs_tol=1e-10)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(expr=expressions, seed=st.integers(0, 2**32 - 1))
def test_grad_agrees_with_sympy_diff_on_random_expressions(expr, seed):
    rng = np.random.default_rng(seed)
    gradient = sd.grad(expr, list(SYMBOLS))
    for _ in range(2):
        point = {s: float(rng.uniform(-2, 2)) for s in SYMBOLS}
        for s, g in zip(SYMBOLS, gradient, strict=True):
            reference = evaluate(sympy.diff(expr, s), point)
            if not np.isfinite(reference):
                continue
            assert _close(evaluate(g, point), reference), (expr, s, point)


@pytest.mark.parametrize("name", sorted(declared()))
def test_grad_agrees_with_sympy_diff_for_every_op(name):
    expr, ranges = declared()[name].example()
    symbols = list(ranges)
    composed = expr.subs({s: sympy.tanh(s) + s / 2 for s in symbols})  # through the chain rule
    gradient = sd.grad(composed, symbols)
    for s, g in zip(symbols, gradient, strict=True):
        difference = sympy.expand(g - sympy.diff(composed, s))
        assert difference == 0 or sympy.simplify(difference) == 0, (name, s)


def test_shapes_follow_wrt():
    w = sympy.Matrix(2, 2, sympy.symbols("w0:4", real=True))
    f = sum(wi**2 for wi in w) * X
    assert sd.grad(f, X) == sum(wi**2 for wi in w)
    assert sd.grad(f, w) == 2 * X * w
    assert isinstance(sd.grad(f, w), sympy.MatrixBase) and sd.grad(f, w).shape == (2, 2)
    assert sd.grad(f, (X, w[0])) == (sum(wi**2 for wi in w), 2 * X * w[0])
    assert sd.grad(f, [X]) == [sum(wi**2 for wi in w)]
    assert sd.grad(sympy.Matrix([[X * Y]]), Y) == X


def test_symbols_without_assumptions_are_treated_as_real_and_given_back():
    x = sympy.Symbol("x")
    g = sd.grad(sympy.Abs(x) + x**2, x)
    assert g == sympy.sign(x) + 2 * x
    assert g.free_symbols == {x}


def test_gradient_of_a_symbol_absent_from_f_is_zero():
    assert sd.grad(X * Y, [X, Z]) == [Y, 0]


def test_hessian_agrees_with_sympy_hessian():
    f = sd.softplus(X * Y) + sympy.exp(X - Z) * sd.sigmoid(Z) + sd.logsumexp([X, Y, Z])
    ours = sd.hessian(f, [X, Y, Z])
    reference = sympy.hessian(f, [X, Y, Z])
    point = {X: 0.3, Y: -0.7, Z: 1.1}
    for i in range(3):
        for j in range(3):
            assert evaluate(ours[i, j], point) == pytest.approx(
                evaluate(reference[i, j], point), rel=1e-12
            )
    assert ours == ours.T


def test_jacobian_of_softmax_is_diag_minus_outer():
    z = sympy.Matrix(sympy.symbols("z0:3", real=True))
    s = sd.softmax(z)
    J = sd.jacobian(s, list(z))
    for i in range(3):
        for j in range(3):
            expected = s[i] * (int(i == j) - s[j])
            assert sympy.simplify(J[i, j] - expected) == 0


def test_shared_subexpression_is_one_step():
    shared = sympy.tanh(X * Y)
    program = sd.build_program([shared**2 + sympy.exp(shared)])
    assert sum(1 for step in program.steps if step.rhs.func is sympy.tanh) == 1


def test_names_are_used_and_checked():
    u = X * Y + Z
    derivation = sd.derive(sd.sigmoid(u), [X], names={u: "u"})
    assert str(derivation.forward[0]) == "u = x*y + z"
    with pytest.raises(ValueError, match="already a symbol"):
        sd.derive(sd.sigmoid(X * Y), [X], names={X * Y: "x"})
    with pytest.raises(ValueError, match="does not occur"):
        sd.derive(sd.sigmoid(X * Y), [X], names={X * Z: "u"})


def test_derivation_steps_read_like_a_textbook():
    w, b, x, y = sympy.symbols("w b x y", real=True)
    d = sd.derive(sd.mse(sd.sigmoid(w * x + b), y), [w, b], names={w * x + b: "z"})
    forward = [str(s) for s in d.forward]
    assert forward[0] == "z = b + w*x" and forward[1].endswith("sigmoid(z)")
    assert [str(g) for g in d.gradient] == ["bar_z*x", "bar_z"]
    tex = d.to_latex()
    assert tex.startswith(r"\begin{align*}") and r"\sigma\left(z\right)" in tex
    assert r"\frac{\partial L}{\partial w} &= \bar{z}" in tex
    md = d.to_markdown()
    assert md.count("$$") == 6 and "### Gradients" in md
    assert d._repr_latex_().startswith("$$\\begin{aligned}")


def test_closed_form_keeps_shared_subexpressions_shared():
    loss = sympy.tanh(sympy.tanh(X * Y) * Z + X) ** 2
    g = sd.grad(loss, [X, Y])
    t1 = [a for a in sympy.preorder_traversal(g[0]) if a == sympy.tanh(X * Y)]
    t2 = [a for a in sympy.preorder_traversal(g[1]) if a == sympy.tanh(X * Y)]
    assert t1 and t2 and all(a is t1[0] for a in t1 + t2)


class notdifferentiable(sympy.Function):
    pass


@pytest.mark.parametrize(
    "bad, message",
    [
        (lambda: sd.grad(lambda x: x**2, X), "Python function"),
        (lambda: sd.grad("x**2", X), "strings are accepted only by sd.verify"),
        (lambda: sd.grad(notdifferentiable(X) * Y, X), "notdifferentiable"),
        (lambda: sd.grad(sympy.Function("f")(X), X), "'f'"),
        (lambda: sd.grad(X**2, X**2), "not a Symbol"),
        (lambda: sd.grad(sympy.Matrix([X, Y]), X), "use sd.jacobian"),
    ],
)
def test_unsupported_input_gets_an_error_naming_it(bad, message):
    with pytest.raises((TypeError, ValueError), match=message):
        bad()
