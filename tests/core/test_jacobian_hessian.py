"""sd.jacobian and sd.hessian against SymPy's own Matrix.jacobian / hessian of the elementary
definitions, on random DAGs with shared subexpressions, outputs that contain other outputs,
repeated and absent `wrt` symbols, and every declared op."""

from __future__ import annotations

import math

import numpy as np
import pytest
import sympy
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import symdl as sd

from ..conftest import expand_ops, fuzz_script

# as users write them: no assumptions (symdl makes them real on the way in)
SYMBOLS = sympy.symbols("x y z")
ABSENT = sympy.Symbol("a")  # never occurs in the expressions
X, Y = SYMBOLS[:2]
W, B = sympy.symbols("w b")

fuzz = fuzz_script()


@st.composite
def dags(draw, max_size=6):
    """The nodes of a random DAG over SYMBOLS, in order; later nodes reuse earlier ones (the
    generator of scripts/fuzz.py: SymPy functions, binary forms and every symdl op)."""
    return fuzz.dag(
        lambda n: draw(st.integers(0, n - 1)), SYMBOLS, max_size, min_nodes=max_size // 3
    )


def _wrt(draw):
    """Symbols in any order, some repeated, sometimes one absent from every expression."""
    pool = [*SYMBOLS, ABSENT]
    return draw(st.lists(st.sampled_from(pool), min_size=1, max_size=4))


_REAL = {s: sympy.Symbol(s.name, real=True) for s in [*SYMBOLS, ABSENT, W, B]}


def _elementary(expr):
    """The reference's input: ops expanded, symbols real (as symdl treats them)."""
    return expand_ops(sympy.sympify(expr)).xreplace(_REAL)


def _agree(ours: sympy.Matrix, reference: sympy.Matrix, seed: int) -> None:
    assert ours.shape == reference.shape
    rng = np.random.default_rng(seed)
    checked = 0
    for _ in range(3):
        point = {s: sympy.Float(rng.uniform(-2, 2), 30) for s in _REAL.values()}
        for (i, j), ref in np.ndenumerate(np.array(reference.tolist(), dtype=object)):
            exact = complex(_elementary(ref).xreplace(point).evalf(30))
            if not (abs(exact.imag) < 1e-20 and math.isfinite(exact.real)):
                continue  # outside the domain of a log, say: no reference here
            got = complex(_elementary(ours[i, j]).xreplace(point).evalf(30))
            assert abs(got - exact.real) <= 1e-9 * (1 + abs(exact.real)), (
                f"entry ({i}, {j}) at {point}: symdl {got} = {ours[i, j]}, SymPy {exact} = {ref}"
            )
            checked += 1
    assert checked, "no point in the domain"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_jacobian_agrees_with_sympy(data):
    nodes = data.draw(dags())
    chosen = data.draw(st.lists(st.integers(3, len(nodes) - 1), min_size=1, max_size=3))
    outputs = [nodes[i] for i in chosen] + [nodes[chosen[0]] + 1]  # an output inside another
    wrt = _wrt(data.draw)
    reference = sympy.Matrix([_elementary(o) for o in outputs]).jacobian([_REAL[w] for w in wrt])
    assume(not reference.has(sympy.Derivative))  # SymPy cannot differentiate this form
    _agree(sd.jacobian(outputs, wrt), reference, seed=len(chosen))


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_hessian_agrees_with_sympy(data):
    nodes = data.draw(dags(max_size=4))
    f = nodes[-1] * data.draw(st.sampled_from([1, SYMBOLS[0], nodes[-2]]))
    wrt = _wrt(data.draw)
    try:
        reference = sympy.hessian(_elementary(f), [_REAL[w] for w in wrt])
    except ValueError:  # SymPy itself cannot differentiate the written-out form: no reference
        assume(False)
    assume(not reference.has(sympy.Derivative))  # nor when it leaves a derivative undone
    _agree(sd.hessian(f, wrt), reference, seed=len(wrt))


def test_hessian_of_mse_of_a_neuron():
    assert sd.hessian(sd.mse(W * X + B, Y), [W, B]) == sympy.Matrix([[2 * X**2, 2 * X], [2 * X, 2]])


def test_hessian_of_bce_with_logits_of_a_neuron():
    f = sd.binary_cross_entropy_with_logits(W * X + B, Y)
    reference = sympy.hessian(_elementary(f), [_REAL[W], _REAL[B]])
    _agree(sd.hessian(f, [W, B]), reference, seed=0)


def test_jacobian_of_an_output_inside_another():
    assert sd.jacobian([X * Y + 1, X * Y], [X, Y]) == sympy.Matrix([[Y, X], [Y, X]])


def test_repeated_and_absent_wrt_keep_their_places():
    assert sd.grad(X * Y, [X, X]) == [Y, Y]
    assert sd.grad(Y**2, [X, Y, X]) == [0, 2 * Y, 0]
    assert sd.jacobian([X * Y], [Y, Y]) == sympy.Matrix([[X, X]])


def test_two_symbols_that_would_be_one_are_an_error():
    plain, real = sympy.Symbol("x0"), sympy.Symbol("x0", real=True)
    with pytest.raises(ValueError, match="x0"):
        sd.grad(plain * real, [plain, real])


def test_compile_accepts_a_wrt_symbol_absent_from_f():
    value, (dx, dy) = sd.derive(Y**2, [X, Y]).compile()(x=1.0, y=2.0)
    assert (value, dx, dy) == (4.0, 0.0, 4.0)


@pytest.mark.parametrize(
    "f",
    [
        sympy.Abs(X) * Y,
        sd.l1([X]) * Y,
        sd.huber(X, Y),
        sd.leaky_relu(X) * Y,
        sd.elu(X) * Y,
        sympy.sign(X) * Y + X**2,
        sympy.Piecewise((X**2 * Y, X > 1), (X * Y, True)),
        sympy.Max(X, Y) * X,
        sympy.Heaviside(X - 1) * X * Y,
    ],
    ids=str,
)
def test_every_second_derivative_of_a_first_one(f):
    reference = sympy.hessian(_elementary(f), [_REAL[X], _REAL[Y]])
    _agree(sd.hessian(f, [X, Y]), reference, seed=1)
