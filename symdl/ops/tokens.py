r"""Sequences with their tokens as columns, and the product of each example's matrices.

A batch of sequences is stored with T tokens of d features in each example's column, token t in
rows $td .. (t+1)d - 1$ (T·d x N). `tokens(X, T)` lays the same numbers out with one token per
column (d x T·N, token t of example n in column $tN + n$), where one product $W X$ acts on every
token of every example at once. In that layout a matrix whose columns $tN + n$ (t < k) belong to
example n holds one k-column matrix per example; `bmm` multiplies them example by example
(attention's scores $K_n^\top Q_n$ and outputs $V_n A_n$).
"""

from __future__ import annotations

import sympy
from sympy import ImmutableMatrix, Integer, MatrixSymbol, S

from symdl.ops.base import MatrixOp

_UNIT = (-1.0, 1.0)


def _probe(op, wrt):
    C = MatrixSymbol("C", *op.shape)
    return sympy.Trace(C.T * op), list(wrt), {m: _UNIT for m in (*wrt, C)}


def _swap(printer, code: str, first: int, second: int, rows) -> str:
    """NumPy source: the (first, second, N) array read from `code`, its first two axes
    swapped, as a matrix with `rows` rows (N last, so that -1 stands for it)."""
    # einsum, not swapaxes: the same call in NumPy, JAX and PyTorch (whose swapaxes differs)
    einsum = printer._module_format("numpy.einsum")
    return f"{einsum}('abn->ban', ({code}).reshape({first}, {second}, -1)).reshape({rows}, -1)"


