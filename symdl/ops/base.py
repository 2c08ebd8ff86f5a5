"""The base class of symdl's deep-learning functions and the registry of declared ops.

An op states its mathematics once: its elementary SymPy form (`definition`), its local
derivative (`fdiff`), its notation (`_latex`) and its NumPy form (`_numpycode`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import sympy
from sympy import Basic, Expr, Function, Matrix, MatrixBase
from sympy.core.logic import fuzzy_and
from sympy.matrices.expressions import MatrixExpr, MatrixSymbol

from symdl.core.matrices import ENTRY, _raised, elementwise

_DECLARED: dict[str, type[Op]] = {}


class Op(Function):
    """A deep-learning function that SymPy differentiates, prints and compiles.

    Subclasses give `definition()` (the same function in elementary SymPy terms, the
    reference every test compares against), `fdiff`, `latex_name` and `_numpycode`.
    """

    latex_name: ClassVar[str] = ""
    # other names the parser accepts for it ("σ", "ReLU"); its class name always works
    aliases: ClassVar[tuple[str, ...]] = ()
    # the weight initialiser a layer with this activation draws from: "he" or "glorot"
    init: ClassVar[str] = "glorot"
    # its form for matrix arguments: set by a MatrixOp or MatrixLoss declaring `scalar = cls`
    matrix_class: ClassVar[type | None] = None

    def __new__(cls, *args, **kwargs):
        return on_matrices(cls, args) or Function.__new__(cls, *args, **kwargs)

    @classmethod
    def matrix_form(cls, *args):
        """This op applied to matrix arguments: its matrix class, else entry by entry on the
        first argument."""
        if cls.matrix_class is not None:
            return cls.matrix_class(*args)
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
        # SymPy passes the arguments rewritten already; the definition may hold ops of its own
        return elementary(self.func(*args).definition())

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
                "SymPy objects, or parse text safely with symdl.parsing.parse(text)"
            )
    if any(isinstance(a, MatrixExpr) for a in args):
        return cls.matrix_form(*args)
    return None


def elementary(expr: Basic) -> Basic:
    """`expr` with every symdl op replaced by its elementary definition, recursively (an op
    inside an op's definition too) until none is left: the reference `sympy.diff` and `evalf`
    work on by SymPy's own rules, never by a derivative symdl declared.

    Each distinct subexpression is expanded once, so a graph with shared parts costs its
    size, not the size of its tree. `expr.rewrite("elementary")` gives the same result but
    walks the tree. Matrix ops (`MatrixOp`, `MatrixLoss`) have no definition without sizes;
    they stay (`symdl.core.explicit.expand` writes sized ones out entry by entry).

    >>> x = sympy.Symbol("x", real=True)
    >>> from symdl.ops import relu, sigmoid
    >>> elementary(sigmoid(relu(x)) + relu(x))
    Max(0, x) + 1/(1 + exp(-Max(0, x)))
    """
    root = sympy.sympify(expr)  # a mutable Matrix becomes immutable, and back at the end
    done: dict[Basic, Basic] = {}
    definitions: dict[Basic, Basic] = {}  # an op -> its definition on expanded arguments
    stack = [root]
    while stack:
        e = stack[-1]
        if e in done:
            stack.pop()
        elif e in definitions:  # its definition is expanded: that is its value
            stack.pop()
            done[e] = done[definitions[e]]
        elif pending := [a for a in e.args if a not in done]:
            stack.extend(pending)
        else:
            args = tuple(done[a] for a in e.args)
            rebuilt = e.func(*args) if args != e.args else e
            if isinstance(rebuilt, Op):
                definition = rebuilt.definition()
                if definition == rebuilt:
                    raise ValueError(f"{type(rebuilt).__name__}: its definition is itself")
                definitions[e] = definition
                stack.append(definition)
            else:
                stack.pop()
                done[e] = rebuilt
    result = done[root]
    return type(expr)(result) if isinstance(expr, MatrixBase) and expr is not root else result


def declared() -> dict[str, type[Op]]:
    """Every op declared in symdl, by name (a new op appears here by being declared)."""
    return dict(_DECLARED)


def activations() -> dict[str, type[Op]]:
    """The declared ops a layer can use as its activation: elementwise (no matrix form of
    their own) and callable on one argument (any others have defaults)."""
    x = sympy.Symbol("x", real=True)
    return {name: cls for name, cls in _DECLARED.items() if _unary(cls, x)}


def _unary(cls: type[Op], x: sympy.Symbol) -> bool:
    if cls.matrix_class is not None:
        return False
    try:
        result = cls(x)
    except (TypeError, ValueError):
        return False
    return isinstance(result, cls) and all(a.is_number for a in result.args[1:])


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


def _columns(Z) -> list[list]:
    rows, cols = Z.shape
    return [[Z[i, j] for i in range(rows)] for j in range(cols)]


def _explicit(*args) -> bool:
    """Whether every matrix argument is an explicit Matrix (scalar parameters aside)."""
    matrices = [a for a in args if isinstance(a, MatrixBase | MatrixExpr)]
    return bool(matrices) and all(isinstance(a, MatrixBase) for a in matrices)


class MatrixOp(MatrixExpr):
    """A matrix-valued symdl op of matrix arguments."""

    name: ClassVar[str] = ""
    latex_name: ClassVar[str] = ""

    # the scalar op this is the matrix form of: declaring it pairs the two
    scalar: ClassVar[type[Op] | None] = None
    # whether the op written out on explicit symbolic entries has a closed form (the tests
    # compare it with the scalar path); spectral ops have none and say so
    has_entrywise_form: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "scalar" in cls.__dict__ and cls.scalar is not None:
            cls.scalar.matrix_class = cls

    def __new__(cls, *args):
        return MatrixExpr.__new__(cls, *map(sympy.sympify, args))

    def doit(self, **hints):
        args = [a.doit(**hints) for a in self.args] if hints.get("deep", True) else self.args
        if _explicit(*args):
            return self.explicit(*args)
        return self.func(*args)

    def _latex(self, printer, exp=None):
        return _raised(self._latex_body(printer), exp)

    def _latex_body(self, printer) -> str:
        """The op's own notation; `_latex` adds a power around it."""
        body = ", ".join(printer._print(a) for a in self.args)
        return rf"{self.latex_name}\left({body}\right)"

    def _sympystr(self, printer):
        return f"{self.name}({', '.join(printer._print(a) for a in self.args)})"


class MatrixLoss(Expr):
    """A scalar symdl op of matrix arguments (a loss over a batch, a penalty of a matrix)."""

    name: ClassVar[str] = ""
    latex_name: ClassVar[str] = ""
    is_commutative = True
    is_real = True

    # the scalar op this is the matrix form of: declaring it pairs the two
    scalar: ClassVar[type[Op] | None] = None
    # whether the op written out on explicit symbolic entries has a closed form (the tests
    # compare it with the scalar path); spectral ops have none and say so
    has_entrywise_form: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "scalar" in cls.__dict__ and cls.scalar is not None:
            cls.scalar.matrix_class = cls

    def __new__(cls, *args):
        args = list(map(sympy.sympify, args))
        shapes = [a.shape for a in args if isinstance(a, MatrixExpr | MatrixBase)]
        if any(s != shapes[0] for s in shapes):
            raise ValueError(f"{cls.name}: arguments have shapes {shapes}; they must be equal")
        return Expr.__new__(cls, *args)

    @classmethod
    def example(cls):
        """A loss on fresh 3x2 matrices, the matrices to differentiate by, and sample ranges."""
        P, Y = MatrixSymbol("P", 3, 2), MatrixSymbol("Y", 3, 2)
        return cls(P, Y), [P, Y], {P: (-2.0, 2.0), Y: (-2.0, 2.0)}

    def doit(self, **hints):
        args = [a.doit(**hints) for a in self.args] if hints.get("deep", True) else self.args
        if _explicit(*args):
            return self.explicit(*args)
        return self.func(*args)

    def _eval_derivative(self, s):
        raise TypeError(f"{self.name}: differentiate with symdl (sd.grad), which uses its vjp")

    @property
    def count(self):
        rows, cols = self.args[0].shape
        return rows * cols

    def _latex(self, printer, exp=None):
        return _raised(self._latex_body(printer), exp)

    def _latex_body(self, printer) -> str:
        """The op's own notation; `_latex` adds a power around it."""
        body = ", ".join(printer._print(a) for a in self.args)
        return rf"{self.latex_name}\left({body}\right)"

    def _sympystr(self, printer):
        return f"{self.name}({', '.join(printer._print(a) for a in self.args)})"
