"""Diagnosis of a wrong claim (issue 10, part): a constant factor or a wrong sign is named in
the verdict's details; a claim wrong otherwise gets no diagnosis."""

import sympy

import symdl as sd

x, y = sympy.symbols("x y", real=True)
W = sympy.MatrixSymbol("W", 3, 3)
a, b = sympy.MatrixSymbol("a", 3, 1), sympy.MatrixSymbol("b", 3, 1)


def test_a_constant_factor_is_named():
    assert "the claim is 2x the derivative" in sd.verify(x**2 * y, x, "4*x*y").details
    assert "the claim is 1/2x the derivative" in sd.verify(x**2 * y, x, "x*y").explain()
    f = (a.T * W * b)[0, 0] ** 2
    verdict = sd.verify(f, W, "4*(a.T*W*b)*a*b.T")
    assert verdict.status == "DIFFERENT" and "2x the derivative" in verdict.details


def test_a_wrong_sign_is_named():
    assert "wrong sign" in sd.verify(sympy.exp(-x), x, "exp(-x)").details


def test_no_diagnosis_for_other_mistakes():
    assert "Diagnosis" not in sd.verify(x**2 * y, x, "x*y + 1").details
