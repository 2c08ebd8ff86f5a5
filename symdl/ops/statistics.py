"""Statistics of a batch as matrix ops: means over the batch or the features, and the
per-map sums and spreads that batch normalisation of images needs."""

from __future__ import annotations

import sympy
from sympy import ImmutableMatrix, Integer
from sympy.matrices.expressions import MatrixSymbol

from symdl.ops.base import MatrixOp
from symdl.ops.window import _UNIT, _example


class map_reduce(MatrixOp):
    r"""Per map: the rows of each of the $C$ maps of $A$ (C·P x M, P positions per map)
    summed, giving C x M; its adjoint is map_repeat."""

    name = "map_reduce"
    latex_name = r"\Sigma_{\text{positions}}"

    @property
    def shape(self):
        A, P = self.args
        return (A.shape[0] // P, A.shape[1])

    @classmethod
    def example(cls):
        A = MatrixSymbol("A", 6, 2)
        return _example(cls(A, Integer(3)), wrt=[A])

    def explicit(self, A, P):
        P = int(P)
        return ImmutableMatrix(
            A.shape[0] // P,
            A.shape[1],
            lambda c, n: sympy.Add(*(A[c * P + p, n] for p in range(P))),
        )

    def vjp(self, index, G, out):
        return map_repeat(G, self.args[1])

    def _latex_body(self, printer):
        tex = rf"{self.latex_name}\left({printer._print(self.args[0])}\right)"
        return tex

    def _numpycode(self, printer):
        A, P = printer._print(self.args[0]), int(self.args[1])
        C = self.shape[0]
        return f"({A}).reshape({C}, {P}, -1).sum(axis=1)"


class map_repeat(MatrixOp):
    r"""Per map: each row of $v$ (C x M) repeated for the P positions of its map, giving
    C·P x M (a per-channel value spread over an image); its adjoint is map_reduce."""

    name = "map_repeat"
    latex_name = r"\operatorname{expand}"

    @property
    def shape(self):
        v, P = self.args
        return (v.shape[0] * P, v.shape[1])

    @classmethod
    def example(cls):
        v = MatrixSymbol("v", 2, 2)
        return _example(cls(v, Integer(3)), wrt=[v])

    def explicit(self, v, P):
        P = int(P)
        return ImmutableMatrix(v.shape[0] * P, v.shape[1], lambda r, n: v[r // P, n])

    def vjp(self, index, G, out):
        return map_reduce(G, self.args[1])

    _latex_body = map_reduce._latex_body

    def _numpycode(self, printer):
        v, P = printer._print(self.args[0]), int(self.args[1])
        return f"{printer._module_format('numpy.repeat')}({v}, {P}, axis=0)"


class mean(MatrixOp):
    r"""The mean of each row (axis 1: over the batch, a column vector) or of each column
    (axis 0: over the features, a row vector) of a matrix."""

    name = "mean"

    @property
    def axis(self) -> int:
        return int(self.args[1])

    @property
    def shape(self):
        rows, cols = self.args[0].shape
        return (rows, sympy.S.One) if self.axis == 1 else (sympy.S.One, cols)

    @classmethod
    def example(cls):
        A, R, S = MatrixSymbol("A", 3, 2), MatrixSymbol("R", 3, 1), MatrixSymbol("S", 1, 2)
        f = sympy.Trace(R.T * cls(A, Integer(1))) + sympy.Trace(S.T * cls(A, Integer(0)))
        return f, [A], {A: _UNIT, R: _UNIT, S: _UNIT}

    def explicit(self, A, axis):
        if int(axis) == 1:
            return ImmutableMatrix([[sympy.Add(*A.row(i)) / A.shape[1]] for i in range(A.shape[0])])
        return ImmutableMatrix([[sympy.Add(*A.col(j)) / A.shape[0] for j in range(A.shape[1])]])

    def vjp(self, index, G, out):
        from sympy.matrices.expressions import OneMatrix

        from symdl.core.matrices import scale

        rows, cols = self.args[0].shape
        if self.axis == 1:  # every entry of a row shares its mean: G 1ᵀ / N
            return scale(1 / cols, G * OneMatrix(1, cols))
        return scale(1 / rows, OneMatrix(rows, 1) * G)

    def as_product(self):
        r"""The mean as the product it is: $\frac{1}{N} A \mathbf{1}$ (axis 1) or
        $\frac{1}{d} \mathbf{1}^T A$ (axis 0), for the simplifier of sums."""
        from sympy.matrices.expressions import OneMatrix

        from symdl.core.matrices import matmul

        A = self.args[0]
        rows, cols = A.shape
        if self.axis == 1:
            return matmul(1 / cols, A, OneMatrix(cols, 1))
        return matmul(1 / rows, OneMatrix(1, rows), A)

    def _latex_body(self, printer):
        over = r"\text{batch}" if self.axis == 1 else r"\text{features}"
        tex = rf"\operatorname{{mean}}_{{{over}}}\left({printer._print(self.args[0])}\right)"
        return tex

    def _sympystr(self, printer):
        return f"mean({printer._print(self.args[0])}, axis={self.axis})"

    def _numpycode(self, printer):
        A = self.args[0]
        if self.axis == 1 and hasattr(printer, "row_sum"):  # mean(C ∘ C): a dot per row
            dots = printer.row_sum(A, fused_only=True)
            if dots is not None:
                return f"({dots}/{printer._print(A.shape[1])})"
        return f"({printer._print(A)}).mean(axis={self.axis}, keepdims=True)"
