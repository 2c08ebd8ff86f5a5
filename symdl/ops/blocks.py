r"""Row blocks of a batch matrix: one step $x_t$ of a sequence stored as rows $tF..(t+1)F$ of
each example's column, the rows stacked back into one matrix (concatenation of features), and
the zero padding that is the adjoint of taking rows."""

from __future__ import annotations

import sympy
from sympy import ImmutableMatrix, Integer, MatrixSymbol

from symdl.ops.base import MatrixOp


def _trace_example(expr, wrt):
    C = MatrixSymbol("C", *expr.shape)
    return sympy.Trace(C.T * expr), wrt, {**{M: (-2.0, 2.0) for M in wrt}, C: (-1.0, 1.0)}


class row_block(MatrixOp):
    r"""Rows $a$ to $b - 1$ of $X$ (all columns): $X_{[a:b]}$; its adjoint pads with zeros."""

    name = "row_block"

    @property
    def shape(self):
        X, a, b = self.args
        return (b - a, X.shape[1])

    @classmethod
    def example(cls):
        X = MatrixSymbol("X", 5, 2)
        return _trace_example(cls(X, Integer(1), Integer(3)), [X])

    def explicit(self, X, a, b):
        return ImmutableMatrix(X[int(a) : int(b), :])

    def _entry(self, i, j, **kwargs):
        return self.args[0][i + self.args[1], j]

    def vjp(self, index, G, out):
        X, a, _ = self.args
        return pad_rows(G, a, X.shape[0])

    def _latex_body(self, printer):
        X, a, b = self.args
        return rf"{{{printer._print(X)}}}_{{[{a}:{b}]}}"  # braced: X may have a subscript

    def _numpycode(self, printer):
        X, a, b = self.args
        return f"({printer._print(X)})[{int(a)}:{int(b)}]"


class pad_rows(MatrixOp):
    r"""$G$ placed at rows $a, a+1, \dots$ of a zero matrix with $n$ rows (the adjoint of
    taking rows $a..a+k$)."""

    name = "pad_rows"

    @property
    def shape(self):
        G, _, n = self.args
        return (n, G.shape[1])

    @classmethod
    def example(cls):
        G = MatrixSymbol("G", 2, 2)
        return _trace_example(cls(G, Integer(1), Integer(4)), [G])

    def explicit(self, G, a, n):
        a, n = int(a), int(n)
        return ImmutableMatrix(
            n, G.shape[1], lambda i, j: G[i - a, j] if a <= i < a + G.shape[0] else 0
        )

    def vjp(self, index, G, out):
        inner, a, _ = self.args
        return row_block(G, a, a + inner.shape[0])

    def _latex_body(self, printer):
        G, a, n = self.args
        return rf"\operatorname{{pad}}_{{{a}}}^{{{n}}}\left({printer._print(G)}\right)"

    def _numpycode(self, printer):
        G, a, n = self.args
        after = int(n) - int(a) - int(G.shape[0])
        pad = printer._module_format("numpy.pad")
        return f"{pad}({printer._print(G)}, (({int(a)}, {after}), (0, 0)))"


class vstack(MatrixOp):
    r"""Blocks stacked vertically, $\begin{bmatrix} A \\ B \end{bmatrix}$: the features of each
    example (column) concatenated; the adjoint of each block is its rows of $G$."""

    name = "vstack"

    @property
    def shape(self):
        # kept: asking every block for its shape, at every level of a deep stack of layers
        # that each stack T blocks, would take time exponential in the depth
        shape = self.__dict__.get("_shape")
        if shape is None:
            rows = [b.shape[0] for b in self.args]
            total = sum(rows[1:], rows[0])
            shape = self.__dict__["_shape"] = (total, self.args[0].shape[1])
        return shape

    @classmethod
    def example(cls):
        A, B = MatrixSymbol("A", 2, 2), MatrixSymbol("B", 3, 2)
        return _trace_example(cls(A, B), [A, B])

    def explicit(self, *blocks):
        return ImmutableMatrix.vstack(*blocks)

    def vjp(self, index, G, out):
        start = sum((b.shape[0] for b in self.args[:index]), Integer(0))
        return row_block(G, start, start + self.args[index].shape[0])

    def _latex_body(self, printer):
        rows = r" \\ ".join(printer._print(b) for b in self.args)
        return rf"\begin{{bmatrix}} {rows} \end{{bmatrix}}"

    def _numpycode(self, printer):
        blocks = ", ".join(printer._print(b) for b in self.args)
        return f"{printer._module_format('numpy.vstack')}([{blocks}])"
