"""Everything symdl prints reads back (issue 10): every declared op's example, printed by
sympy.latex and by str, parses to an expression equal to it; the gradient lines of the gallery's
derivations parse given the gallery's symbols."""

from __future__ import annotations

import random
import re

import gallery
import pytest
import sympy

from symdl.core.matrices import elementwise
from symdl.ops import declared
from symdl.parsing import parse
from symdl.parsing.namespace import namespace_of
from symdl.render.latex import latex


def _numerically_equal(a, b, ranges) -> bool:
    rng = random.Random(0)
    symbols = sorted(sympy.sympify(a).free_symbols | sympy.sympify(b).free_symbols, key=str)
    for _ in range(5):
        point = {
            s: sympy.Rational(rng.uniform(*ranges.get(s, (0.2, 0.9)))).limit_denominator(1000)
            for s in symbols
        }
        x, y = (complex(sympy.sympify(e).xreplace(point).evalf(30)) for e in (a, b))
        if abs(x - y) > 1e-12 * max(1.0, abs(x)):
            return False
    return True


@pytest.mark.parametrize("form", ["latex", "str"])
@pytest.mark.parametrize("name", sorted(declared()))
def test_every_op_reads_back_what_it_prints(name, form):
    expr, ranges = declared()[name].example()
    text = sympy.latex(expr) if form == "latex" else str(expr)
    parsed = parse(text, namespace_of(expr))
    assert parsed == expr or _numerically_equal(parsed, expr, ranges), (text, parsed)


_GRADIENT_LINE = re.compile(
    r"^\s*(?:\\frac\{\\partial L\}\{\\partial [^}]*\}|\\bar\{[^}]*\}(?:_\{[^}]*\})?"
    r"(?:\^\{[^}]*\})?)\s*&=\s*(.*?)\s*(?:\\\\)?\s*$"
)
# Not read yet: the notation of the matrix ops convolution, correlation, channel sum and
# pooling route (conv_{full,s=2,p=1}, ...), and names defined only in the published forms
# after a derivation (\hat{G}, \hat{X}, the s of the Gaussian NLL).
_READ_AT_LEAST = 105
_STEPS_READ_AT_LEAST = 241
# str() prints an all-ones matrix as 1 and a 1x1 identity as I (SymPy's printer), which no
# reader can tell from the number: the bias b 1ᵀ of a layer reads as "b*1"
_STR_STEPS_READ_AT_LEAST = 235


def test_the_gallery_gradient_lines_read_back():
    read, failed = 0, []
    for build in gallery.GALLERY:
        entry = build()
        derivation = entry.derivation
        if derivation is None:
            continue
        names = namespace_of(*[part for s in derivation.steps for part in (s.name, s.rhs)])
        for line in entry.to_latex().splitlines():
            m = _GRADIENT_LINE.match(line)
            if not m:
                continue
            try:
                parse(m[1], names)
                read += 1
            except ValueError as error:
                failed.append((build.slug, m[1][:60], str(error)[:80]))
    assert read >= _READ_AT_LEAST, failed


def test_the_gallery_derivation_steps_read_back_as_printed():
    read, read_str, failed = 0, 0, []
    for build in gallery.GALLERY:
        derivation = build().derivation
        if derivation is None:
            continue
        names = namespace_of(*[part for s in derivation.steps for part in (s.name, s.rhs)])
        for step in derivation.steps:
            try:
                parse(latex(step.rhs), names)
                read += 1
            except ValueError as error:
                failed.append((build.slug, latex(step.rhs)[:60], str(error)[:80]))
            try:
                parse(str(step.rhs), names)
                read_str += 1
            except ValueError as error:
                failed.append((build.slug, str(step.rhs)[:60], str(error)[:80]))
    assert read >= _STEPS_READ_AT_LEAST and read_str >= _STR_STEPS_READ_AT_LEAST, failed


def test_entrywise_brackets_and_indicators_read_back_equal():
    P, Z = sympy.MatrixSymbol("P", 3, 2), sympy.MatrixSymbol("Z", 3, 2)
    names = namespace_of(P, Z)
    for e in (
        elementwise(lambda q: 1 / (1 + sympy.exp(-q)), Z),
        elementwise(lambda q: q**2 * sympy.exp(q), Z),
        elementwise(lambda q: 1 / q, P),
        elementwise(lambda q: sympy.Heaviside(q, 0), Z),
        sympy.HadamardProduct(elementwise(lambda q: sympy.Heaviside(q, 0), Z), P),
        sympy.HadamardPower(P, 3),
    ):
        for text in (latex(e), str(e)):
            back = parse(text, names)
            difference = sympy.Matrix(back.as_explicit()) - sympy.Matrix(e.as_explicit())
            assert difference.applyfunc(sympy.simplify).is_zero_matrix, text