class tokens(MatrixOp):
    r"""The tokens of sequences as columns: $X$ (T·d x N, token t of example n in rows
    $td .. (t+1)d - 1$ of column n) as the d x T·N matrix $[x_1 \cdots x_T]$ whose column
    $tN + n$ is token t of example n. Its adjoint (and inverse) is `untokens`."""

    name = "tokens"

    @property
    def shape(self):
        X, T = self.args
        return (X.shape[0] / T, X.shape[1] * T)

    @classmethod
    def example(cls):
        X = MatrixSymbol("X", 6, 2)
        return _probe(cls(X, Integer(3)), [X])

    def explicit(self, X, T):
        T, N = int(T), X.shape[1]
        d = X.shape[0] // T
        return ImmutableMatrix(d, T * N, lambda i, j: X[(j // N) * d + i, j % N])

    def vjp(self, index, G, out):
        return untokens(G, self.args[1])

    def _latex_body(self, printer):
        return rf"\operatorname{{tokens}}\left({printer._print(self.args[0])}\right)"

    def _numpycode(self, printer):
        X, T = self.args
        return _swap(printer, printer._print(X), int(T), int(self.shape[0]), int(self.shape[0]))


class untokens(MatrixOp):
    r"""Columns of tokens back as sequences: $Y$ (d x T·N, column $tN + n$ token t of example
    n) as the T·d x N matrix with token t in rows $td .. (t+1)d - 1$. The inverse of `tokens`,
    and its adjoint."""

    name = "untokens"

    @property
    def shape(self):
        Y, T = self.args
        return (Y.shape[0] * T, Y.shape[1] / T)

    @classmethod
    def example(cls):
        Y = MatrixSymbol("Y", 2, 6)
        return _probe(cls(Y, Integer(3)), [Y])

    def explicit(self, Y, T):
        T, d = int(T), Y.shape[0]
        N = Y.shape[1] // T
        return ImmutableMatrix(T * d, N, lambda i, j: Y[i % d, (i // d) * N + j])

    def vjp(self, index, G, out):
        return tokens(G, self.args[1])

    def _latex_body(self, printer):
        return rf"\operatorname{{untokens}}\left({printer._print(self.args[0])}\right)"

    def _numpycode(self, printer):
        Y, T = self.args
        d = int(Y.shape[0])
        return _swap(printer, printer._print(Y), d, int(T), int(self.shape[0]))


class bmm(MatrixOp):
    r"""The product of each example's matrices: $A$ holds one $r \times k_A$ matrix $A_n$ per
    example n in columns $tN + n$ ($t < k_A$), $B$ one $B_n$ alike ($k_B$ columns each), and
    column $tN + n$ of the result is column t of $\operatorname{op}(A_n)\operatorname{op}(B_n)$,
    op the transpose where `transpose_a` / `transpose_b` say so (PyTorch's `bmm`, examples
    last). Its adjoints are products of the same kind: $\bar{A}_n = G_n B_n^\top$,
    $\bar{B}_n = A_n^\top G_n$ for $C_n = A_n B_n$."""

    name = "bmm"

    def __new__(cls, A, B, k_a, k_b, transpose_a=False, transpose_b=False):
        ta, tb = sympy.sympify(bool(transpose_a)), sympy.sympify(bool(transpose_b))
        self = super().__new__(cls, A, B, k_a, k_b, ta, tb)
        inner_a = A.shape[0] if ta else k_a
        inner_b = k_b if tb else B.shape[0]
        if inner_a - inner_b != 0:
            raise ValueError(
                f"bmm: each example's {'A^T' if ta else 'A'} has {inner_a} columns but its "
                f"{'B^T' if tb else 'B'} has {inner_b} rows"
            )
        return self

    @property
    def _sizes(self):
        A, B, k_a, k_b, ta, tb = self.args
        examples = A.shape[1] / k_a
        p = k_a if ta else A.shape[0]
        q = B.shape[0] if tb else k_b
        return p, q, examples

    @property
    def shape(self):
        p, q, examples = self._sizes
        return (p, q * examples)

    @classmethod
    def example(cls):
        K, Q = MatrixSymbol("K", 2, 6), MatrixSymbol("Q", 2, 4)  # 3 keys, 2 queries, N = 2
        V = MatrixSymbol("V", 3, 6)
        S = cls(K, Q, 3, 2, True)  # 3 x 4: K_nᵀ Q_n
        out = cls(V, sympy.HadamardProduct(S, S), 3, 2)  # 3 x 4: V_n (S_n ∘ S_n)
        R = MatrixSymbol("R", 5, 4)
        P = cls(out, R, 2, 2, False, True)  # 3 x 10: O_n R_nᵀ
        C1, C2 = MatrixSymbol("C", *S.shape), MatrixSymbol("D", *P.shape)
        f = sympy.Trace(C1.T * S) + sympy.Trace(C2.T * P)
        return f, [K, Q, V, R], {m: _UNIT for m in (K, Q, V, R, C1, C2)}

    def explicit(self, A, B, k_a, k_b, ta, tb):
        k_a, k_b = int(k_a), int(k_b)
        N = A.shape[1] // k_a
        blocks = []
        for n in range(N):
            A_n = A.extract(list(range(A.shape[0])), [t * N + n for t in range(k_a)])
            B_n = B.extract(list(range(B.shape[0])), [t * N + n for t in range(k_b)])
            blocks.append((A_n.T if ta else A_n) * (B_n.T if tb else B_n))
        p, q = blocks[0].shape
        return ImmutableMatrix(p, q * N, lambda i, j: blocks[j % N][i, j // N])

    def vjp(self, index, G, out):
        if index > 1:
            return S.Zero
        A, B, k_a, k_b, ta, tb = self.args
        k_g = self._sizes[1]
        if index == 0:
            if ta:  # A_n = op(B_n) G_nᵀ
                return bmm(B, G, k_b, k_g, tb, True)
            return bmm(G, B, k_g, k_b, False, not tb)  # G_n op(B_n)ᵀ
        if tb:  # B_n = G_nᵀ op(A_n)
            return bmm(G, A, k_g, k_a, True, ta)
        return bmm(A, G, k_a, k_g, not ta, False)  # op(A_n)ᵀ G_n

    def _latex_body(self, printer):
        A, B, _, _, ta, tb = self.args
        a, b = (printer._print(sympy.Transpose(M) if t else M) for M, t in ((A, ta), (B, tb)))
        return rf"\operatorname{{bmm}}\left({a}, {b}\right)"

    def _numpycode(self, printer):
        A, B, k_a, k_b, ta, tb = self.args
        a = "kpn" if ta else "pkn"
        b = "qkn" if tb else "kqn"
        einsum = printer._module_format("numpy.einsum")
        A_code = f"({printer._print(A)}).reshape({int(A.shape[0])}, {int(k_a)}, -1)"
        B_code = f"({printer._print(B)}).reshape({int(B.shape[0])}, {int(k_b)}, -1)"
        rows = int(self.shape[0])
        return f"{einsum}('{a},{b}->pqn', {A_code}, {B_code}).reshape({rows}, -1)"
