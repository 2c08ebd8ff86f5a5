"""Every declared op, checked against independent references; an op joins by being declared."""

from __future__ import annotations

import re

import numpy as np
import pytest
import sympy

import symdl as sd
from symdl.compile.codegen import SymdlNumPyPrinter
from symdl.ops import declared

from ..conftest import evaluate, evaluate_exact, expand_ops

OPS = sorted(declared())


def sample(ranges: dict, rng) -> dict:
    return {s: float(rng.uniform(lo, hi)) for s, (lo, hi) in ranges.items()}


def away_from_kinks(expr, point) -> bool:
    """True unless a Heaviside, Piecewise condition, sign or Max in `expr` is near a tie."""
    full = expand_ops(expr)
    for piece in full.atoms(sympy.Heaviside, sympy.sign, sympy.Abs):
        if abs(float(piece.args[0].evalf(subs=point))) < 1e-3:
            return False
    for m in full.atoms(sympy.Max, sympy.Min):
        values = sorted(float(a.evalf(subs=point)) for a in m.args)
        if min(np.diff(values)) < 1e-3:
            return False
    for pw in full.atoms(sympy.Piecewise):
        for _, cond in pw.args:
            if isinstance(cond, sympy.core.relational.Relational):
                if abs(float((cond.lhs - cond.rhs).evalf(subs=point))) < 1e-3:
                    return False
    return True


@pytest.mark.parametrize("name", OPS)
def test_fdiff_matches_sympy_diff_of_definition(name, rng):
    """The op's own derivative equals sympy.diff of its elementary definition."""
    expr, ranges = declared()[name].example()
    for _ in range(5):
        point = sample(ranges, rng)
        if not away_from_kinks(expr, point):
            continue
        for s in ranges:
            mine = evaluate_exact(sympy.diff(expr, s), point)
            reference = float(sympy.diff(expand_ops(expr), s).evalf(30, subs=point))
            assert mine == pytest.approx(reference, rel=1e-12, abs=1e-12), (name, s, point)


@pytest.mark.parametrize("name", OPS)
def test_fdiff_matches_finite_differences_of_numpy_form(name, rng):
    """fdiff against central differences of the compiled op: independent of SymPy's diff."""
    expr, ranges = declared()[name].example()
    h = 1e-6
    for _ in range(5):
        point = sample(ranges, rng)
        if not away_from_kinks(expr, point):
            continue
        for s in ranges:
            up = evaluate(expr, point | {s: point[s] + h})
            down = evaluate(expr, point | {s: point[s] - h})
            numeric = (up - down) / (2 * h)
            assert evaluate(sympy.diff(expr, s), point) == pytest.approx(
                numeric, rel=1e-6, abs=1e-7
            )


@pytest.mark.parametrize("name", OPS)
def test_numpy_form_matches_definition(name, rng):
    expr, ranges = declared()[name].example()
    for _ in range(5):
        point = sample(ranges, rng)
        assert evaluate(expr, point) == pytest.approx(
            evaluate_exact(expr, point), rel=1e-12, abs=1e-12
        )


@pytest.mark.parametrize("name", OPS)
@pytest.mark.parametrize("extreme", [-1000.0, 1000.0])
def test_numpy_forms_stay_finite_at_extremes(name, extreme):
    """Value and every first derivative are finite when an unbounded input is +-1000."""
    expr, ranges = declared()[name].example()
    point = {s: (extreme if hi - lo > 2 else (lo + hi) / 2) for s, (lo, hi) in ranges.items()}
    with np.errstate(over="ignore"):  # a branch np.where discards may overflow; the result may not
        assert np.isfinite(evaluate(expr, point)), name
        for s in ranges:
            assert np.isfinite(evaluate(sympy.diff(expr, s), point)), (name, s)


@pytest.mark.parametrize("name", OPS)
def test_latex_uses_the_ops_notation(name):
    expr, _ = declared()[name].example()
    op = declared()[name]
    tex = sympy.latex(expr)
    assert (op.latex_name or r"\lVert") in tex
    assert r"\_" not in tex  # SymPy's fallback would print the class name, underscores escaped


@pytest.mark.parametrize("name", OPS)
def test_numpy_printer_has_a_form_for_the_op(name):
    expr, _ = declared()[name].example()
    code = SymdlNumPyPrinter().doprint(expr)
    assert "Not supported" not in code
    assert not re.search(rf"(?<![.\w]){name}\(", code), code  # no call of an undefined name


def test_kink_convention_is_zero_slope_on_the_left_as_pytorch():
    x = sympy.Symbol("x", real=True)
    assert sympy.diff(sd.relu(x), x).subs(x, 0) == 0
    assert sympy.diff(sd.leaky_relu(x), x).subs(x, 0) == sympy.Rational(1, 100)
    assert sympy.diff(sd.l1([x]), x).subs(x, 0) == 0
    assert evaluate(sympy.diff(sd.relu(x), x), {x: 0.0}) == 0.0


def test_named_latex_for_common_functions():
    x = sympy.Symbol("x")
    assert sympy.latex(sd.sigmoid(x)) == r"\sigma\left(x\right)"
    assert sympy.latex(sd.relu(x)) == r"\operatorname{ReLU}\left(x\right)"
    z = sympy.symbols("z0:3")
    assert r"\operatorname{softmax}" in sympy.latex(sd.softmax(z)[0])


def test_vector_constructors_and_errors():
    z = sympy.symbols("z0:3")
    s = sd.softmax(list(z))
    assert isinstance(s, sympy.Matrix) and s.shape == (3, 1)
    assert sympy.simplify(sum(expand_ops(s)) - 1) == 0
    assert sd.cross_entropy(list(z), 1) == sd.cross_entropy(list(z), [0, 1, 0])
    with pytest.raises(ValueError, match="class 5"):
        sd.cross_entropy(list(z), 5)
    with pytest.raises(ValueError, match="3 entries but target has 2"):
        sd.mse(list(z), [1, 2])
    with pytest.raises(TypeError, match="softmax"):
        sd.softmax(z[0])


def test_cross_entropy_gradient_is_softmax_minus_target():
    z = sympy.symbols("z0:3", real=True)
    y = [0, 0, 1]
    g = sd.grad(sd.cross_entropy(list(z), y), list(z))
    p = expand_ops(sd.softmax(list(z)))
    for k in range(3):
        assert sympy.simplify(expand_ops(g[k]) - (p[k] - y[k])) == 0


@pytest.mark.parametrize("name", OPS)
def test_a_string_argument_is_refused_not_run(name, tmp_path):
    op = declared()[name]
    marker = tmp_path / "ran"
    text = f"__import__('pathlib').Path({str(marker)!r}).touch()"
    with pytest.raises((TypeError, ValueError), match=name):  # refused, the op named
        op(text)
    with pytest.raises((TypeError, ValueError), match=name):
        op(text, text)
    assert not marker.exists()
