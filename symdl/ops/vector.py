r"""Functions of a whole vector: logsumexp, and softmax and log-softmax entry by entry.

`softmax(z)` of a list or Matrix gives a Matrix whose entry k is `softmax(k, *z)`; each entry is
its own SymPy function, so the chain rule sees $\partial s_k / \partial z_m = s_k(\delta_{km} - s_m)$.
"""

from __future__ import annotations

import sympy
from sympy import Function, Integer, KroneckerDelta, Matrix, MatrixSymbol, OneMatrix, S, exp, log
from sympy.core.function import ArgumentIndexError
from sympy.matrices import MatrixBase
from sympy.matrices.expressions import MatrixExpr

from symdl.core.matrices import hadamard
from symdl.ops.base import MatrixOp, Op, _columns, flatten_vector, is_vector, on_matrices


def _stacked(printer, entries) -> str:
    """NumPy source stacking `entries` (broadcast to one shape) along a new first axis."""
    stack = printer._module_format("numpy.stack")
    broadcast = printer._module_format("numpy.broadcast_arrays")
    return f"{stack}({broadcast}({', '.join(printer._print(e) for e in entries)}))"


def _vector_latex(printer, entries, bracket: bool = True) -> str:
    body = ", ".join(printer._print(e) for e in entries)
    return rf"\left({body}\right)" if bracket and len(entries) > 1 else body


def _axis(cls, axis) -> int | None:
    if axis not in (None, 0, 1):
        raise ValueError(f"{cls.__name__}: axis is 0 (each column) or 1 (each row), not {axis!r}")
    return axis


def _along(cls, args, axis):
    """`cls` of a matrix along an axis, or None for a vector or a list: on a matrix expression
    its matrix form, of each column (axis 0, the default) or each row (axis 1, through the
    transpose); on an explicit Matrix with more than one row and column, or given an axis,
    the same written out, column by column or row by row."""
    if len(args) != 1:
        if any(isinstance(a, MatrixExpr) for a in args):
            raise TypeError(
                f"{cls.__name__}: takes one matrix (and axis=0 or 1); got {len(args)} arguments"
            )
        return None
    (Z,) = args
    if isinstance(Z, MatrixExpr) and not isinstance(Z, MatrixBase):
        return cls.matrix_form(Z.T).T if axis == 1 else cls.matrix_form(Z)
    if not isinstance(Z, MatrixBase) or (axis is None and 1 in Z.shape):
        return None
    if axis == 1:
        return sympy.ImmutableMatrix.vstack(
            *(_along(cls, [Z.row(i).T], 0).T for i in range(Z.rows))
        )
    parts = [cls(list(Z.col(j))) for j in range(Z.cols)]
    parts = [sympy.ImmutableMatrix(p if isinstance(p, MatrixBase) else [[p]]) for p in parts]
    return sympy.ImmutableMatrix.hstack(*parts)


class logsumexp(Op):
    r"""$\operatorname{logsumexp}(z) = \log \sum_i e^{z_i}$, whose gradient is $\operatorname{softmax}(z)$.

    Of a matrix, it is taken over each column (`axis=0`, a row of results) or each row
    (`axis=1`, a column of results)."""

    latex_name = r"\operatorname{logsumexp}"

    def __new__(cls, *args, axis=None, **kwargs):
        on_matrices(cls, [a for a in args if not isinstance(a, MatrixExpr)])  # refuses text
        if (along := _along(cls, args, _axis(cls, axis))) is not None:
            return along
        if len(args) == 1 and is_vector(args[0]):
            args = flatten_vector(args[0], "logsumexp")
        return Function.__new__(cls, *args, **kwargs)

    def definition(self):
        return log(sympy.Add(*(exp(z) for z in self.args)))

    def fdiff(self, argindex=1):
        if not 1 <= argindex <= len(self.args):
            raise ArgumentIndexError(self, argindex)
        return softmax(argindex - 1, *self.args)

    @classmethod
    def example(cls):
        z = sympy.symbols("z0:3", real=True)
        return cls(*z), {zi: (-3.0, 3.0) for zi in z}

    def _latex(self, printer, exp=None):
        tex = rf"{self.latex_name}\left({_vector_latex(printer, self.args, bracket=False)}\right)"
        return rf"{tex}^{{{exp}}}" if exp is not None else tex

    def _numpycode(self, printer):  # shifts by the max: finite for logits of +-1000
        return self._np(printer, "scipy.special.logsumexp", _stacked(printer, self.args), "axis=0")


