"""The fuzzer of scripts/fuzz.py driven by Hypothesis (seeded, shrinking a failing case to a
small one): random scalar DAGs and small matrix expressions; grad, the compiled derivation (its
generated source compiled for every case), the Hessian and check_grad against sympy.diff of the
elementary definitions. The long run is `python scripts/fuzz.py --cases 10000`."""

from __future__ import annotations

import random

import numpy as np
import pytest
import sympy
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

import symdl as sd
from symdl.checking.sampling import elementary

from .conftest import fuzz_script

fuzz = fuzz_script()

FAST = settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _chooser(data):
    return lambda n: data.draw(st.integers(0, n - 1)) if n > 1 else 0


def _no_failures(tally) -> None:
    assert not tally.mismatches, tally.mismatches[0]
    assert not tally.crashes, tally.crashes[0]
    for refusal in tally.refusals:  # a refusal names the construct, through symdl's own error
        assert "UnsupportedOp" in refusal or "Error" in refusal, refusal


@seed(16)
@FAST
@given(st.data())
def test_random_scalar_dags_agree_with_sympy(data):
    choose = _chooser(data)
    f, wrt = fuzz.scalar_case(choose, max_nodes=4)
    tally = fuzz.Tally()
    try:
        fuzz.check_scalar(f, wrt, choose, tally, hessian=choose(3) == 0)
    except fuzz.Mismatch as error:
        tally.mismatches.append(f"{f} by {wrt}: {error}")
    except Exception as error:
        if not fuzz._own(error):
            raise
        tally.refusals.append(f"{type(error).__name__}: {error}")
    _no_failures(tally)


@seed(11)
@settings(FAST, max_examples=2000)
@given(st.data())
def test_two_thousand_random_scalar_dags_differentiate_as_sympy_does(data):
    """Issue 11's corpus in CI: 2,000 random DAGs of SymPy functions (Piecewise, Abs, sign,
    Heaviside, Min/Max among them) and symdl's ops; symdl's gradient equals sympy.diff of the
    elementary definitions at a random point, to 30 digits of reference (the compiled code,
    the Hessian and check_grad are fuzzed above on fewer cases)."""
    # a case from one drawn seed: uniform choices (Hypothesis's own draws favour the largest
    # ops, whose SymPy reference alone takes seconds), reproducible by the seed it prints
    rng = random.Random(data.draw(st.integers(0, 2**32 - 1), label="case seed"))
    choose = lambda n: rng.randrange(n) if n > 1 else 0  # noqa: E731
    f, wrt = fuzz.scalar_case(choose, max_nodes=4)
    try:
        gradient = sd.grad(f, wrt)
    except Exception as error:
        assert fuzz._own(error), f"{f} by {wrt}: {type(error).__name__}: {error}"
        return  # refused by name (an op without a rule here)
    assert len(gradient) == len(wrt)
    point = fuzz._points(sorted(f.free_symbols | set(wrt), key=str), choose, 1)[0]
    tally = fuzz.Tally()
    for i, w in enumerate(wrt):
        exact = fuzz._reference(fuzz._diff(elementary(f), w), point, tally)
        if exact is None:
            continue  # outside a log's domain, too steep, or no reference SymPy can evaluate
        ours = fuzz._exact(gradient[i], point, 20)
        assert fuzz._close(ours.real, exact, 1e-9), f"{f} by {w} at {point}: {ours} vs {exact}"


@seed(16)
@settings(FAST, max_examples=15)
@given(st.data())
def test_random_matrix_expressions_agree_with_their_entries(data):
    choose = _chooser(data)
    f, wrt = fuzz.matrix_case(choose)
    fuzz.check_matrix(f, wrt, choose, fuzz.Tally())


def test_the_script_counts_what_it_finds(capsys):
    assert fuzz.main(["--cases", "6", "--seed", "3"]) == 0
    out = capsys.readouterr().out
    assert "6 cases (seed 3)" in out and "mismatches 0" in out and "crashes    0" in out


