"""backward directly: one adjoint per active step, gathered over every use, in reverse order;
the gradient of each wrt (repeated, absent); a missing rule named."""

from __future__ import annotations

import pytest
import sympy
from sympy import Symbol, exp, sin, tanh

from symdl.core.backward import UnsupportedOp, backward
from symdl.core.derivation import adjoint_symbol
from symdl.core.program import build_program

w, x, b, y = sympy.symbols("w x b y", real=True)


def test_adjoints_run_from_the_output_back_to_the_leaves():
    program = build_program([tanh(w * x + b)], names={w * x + b: "z"})
    derivation = backward(program, [w, b])
    z = Symbol("z", real=True)
    assert [a.primal for a in derivation.adjoints] == [z, w, b]
    assert derivation.locals[program.outputs[0], z] == 1 - program.outputs[0] ** 2


def test_a_fan_out_gathers_one_term_per_use():
    v = exp(w)
    program = build_program([v * sin(v)])
    derivation = backward(program, [w])
    shared = next(s.name for s in program.steps if s.rhs == exp(w))
    step = next(a for a in derivation.adjoints if a.primal == shared)
    assert len(step.uses) == 2  # the product and the sine both read it
    closed = derivation.closed_form()[0]
    assert sympy.simplify(closed - sympy.diff(exp(w) * sin(exp(w)), w)) == 0


def test_only_the_chosen_output_is_differentiated():
    program = build_program([x * y, x + y])
    assert backward(program, [x, y], output=0).closed_form() == [y, x]
    assert backward(program, [x, y], output=1).closed_form() == [1, 1]


def test_an_absent_wrt_gets_zero_and_a_repeated_one_its_place_again():
    program = build_program([x**2])
    assert backward(program, [y, x, x]).closed_form() == [0, 2 * x, 2 * x]


def test_adjoint_symbols_stand_for_their_primal():
    assert adjoint_symbol(x).primal == x
    M = sympy.MatrixSymbol("M", 2, 3)
    assert adjoint_symbol(M).shape == (2, 3)


def test_a_function_without_a_rule_is_named():
    f = sympy.Function("f")
    program = build_program([f(w * x)])
    with pytest.raises(UnsupportedOp, match="'f'"):
        backward(program, [w])