class _VectorEntry(Op):
    """Entry `k` (the first argument, from 0) of a vector function of `z` (the rest)."""

    def __new__(cls, *args, axis=None, **kwargs):
        on_matrices(cls, [a for a in args if not isinstance(a, MatrixExpr)])  # refuses text
        if (along := _along(cls, args, _axis(cls, axis))) is not None:
            return along
        if len(args) == 1 and is_vector(args[0]):
            z = flatten_vector(args[0], cls.__name__)
            return Matrix([cls(k, *z) for k in range(len(z))])
        if len(args) == 2 and is_vector(args[0]) and isinstance(args[1], int | Integer):
            z, k = flatten_vector(args[0], cls.__name__), int(args[1])  # (z, k): entry k of z
            if not 0 <= k < len(z):
                raise ValueError(f"{cls.__name__}: entry {k} of a vector of {len(z)} entries")
            return cls(k, *z)
        if len(args) < 2 or not (
            isinstance(args[0], int | Integer) and 0 <= args[0] < len(args) - 1
        ):
            raise TypeError(
                f"{cls.__name__}: call it on a vector, {cls.__name__}([z0, z1, ...]), "
                f"for entry k as {cls.__name__}(z, k) or {cls.__name__}(k, z0, z1, ...), or on "
                f"a matrix with axis=0 (columns) or 1 (rows); got {args!r}"
            )
        return Function.__new__(cls, *args, **kwargs)

    @property
    def index(self) -> int:
        return int(self.args[0])

    @property
    def vector(self) -> tuple:
        return self.args[1:]

    def _eval_subs(self, old, new):
        """The entry index is structural, like a Sum's bound variable: substituting for the
        number k reaches the vector's entries, never k itself. SymPy's `periodicity` (behind
        `(softmax(1, x, x) > 0).as_set()` and so a Piecewise's condition) substitutes a
        function's first argument, and a symbol for k is no entry index."""
        if old == self.args[0]:
            return self.func(self.args[0], *(z._subs(old, new) for z in self.vector))
        return None

    @classmethod
    def example(cls):
        z = sympy.symbols("z0:3", real=True)
        return cls(1, *z), {zi: (-3.0, 3.0) for zi in z}

    def _latex(self, printer, exp=None):
        tex = rf"{self.latex_name}\left({_vector_latex(printer, self.vector, bracket=False)}\right)_{{{self.index}}}"
        return rf"{tex}^{{{exp}}}" if exp is not None else tex

    def _latex_args(self):
        return self.vector


class softmax(_VectorEntry):
    r"""Entry $k$ of $\operatorname{softmax}(z)_k = e^{z_k} / \sum_i e^{z_i}$."""

    latex_name = r"\operatorname{softmax}"

    def definition(self):
        return exp(self.vector[self.index]) / sympy.Add(*(exp(z) for z in self.vector))

    def fdiff(self, argindex=2):
        m = argindex - 2
        if not 0 <= m < len(self.vector):
            raise ArgumentIndexError(self, argindex)
        return self * (KroneckerDelta(self.index, m) - softmax(m, *self.vector))

    def numeric_form(self):
        return exp(self.vector[self.index] - logsumexp(*self.vector))

    def _numpycode(self, printer):
        return f"({printer._print(self.numeric_form())})"


class log_softmax(_VectorEntry):
    r"""Entry $k$ of $\log \operatorname{softmax}(z)_k = z_k - \operatorname{logsumexp}(z)$."""

    latex_name = r"\log\operatorname{softmax}"

    @classmethod
    def matrix_form(cls, Z):
        return Z - sympy.OneMatrix(Z.shape[0], 1) * MatLogSumExp(Z)

    def definition(self):
        return self.vector[self.index] - log(sympy.Add(*(exp(z) for z in self.vector)))

    def fdiff(self, argindex=2):
        m = argindex - 2
        if not 0 <= m < len(self.vector):
            raise ArgumentIndexError(self, argindex)
        return KroneckerDelta(self.index, m) - softmax(m, *self.vector)

    def numeric_form(self):
        return self.vector[self.index] - logsumexp(*self.vector)

    def _numpycode(self, printer):
        return f"({printer._print(self.numeric_form())})"


# ---------------------------------------------------------------- matrix forms (one column each)


class MatSoftmax(MatrixOp):
    r"""Softmax of each column: $\operatorname{softmax}(Z)_{ij} = e^{Z_{ij}} / \sum_k e^{Z_{kj}}$."""

    name = "softmax"
    scalar = softmax
    latex_name = r"\operatorname{softmax}"

    @property
    def shape(self):
        return self.args[0].shape

    def explicit(self, Z):
        columns = [softmax(col) for col in _columns(Z)]
        return sympy.ImmutableMatrix.hstack(*columns)

    def _entry(self, i, j, **kwargs):
        return softmax(int(i), *[self.args[0][k, j] for k in range(self.args[0].shape[0])])

    def vjp(self, index, G, out):
        k = self.shape[0]  # S ∘ (G − 1 1ᵀ(G ∘ S)): the softmax Jacobian, column by column
        return hadamard(out, G - OneMatrix(k, k) * hadamard(G, out))

    @classmethod
    def example(cls):
        Z, C = MatrixSymbol("Z", 3, 2), MatrixSymbol("C", 3, 2)
        return sympy.Trace(C.T * cls(Z)), [Z], {Z: (-2.0, 2.0), C: (-1.0, 1.0)}

    def _numpycode(self, printer):
        return f"{printer._module_format('scipy.special.softmax')}({printer._print(self.args[0])}, axis=0)"


class MatLogSumExp(MatrixOp):
    r"""Log-sum-exp of each column, a row vector: $\log \sum_k e^{Z_{kj}}$."""

    name = "logsumexp"
    scalar = logsumexp
    latex_name = r"\operatorname{logsumexp}"

    @property
    def shape(self):
        return (S.One, self.args[0].shape[1])

    def explicit(self, Z):
        return sympy.ImmutableMatrix([[logsumexp(col) for col in _columns(Z)]])

    def _entry(self, i, j, **kwargs):
        return logsumexp(*[self.args[0][k, j] for k in range(self.args[0].shape[0])])

    def vjp(self, index, G, out):
        Z = self.args[0]
        return hadamard(MatSoftmax(Z), OneMatrix(Z.shape[0], 1) * G)

    @classmethod
    def example(cls):
        Z, C = MatrixSymbol("Z", 3, 2), MatrixSymbol("C", 1, 2)
        return sympy.Trace(C.T * cls(Z)), [Z], {Z: (-2.0, 2.0), C: (-1.0, 1.0)}

    def _numpycode(self, printer):
        lse = printer._module_format("symdl.ops.runtime.logsumexp")
        return f"{lse}({printer._print(self.args[0])}, axis=0)"