def test_ops_declared_outside_symdl_are_not_fuzzed():
    class broken_user_op(sd.ops.Op):  # declared by a user (the guide's softsign is one)
        nargs = 1

        def definition(self):
            raise NameError("a user's op, not symdl's")

    try:
        ops = fuzz.fuzzed_ops()
        assert broken_user_op not in ops and sd.mish in ops
    finally:
        sd.ops.base._DECLARED.pop("broken_user_op", None)


# The cases issue 16's fuzzer found, now regression tests.
x0, x1 = sympy.symbols("x0 x1", real=True)


def test_softmax_of_repeated_arguments_compiles_to_the_exact_derivative():
    f = sd.softmax(1, sympy.exp(sd.l2(x1, x1)), sympy.exp(sd.l2(x1, x1)), x0)
    compiled = sd.derive(f, [x1]).compile()
    for point in ({x0: 0.3, x1: 0.7}, {x0: -1.2, x1: 0.4}):
        exact = float(sympy.diff(elementary(f), x1).xreplace(point).evalf(30))
        _, (got,) = compiled(x0=point[x0], x1=point[x1])
        assert np.isclose(got, exact, rtol=1e-12, atol=1e-15)


def test_an_op_given_numbers_builds():
    seventh, tenth = sympy.Rational(1, 7), sympy.Rational(1, 10)
    expr = -seventh + sd.leaky_relu(sd.leaky_relu(seventh, tenth), tenth)
    assert float(elementary(expr)) == pytest.approx(0.0)


@pytest.mark.parametrize(
    "f, wrt",
    [
        (x0 * x1, [x0, x0]),
        (sympy.Heaviside(x0) * x0 + sympy.sign(x1) * x1**2, [x1, x0]),
        (sympy.Max(x0, x1) * sympy.Abs(x0), [x0, x1]),
        (sympy.log(sd.sigmoid(x0 * x1)), [x0, x1, x0]),
        # SymPy leaves d sign(u)/dx undone for a u it cannot prove real: the reference
        # differentiates 2*Heaviside(u) - 1 instead, so these are compared, not crashed
        (sympy.sign(x0 / (2 + sympy.cos(x1))) * x0**2, [x0, x1]),
        (sympy.Abs(x0 / (2 + sympy.cos(x1))) * x1, [x1, x0]),
    ],
)
def test_known_cases_through_every_path(f, wrt):
    tally = fuzz.Tally()
    fuzz.check_scalar(f, wrt, lambda n: 0, tally, hessian=True)
    assert tally.compared > 0 and tally.unreferenced == 0


def test_a_derivative_sympy_leaves_undone_is_no_reference_not_a_crash():
    f = sympy.Function("g")(x0)  # SymPy's derivative of an undefined function stays undone
    tally = fuzz.Tally()
    assert fuzz._reference(sympy.diff(f, x0), {x0: 0.5}, tally) is None
    assert tally.unreferenced == 1


def test_a_condition_on_a_softmax_entry_builds():
    # seed 10, case 4195: a Piecewise whose condition holds a Piecewise of log_softmax(1, x0,
    # x0, x0) > 0 is rewritten by SymPy through `as_set` and `periodicity`, which substitutes a
    # function's first argument: the entry index k became a symbol and the op raised TypeError
    e = sd.log_softmax(1, x0, x0, x0)
    inner = sympy.Piecewise((e**2, e > 0), (sympy.sin(e), True))
    f = sympy.Piecewise((inner**2, inner > 0), (sympy.sin(inner), True))
    assert (sd.softmax(1, x0, 2 * x0) > sympy.Rational(1, 2)).as_set().has(sd.softmax)
    assert sd.softmax(1, x0, 1).subs(1, x1) == sd.softmax(1, x0, x1)  # k is no entry
    tally = fuzz.Tally()
    fuzz.check_scalar(f, [x0, x0], lambda n: 0, tally, hessian=True)
    assert tally.compared > 0
