"""The claim language people write (issue 10): transposes, inverses, trace and det, document
wrappers ($...$, \\[...\\]) and left sides (\\nabla_X f =, \\frac{\\partial f}{\\partial X} =),
1x1 factors on either side, sech; and the more relevant error when both readers fail."""

import pytest
import sympy

import symdl as sd
from symdl.parsing.errors import ParseError

X = sympy.MatrixSymbol("X", 3, 3)
a, b = sympy.MatrixSymbol("a", 3, 1), sympy.MatrixSymbol("b", 3, 1)
F = (a.T * X * b)[0, 0]
z = sympy.Symbol("z", real=True)

SPELLINGS = [
    "a*b^T",
    "a b^T",
    "a*b.T",
    r"a b^{T}",
    r"a b^\top",
    r"a b^\mathsf{T}",
    r"$a b^\top$",
    r"$$a b^\top$$",
    r"\[a b^\top\]",
    r"\nabla_X f = a b^\top",
    r"\frac{\partial f}{\partial X} = a b^\top",
]


@pytest.mark.parametrize("claim", SPELLINGS)
def test_spellings_of_an_outer_product(claim):
    assert sd.verify(F, X, claim).status == "EQUAL"


def test_inverse_trace_det_and_sech():
    logdet = sympy.log(sympy.Determinant(X))
    assert sd.verify(logdet, X, "inv(X).T")
    assert sd.verify(logdet, X, r"(X^{-1})^T")
    assert sd.verify(sympy.Trace(X) ** 2, X, "2*trace(X)*eye(3)")
    assert sd.verify(sympy.Trace(X) ** 2, X, "2*tr(X)*eye(3)")
    assert sd.verify(sympy.tanh(z), z, "sech(z)**2")


def test_one_by_one_factors_act_as_scalars_on_either_side():
    w, x = sympy.MatrixSymbol("w", 3, 1), sympy.MatrixSymbol("x", 3, 1)
    f = ((w.T * x)[0, 0] - 1) ** 2
    for claim in ("2*x*(w.T*x - 1)", "2*(w.T*x - 1)*x", r"2 (w^T x - 1) x", r"2 x (w^T x - 1)"):
        assert sd.verify(f, w, claim), claim
    assert not sd.verify(f, w, "x*(w.T*x - 1)")


def test_a_shape_error_is_shown_rather_than_a_syntax_error():
    w, x = sympy.MatrixSymbol("w", 3, 1), sympy.MatrixSymbol("W", 2, 3)
    with pytest.raises(ParseError, match="cannot multiply"):
        sd.verify((x * w).T * (x * w), w, "2 w w")
