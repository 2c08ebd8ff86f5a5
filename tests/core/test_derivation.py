"""Derivation directly: its gradient in named steps, its closed form in the user's symbols
(checked against sympy.diff), the text it prints and the values it substitutes."""

from __future__ import annotations

import sympy

import symdl as sd
from symdl.core.backward import backward
from symdl.core.program import build_program

from ..conftest import expand_ops

w, x, b, y = sympy.symbols("w x b y", real=True)
F = (sd.sigmoid(w * x + b) - y) ** 2


def _derivation():
    return backward(build_program([F], names={w * x + b: "z"}), [w, b])


def test_the_gradient_is_written_in_the_named_steps():
    gradient = _derivation().gradient
    assert all("bar_z" in {str(s) for s in g.free_symbols} for g in gradient)


def test_the_closed_form_is_sympys_derivative():
    for g, v in zip(_derivation().closed_form(), [w, b], strict=True):
        assert sympy.simplify(expand_ops(g - sympy.diff(F, v))) == 0


def test_substituted_maps_every_step_and_adjoint_to_the_users_symbols():
    derivation = _derivation()
    values = derivation.substituted()
    for step in derivation.steps:
        assert values[step.name].free_symbols <= {w, x, b, y}


def test_the_text_lists_forward_then_adjoint_steps():
    lines = str(_derivation()).splitlines()
    assert lines[0] == "z = b + w*x"
    assert lines[-2:] == ["bar_w = bar_z*x", "bar_b = bar_z"]


def test_gradient_entries_follow_wrt():
    derivation = backward(build_program([w * x]), [x, w, x])
    assert [str(g) for g in derivation.gradient_entries] == ["bar_x", "bar_w", "bar_x"]
