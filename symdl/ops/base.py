"""The base class of symdl's deep-learning functions and the registry of declared ops.

An op states its mathematics once: its elementary SymPy form (`definition`), its local
derivative (`fdiff`), its notation (`_latex`) and its NumPy form (`_numpycode`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import sympy
from sympy import Function, Matrix
from sympy.core.logic import fuzzy_and
from sympy.matrices.expressions import MatrixExpr

_DECLARED: dict[str, type[Op]] = {}


class Op(Function):
    """A deep-learning function that SymPy differentiates, prints and compiles.

    Subclasses give `definition()` (the same function in elementary SymPy terms, the
    reference every test compares against), `fdiff`, `latex_name` and `_numpycode`.
    """

    latex_name: ClassVar[str] = ""

    def __new__(cls, *args, **kwargs):
        return on_matrices(cls, args) or Function.__new__(cls, *args, **kwargs)

    @classmethod
    def matrix_form(cls, *args):
        """This op applied to matrix arguments; by default entry by entry on the first."""
        from symdl.ops.matrix import ENTRY, elementwise

        return elementwise(sympy.Lambda(ENTRY, cls(ENTRY, *args[1:])), args[0])

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if not cls.__name__.startswith("_"):
            _DECLARED[cls.__name__] = cls

    @classmethod
    def example(cls) -> tuple[sympy.Expr, dict[sympy.Symbol, tuple[float, float]]]:
        """An instance on fresh symbols and the interval each symbol is sampled from."""
        x = sympy.Symbol("x", real=True)
        return cls(x), {x: (-3.0, 3.0)}

    def _eval_evalf(self, prec):
        return self.definition()._eval_evalf(prec)

    def _eval_rewrite_as_elementary(self, *args, **kwargs):
        return self.definition()

    def _eval_is_real(self):
        return fuzzy_and(a.is_real for a in self.args)

    def _latex(self, printer, exp=None):
        body = ", ".join(printer._print(a) for a in self._latex_args())
        tex = rf"{self.latex_name}\left({body}\right)"
        return rf"{tex}^{{{exp}}}" if exp is not None else tex

    def _latex_args(self):
        return self.args

    def _np(self, printer, name: str, *args) -> str:
        """Format a call of NumPy or SciPy function `name` on printed `args`."""
        printed = ", ".join(a if isinstance(a, str) else printer._print(a) for a in args)
        return f"{printer._module_format(name)}({printed})"


def on_matrices(cls, args):
    """`cls.matrix_form(*args)` when an argument is a matrix expression (a MatrixSymbol,
    a product of them, ...), else None: `sd.sigmoid(Z)` acts on each entry of Z.

    Every op's constructor starts here, so it also refuses text, which SymPy would sympify,
    that is, run as code."""
    for position, arg in enumerate(args):
        if isinstance(arg, str):
            raise TypeError(
                f"{cls.__name__}: argument {position + 1} is the string {arg[:40]!r}; give "
                "SymPy objects, or parse text safely with symdl.parse.parse(text)"
            )
    if any(isinstance(a, MatrixExpr) for a in args):
        return cls.matrix_form(*args)
    return None


def declared() -> dict[str, type[Op]]:
    """Every op declared in symdl, by name (a new op appears here by being declared)."""
    return dict(_DECLARED)


def flatten_vector(arg, what: str) -> list:
    """The entries of a vector given as a list, tuple or one-row/one-column Matrix."""
    if isinstance(arg, Matrix | sympy.ImmutableMatrix):
        if 1 not in arg.shape:
            raise ValueError(f"{what}: expected a vector, got a matrix of shape {arg.shape}")
        return list(arg)
    if isinstance(arg, Sequence) and not isinstance(arg, str):
        return list(arg)
    return [arg]


def is_vector(arg) -> bool:
    return isinstance(arg, Matrix | sympy.ImmutableMatrix) or (
        isinstance(arg, Sequence) and not isinstance(arg, str)
    )
