"""sd.check_grad: accuracy of each method on every declared op, wrong gradients found at the
right entry, points kept off kinks and inside domains, and the report."""

from __future__ import annotations

import pytest
import sympy
from sympy import Matrix, Symbol

import symdl as sd
from symdl.checking.sampling import conditions
from symdl.ops import declared

OPS = sorted(declared())


def example_points(name, count, rng):
    """Points drawn from the op's own declared sampling intervals (its domain)."""
    expr, ranges = declared()[name].example()
    return (
        expr,
        list(ranges),
        [{s: float(rng.uniform(lo, hi)) for s, (lo, hi) in ranges.items()} for _ in range(count)],
    )


def smooth(expr) -> bool:
    kinks, _ = conditions([expr])
    return not kinks


@pytest.mark.parametrize("name", OPS)
def test_central_differences_agree_to_1e_7_on_every_op(name, rng):
    expr, symbols, points = example_points(name, 3, rng)
    for point in points:
        try:
            check = sd.check_grad(expr, symbols, at=point)
        except ValueError as error:  # a drawn point at a kink of a piecewise op
            assert not smooth(expr) and "kink" in str(error)
            continue
        assert check, check.report()
        assert check.max_error <= 1e-7, check.report()


@pytest.mark.parametrize("name", OPS)
def test_complex_step_agrees_to_1e_12_where_analytic(name, rng):
    expr, symbols, points = example_points(name, 3, rng)
    for point in points:
        try:
            check = sd.check_grad(expr, symbols, at=point, method="complex")
        except ValueError as error:
            assert not smooth(expr) and "kink" in str(error)
            continue
        assert check, check.report()
        assert check.max_error <= 1e-12, check.report()
        if not smooth(expr):  # piecewise: analytic on each side, branch chosen by the real part
            assert "real part" in check.notes[0]


@pytest.mark.parametrize("name", OPS)
def test_richardson_agrees_to_1e_9(name, rng):
    expr, symbols, points = example_points(name, 2, rng)
    for point in points:
        try:
            check = sd.check_grad(expr, symbols, at=point, method="richardson")
        except ValueError:
            assert not smooth(expr)
            continue
        assert check and check.max_error <= 1e-9, check.report()


def test_random_points_on_a_two_layer_network_with_every_method():
    x = Matrix(sympy.symbols("x0:3", real=True))
    W1 = Matrix(3, 3, lambda i, j: Symbol(f"V_{i}{j}", real=True))
    W2 = Matrix(2, 3, lambda i, j: Symbol(f"W_{i}{j}", real=True))
    loss = sd.cross_entropy(list(W2 * (W1 * x).applyfunc(sd.relu)), 1)
    for method in ("central", "complex", "richardson"):
        check = sd.check_grad(loss, [*W1, *W2], method=method, points=3)
        assert check, check.report()


def test_a_wrong_gradient_is_reported_at_the_right_entry():
    x, y = sympy.symbols("x y", real=True)
    f = x * y + y**2
    check = sd.check_grad(f, [x, y], grad=[y, 2 * y])  # d/dy should be x + 2y
    assert not check
    assert check.worst.wrt == y
    assert [e.ok for e in check.per_entry()] == [True, False]
    with pytest.raises(sd.GradientMismatch) as raised:
        check.assert_ok()
    message = str(raised.value)
    assert "worst entry y" in message and "MISMATCH" in message
    assert f"{check.worst.symbolic:.10g}" in message and f"{check.worst.numeric:.10g}" in message


def test_a_wrong_matrix_entry_is_found():
    W = Matrix(2, 3, lambda i, j: Symbol(f"W_{i}{j}", real=True))
    x = Matrix(sympy.symbols("x0:3", real=True))
    f = sd.logsumexp(list(W * x))
    right = sd.grad(f, W)
    wrong = right.copy()
    wrong[1, 2] = 1.001 * wrong[1, 2]
    assert sd.check_grad(f, W, grad=right)
    check = sd.check_grad(f, W, grad=wrong)
    assert not check
    assert check.worst.index == (1, 2) and check.worst.wrt == W[1, 2]
    assert "W_12 [1, 2]" in check.report()


