"""build_program directly: one step per function application or shared node, outputs always
named steps, names given by the user, and Piecewise kept whole."""

from __future__ import annotations

import numpy as np
import pytest
import sympy
from sympy import Piecewise, Symbol, tanh

import symdl as sd
from symdl.core.program import build_program

w, x, b, y = sympy.symbols("w x b y", real=True)


def test_a_neuron_reads_as_in_a_textbook():
    program = build_program([tanh(w * x + b)], names={w * x + b: "z"})
    assert [str(s) for s in program.steps] == ["z = b + w*x", "L = tanh(z)"]
    assert program.outputs == (Symbol("L", real=True),)
    assert set(program.leaves) == {w, x, b}


def test_a_shared_subexpression_is_computed_once():
    z = sympy.exp(w * x)
    program = build_program([z * sympy.sin(z) + z])
    assert [str(s) for s in program.steps] == [
        "v_1 = w*x",  # a function's argument is a step of its own: z = w x, a = f(z)
        "v_2 = exp(v_1)",
        "v_3 = sin(v_2)",
        "L = v_2*v_3 + v_2",
    ]


def test_an_output_inside_another_output_is_a_step_of_its_own():
    program = build_program([x * y + 1, x * y])
    first, second = program.outputs
    assert program.definitions[second] == x * y
    assert program.definitions[first] == second + 1


def test_an_output_listed_twice_has_one_step():
    program = build_program([2 * x, 2 * x])
    assert program.outputs[0] == program.outputs[1]
    assert len(program) == 1


def test_piecewise_pairs_and_conditions_are_never_steps():
    f = Piecewise((tanh(x) ** 2, tanh(x) > 0), (x, True))
    program = build_program([f])
    rhs = [s.rhs for s in program.steps]
    assert tanh(x) in rhs
    assert all(not isinstance(r, sympy.logic.boolalg.Boolean) for r in rhs)
    assert program.expressions()[program.outputs[0]] == f


def test_matrix_steps_are_matrix_symbols_of_their_shape():
    W, X = sympy.MatrixSymbol("W", 3, 4), sympy.MatrixSymbol("X", 4, 5)
    program = build_program([sd.l2(sd.relu(W * X))])
    shapes = {s.name.shape for s in program.steps if isinstance(s.name, sympy.MatrixSymbol)}
    assert (3, 5) in shapes


@pytest.mark.parametrize(
    ("names", "message"),
    [({w * x: "x"}, "already a symbol"), ({w * y: "z"}, "does not occur"), ({x: "z"}, "symbol")],
)
def test_bad_names_are_refused_with_the_reason(names, message):
    with pytest.raises(ValueError, match=message):
        build_program([tanh(w * x + b)], names=names)


def test_python_functions_and_strings_are_refused():
    with pytest.raises(sd.UnsupportedExpression, match="Python function"):
        build_program([lambda t: t])
    with pytest.raises(sd.UnsupportedExpression, match="never evaluated"):
        build_program(["x + 1"])


# ---------------------------------------------------------------- names SymPy flattened (issue 11)


def test_a_named_part_of_a_flattened_product_or_sum_gets_its_step():
    y = Symbol("y", real=True)
    f = 3 * w * x * y * b
    d = sd.derive(f, w, names={w * x: "z"})
    assert [str(s.name) for s in d.steps][0] == "z" and str(d.steps[0].rhs) == "w*x"
    assert sympy.simplify(d.closed_form() - sympy.diff(f, w)) == 0
    g = (w * x + b + y) ** 2
    d = sd.derive(g, w, names={w * x + b: "z"})
    assert str(d.steps[0].rhs) == "b + w*x"
    assert sympy.simplify(d.closed_form() - sympy.diff(g, w)) == 0


def test_a_named_mean_and_a_named_matrix_product_survive_sympys_forms():
    N = Symbol("N", integer=True, positive=True)
    X, W = sympy.MatrixSymbol("X", 3, N), sympy.MatrixSymbol("W", 2, 3)
    mean = sd.relu(W * X) * sympy.OneMatrix(N, 1) / N
    f = sympy.Trace(sympy.OneMatrix(1, 2) * mean)
    d = sd.derive(f, [W], names={mean: "mu"})
    assert "mu" in [str(s.name) for s in d.steps]
    rng = np.random.default_rng(0)
    x, wv = rng.normal(size=(3, 4)), rng.normal(size=(2, 3))
    value, (gradient,) = d.compile()(X=x, W=wv)
    assert value == pytest.approx(np.maximum(wv @ x, 0).mean(axis=1).sum(), rel=1e-12)
    expected = ((wv @ x > 0) * np.ones((2, 4)) / 4) @ x.T
    np.testing.assert_allclose(gradient, expected, rtol=1e-12)
    Q, P, V = (sympy.MatrixSymbol(n, 2, 2) for n in "QPV")
    d = sd.derive(sympy.Trace(Q * P * V), P, names={P * V: "O"})
    assert str(d.steps[0].name) == "O" and str(d.steps[0].rhs) == "P*V"
    assert str(d.gradient) == "bar_O*V.T" and str(d.closed_form()) == "Q.T*V.T"


def test_a_name_that_is_truly_absent_is_refused_with_the_closest_candidate():
    y = Symbol("y", real=True)
    with pytest.raises(ValueError, match=r"closest subexpression is w\*x - y"):
        sd.derive((w * x - y) ** 2, w, names={w * y: "q"})
