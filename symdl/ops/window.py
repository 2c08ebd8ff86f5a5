"""The geometry of window operations (convolution, pooling) and what their ops share:
examples as columns, the NumPy kernels they call, the examples their rule tests use."""

from __future__ import annotations

from typing import NamedTuple

import sympy
from sympy import Integer, Tuple
from sympy.matrices.expressions import MatrixSymbol

from symdl.ops.base import MatrixOp


class Geometry(NamedTuple):
    """Sizes of a window operation: input C x H x W, window kh x kw, stride, zero padding."""

    C: int
    H: int
    W: int
    kh: int
    kw: int
    sh: int = 1
    sw: int = 1
    ph: int = 0
    pw: int = 0

    @property
    def Ho(self) -> int:
        return (self.H + 2 * self.ph - self.kh) // self.sh + 1

    @property
    def Wo(self) -> int:
        return (self.W + 2 * self.pw - self.kw) // self.sw + 1

    def as_tuple(self) -> Tuple:
        return Tuple(*(Integer(v) for v in self))

    @classmethod
    def of(cls, args: Tuple) -> Geometry:
        return cls(*(int(v) for v in args))

    def describe(self) -> str:
        parts = []
        if (self.sh, self.sw) != (1, 1):
            parts.append(f"s={self.sh}" if self.sh == self.sw else f"s=({self.sh},{self.sw})")
        if (self.ph, self.pw) != (0, 0):
            parts.append(f"p={self.ph}" if self.ph == self.pw else f"p=({self.ph},{self.pw})")
        return ",".join(parts)


def _columns(M, rows_per_example: int):
    """The examples (columns) of explicit matrix M as lists of entries."""
    return [[M[i, n] for i in range(rows_per_example)] for n in range(M.shape[1])]


def _module(printer) -> str:
    return printer._module_format("symdl.ops.runtime")


def columns(images):
    """An (N, ...) array of images as a matrix with one flattened image per column."""
    return images.reshape(images.shape[0], -1).T


def _images(printer, X, shape: str) -> str:
    """NumPy source: the columns of matrix X as an (N, ...) array of images."""
    return f"({printer._print(X)}).T.reshape({shape})"


def _matrix(code: str, printer) -> str:
    """NumPy source: an (N, ...) array back to one flattened example per column."""
    return f"{printer._module_format('symdl.ops.columns')}({code})"


# the examples below feed the test that checks every op's vector-Jacobian rule against
# sympy.diff of its explicit form: Trace(Cᵀ op(...)) is a scalar whose gradient is the rule
# applied to C
_EXAMPLE_CONV = Geometry(C=2, H=4, W=3, kh=2, kw=2, sh=2, sw=1, ph=1, pw=0)  # Ho 3, Wo 2
_EXAMPLE_POOL = Geometry(C=1, H=4, W=3, kh=2, kw=2, sh=2, sw=1)  # Ho 2, Wo 2
_UNIT = (-1.0, 1.0)


def _example(op, wrt):
    C = MatrixSymbol("C", *op.shape)
    return sympy.Trace(C.T * op), list(wrt), {m: _UNIT for m in (*wrt, C)}


def _batch(rows: int, name: str = "X"):
    return MatrixSymbol(name, rows, 2)


class _WindowOp(MatrixOp):
    @property
    def geometry(self) -> Geometry:
        return Geometry.of(self.args[-1])

    def _subscript(self, *first: str) -> str:
        """One subscript for the name's own marks and the geometry (two would not compile)."""
        text = ",".join(part for part in (*first, self.geometry.describe()) if part)
        return f"_{{{text}}}" if text else ""