def test_gradient_given_as_text():
    x, y = sympy.symbols("x y", real=True)
    assert sd.check_grad(
        sd.sigmoid(x * y),
        [x, y],
        grad="[y*sigma(x*y)*(1 - sigma(x*y)), x*sigma(x*y)*(1 - sigma(x*y))]",
    )
    assert not sd.check_grad(sd.sigmoid(x * y), x, grad=r"\sigma(x y)(1 + \sigma(x y))")


def test_points_avoid_kinks_and_domains_and_say_which_were_rejected():
    x, y = sympy.symbols("x y", real=True)
    check = sd.check_grad(sympy.log(x) + sd.relu(y - 1), [x, y], points=5)
    assert check
    assert all(p[x] > 0 for p in check.points)
    assert all(abs(p[y] - 1) > 1e-6 for p in check.points)
    assert check.rejected
    assert any("outside the domain of log(x)" in why for _, why in check.rejected)
    assert "rejected" in check.report()


def test_a_given_point_at_a_kink_or_outside_the_domain_is_refused_with_the_reason():
    x = Symbol("x", real=True)
    with pytest.raises(ValueError, match="at the kink of relu"):
        sd.check_grad(sd.relu(x), x, at={x: 0.0})
    with pytest.raises(ValueError, match="crosses the kink of relu"):
        sd.check_grad(sd.relu(x), x, at={x: 3e-6})  # h = 6e-6
    with pytest.raises(ValueError, match="outside the domain of log"):
        sd.check_grad(sympy.log(x), x, at={"x": -1.0})


def test_at_checks_one_point_and_fills_in_the_rest():
    x, y = sympy.symbols("x y", real=True)
    check = sd.check_grad(x**2 * y, [x, y], at={x: 2.0, y: 3.0})
    assert len(check.points) == 1 and check.point == {x: 2.0, y: 3.0}
    assert check.worst.symbolic in (12.0, 4.0)
    check = sd.check_grad(x**2 * y, x, at={x: 2.0})
    assert len(check.points) == 1 and check.point[x] == 2.0


def test_matrix_symbols_and_bad_arguments():
    n = Symbol("n", integer=True, positive=True)
    a, X = sympy.MatrixSymbol("a", n, 1), sympy.MatrixSymbol("X", n, n)
    assert sd.check_grad(a.T * X * a, a, grad="(X + X.T)*a")
    assert not sd.check_grad(a.T * X * a, a, grad="2*X*a")
    x = Symbol("x", real=True)
    with pytest.raises(ValueError, match="method 'forward'"):
        sd.check_grad(x**2, x, method="forward")
    with pytest.raises(ValueError, match="not a symbol of the function"):
        sd.check_grad(x**2, x, at={"q": 1.0})


def test_reports_for_people_and_notebooks():
    x, y = sympy.symbols("x y", real=True)
    check = sd.check_grad(sympy.exp(x) * y, [x, y], method="richardson")
    assert check and check.assert_ok() is check
    assert "holds (richardson" in str(check)
    assert "<table>" in check._repr_html_()
    assert check._repr_latex_().startswith("$$")
    assert check.max_abs_error <= check.worst.tolerance * 10


def test_inverses_and_determinants_of_symbolic_3x3_matrices_are_written_out_fast():
    """An inverse written out entry by entry is adj(M)/det(M): SymPy's Gaussian elimination
    took minutes on X Xᵀ + I (found trying what users write); a result is also checked."""
    X = sympy.MatrixSymbol("X", 3, 3)
    M = X * X.T + sympy.Identity(3)
    assert sd.check_grad(sympy.Trace(sympy.Inverse(M)), X)
    assert sd.check_grad(sympy.log(sympy.Determinant(M)), X)
    assert sd.check_grad(sympy.Trace(sympy.Inverse(M) ** 2), X)
    verdict = sd.verify(sympy.Trace(sympy.Inverse(M)), X, "-2*inv(X*X.T + eye(3))^2*X")
    assert verdict.agrees  # numeric agreement at 64 points (the explicit eye(3) is not proved)
    assert not sd.verify(sympy.Trace(sympy.Inverse(M)), X, "-inv(X*X.T + eye(3))^2*X").agrees
