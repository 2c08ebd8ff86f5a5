"""Guarded construction of formulas: every operation a parsed formula may ask for, with limits
on the size of numbers, matrices and time, so that no text can make SymPy run for long."""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import sympy
from sympy import ImmutableMatrix, Integer, MatrixBase, Rational
from sympy.matrices.expressions import MatrixExpr

from symdl.core.matrices import elementwise
from symdl.parsing.errors import (
    MAX_ARGS,
    MAX_BITS,
    MAX_ENTRIES,
    TIME_LIMIT,
    ParseError,
    ShapeMisfit,
)


@dataclass(frozen=True)
class Ones:
    """An all-ones vector whose length the formula around it decides (``\\mathbf{1}``, or
    ``ones`` without a size): a column, or a row when `row`; `coefficient` times it."""

    position: int | None
    row: bool = False
    coefficient: object = sympy.S.One

    def of_shape(self, shape) -> object:
        """The all-ones matrix of `shape`: written out when the size is a number."""
        rows, cols = shape
        if all(sympy.sympify(d).is_Integer for d in shape):
            ones = ImmutableMatrix(sympy.ones(int(rows), int(cols)))
        else:
            ones = sympy.OneMatrix(rows, cols)
        return ones if self.coefficient == 1 else self.coefficient * ones


def ones(rows, cols):
    """The all-ones matrix of a known size (symbolic sizes give a OneMatrix)."""
    return Ones(None).of_shape((rows, cols))


class Builder:
    """Guarded constructors: every operation a formula may ask for, with its limits."""

    def __init__(self, text: str, time_limit: float = TIME_LIMIT):
        self.text = text
        # CPU time: a machine busy with other work does not refuse a formula it can build
        self.deadline = time.process_time() + time_limit
        self.entrywise = 0  # inside [...]_\circ or elementwise(...): products, quotients and
        # powers of matrices are taken entry by entry

    def _entrywise(self, a, b, how: str, position: int):
        """a ∘ b, a ⊘ b (`how` "/") or a^{∘b} (`how` "^") for matrices of one shape."""
        if how == "^":
            if isinstance(a, MatrixBase):
                return ImmutableMatrix(a.applyfunc(lambda e: e**b))
            return sympy.HadamardPower(a, b)
        if how == "/":
            b = (
                ImmutableMatrix(b.applyfunc(lambda e: 1 / e))
                if isinstance(b, MatrixBase)
                else sympy.HadamardPower(b, -1)
            )
        if _is_scalar(a) or _is_scalar(b):
            return self._sympy(lambda: a * b, position)
        self._same_shape(a, b, "multiply entry by entry", position)
        if isinstance(a, MatrixBase) and isinstance(b, MatrixBase):
            return ImmutableMatrix(a.multiply_elementwise(b))
        return sympy.HadamardProduct(a, b)

    def fail(self, reason: str, position: int | None):
        raise ParseError(reason, self.text, position)

    def misfit(self, reason: str, position: int | None):
        raise ShapeMisfit(reason, self.text, position)

    def tick(self, position: int | None) -> None:
        if time.process_time() > self.deadline:
            self.fail(
                f"the formula takes more than {TIME_LIMIT:g} s to build; simplify it", position
            )

    def number(self, literal: str, position: int) -> Rational:
        literal = literal.replace("_", "")
        m = re.fullmatch(r"(?:\d+\.?\d*|\.\d+)(?:[eE]([+-]?\d+))?", literal)
        if not m or len(literal) > 100 or (m[1] and abs(int(m[1])) > 300):
            self.fail(f"number {literal[:30]!r} is too long or out of range", position)
        return Rational(literal)  # exact: 0.1 means 1/10

    def matrix(self, rows: list[list], position: int) -> ImmutableMatrix:
        if not rows or any(len(r) != len(rows[0]) for r in rows) or not rows[0]:
            self.fail("a matrix needs rows of equal, non-zero length", position)
        if len(rows) * len(rows[0]) > MAX_ENTRIES:
            self.fail(f"a matrix may have at most {MAX_ENTRIES} entries", position)
        for row in rows:
            for e in row:
                if not _is_scalar(e):
                    self.fail("matrix entries must be scalars", position)
        return ImmutableMatrix(rows)

    def as_value(self, v, position: int):
        """A list written in the formula, as a matrix (a flat list is a column)."""
        if isinstance(v, list):
            rows = [r if isinstance(r, list) else [r] for r in v]
            return self.matrix(rows, position)
        return v

    def add(self, a, b, position: int, sign: int = 1):
        self.tick(position)
        a, b = self.as_value(a, position), self.as_value(b, position)
        a, b = self._fit_sum(a, b, position)
        if _is_scalar(a) != _is_scalar(b):  # w^T x - 1: a 1x1 matrix acts as a scalar
            a, b = _scalar_if_1x1(a), _scalar_if_1x1(b)
        if _is_scalar(a) and _is_scalar(b):
            return a + sign * b
        if isinstance(a, MatrixBase) and _is_scalar(b):  # 1 - p: elementwise, as in DL papers
            return a.applyfunc(lambda e: e + sign * b)
        if _is_scalar(a) and isinstance(b, MatrixBase):
            return b.applyfunc(lambda e: a + sign * e)
        if _is_scalar(b):  # a scalar added to each entry of a matrix expression: b 1 1ᵀ
            return self._sympy(lambda: a + sign * b * sympy.OneMatrix(*a.shape), position)
        if _is_scalar(a):
            return self._sympy(lambda: a * sympy.OneMatrix(*b.shape) + sign * b, position)
        self._same_shape(a, b, "add" if sign > 0 else "subtract", position)
        return self._sympy(lambda: a + sign * b, position)

    def mul(self, a, b, position: int):
        self.tick(position)
        a, b = self.as_value(a, position), self.as_value(b, position)
        if isinstance(a, Ones) and (_is_scalar(b) or _is_1x1(b)):  # 1 (w^T x): a scalar
            return replace(a, coefficient=a.coefficient * _scalar_if_1x1(b))
        if isinstance(b, Ones) and (_is_scalar(a) or _is_1x1(a)):
            return replace(b, coefficient=_scalar_if_1x1(a) * b.coefficient)
        a, b = self._fit_product(a, b, position)
        if _is_scalar(a) or _is_scalar(b):
            return self._sympy(lambda: a * b, position)
        if self.entrywise:
            return self._entrywise(a, b, "*", position)
        (r, k), (k2, c) = a.shape, b.shape
        if k != k2 and (a.shape == (1, 1) or b.shape == (1, 1)):  # (w^T x - y) x: a scalar factor
            return self._sympy(lambda: _scalar_if_1x1(a) * _scalar_if_1x1(b), position)
        if k != k2:
            self.misfit(
                f"cannot multiply a {_shape(a)} matrix by a {_shape(b)} one; write .T (or ^T) "
                "for a transpose, or hadamard(a, b) (\\odot) for the entrywise product",
                position,
            )
        if isinstance(a, MatrixBase) and isinstance(b, MatrixBase) and r * k * c > 20 * MAX_ENTRIES:
            self.fail("matrix product too large", position)
        return self._sympy(lambda: a * b, position)

    def total(self, terms: list[tuple[object, int, int]]):
        """The sum of (value, sign, position) terms. Scalars are added in one n-ary Add: a
        chain of binary additions costs time quadratic in the number of terms."""
        scalars, matrix = [], None
        for value, sign, position in terms:
            self.tick(position)
            value = self.as_value(value, position)
            if _is_scalar(value):
                scalars.append(value if sign > 0 else -value)
            elif matrix is None:
                matrix = value if sign > 0 else self.neg(value, position)
            else:
                matrix = self.add(matrix, value, position, sign)
        scalar = self._sympy(lambda: sympy.Add(*scalars), terms[0][2]) if scalars else None
        if matrix is None:
            return scalar
        return matrix if scalar is None else self.add(matrix, scalar, terms[0][2])

    def product(self, factors: list[tuple[object, bool, int]]):
        """The product of (value, divides, position) factors, in order for matrices; scalar
        factors are multiplied in one n-ary Mul (they commute with everything)."""
        scalars, matrix = [], None
        for value, divides, position in factors:
            self.tick(position)
            value = self.as_value(value, position)
            if divides:
                value = self.div(Integer(1), value, position)
            if _is_scalar(value):
                scalars.append(value)
            else:
                matrix = value if matrix is None else self.mul(matrix, value, position)
        scalar = self._sympy(lambda: sympy.Mul(*scalars), factors[0][2]) if scalars else None
        if matrix is None:
            return scalar
        return matrix if scalar is None else self.mul(scalar, matrix, factors[0][2])

    def div(self, a, b, position: int):
        a, b = self.as_value(a, position), self.fitted(self.as_value(b, position), position)
        if not _is_scalar(b) and self.entrywise:
            return self._entrywise(a, b, "/", position)
        if not _is_scalar(b):
            self.misfit(f"cannot divide by a matrix ({_shape(b)})", position)
        if b == 0:
            self.fail("division by zero", position)
        return self.mul(a, self._sympy(lambda: 1 / b, position), position)

    def neg(self, a, position: int):
        return self.mul(Integer(-1), a, position)

    def pow(self, base, exponent, position: int):
        self.tick(position)
        base, exponent = self.as_value(base, position), self.as_value(exponent, position)
        base, exponent = self.fitted(base, position), self.fitted(exponent, position)
        exponent = _scalar_if_1x1(exponent)  # e^{y w^T x}: a 1x1 matrix is a scalar
        if not _is_scalar(exponent) and self.entrywise and _is_scalar(base):  # [e^{-P}]_∘
            if isinstance(exponent, MatrixBase):
                return ImmutableMatrix(exponent.applyfunc(lambda e: base**e))
            return elementwise(lambda e: base**e, exponent)
        if not _is_scalar(exponent):
            self.fail("an exponent must be a scalar", position)
        if not _is_scalar(base) and self.entrywise:
            return self._entrywise(base, exponent, "^", position)
        if not _is_scalar(base):
            square = base.shape[0] == base.shape[1]
            if not square:
                self.misfit(
                    f"a matrix power needs a square matrix (got {_shape(base)}); for entrywise "
                    "squares write hadamard(a, a)",
                    position,
                )
            if not (exponent.is_Integer and exponent != 0 and abs(exponent) <= 8):
                self.misfit(
                    "a matrix power needs an integer exponent from -8 to 8 (X^{-1} is the "
                    "inverse); for entrywise powers write hadamard(a, a)",
                    position,
                )
            k = abs(int(exponent))
            if isinstance(base, MatrixBase) and (
                base.shape[0] > 6 and exponent < 0 or base.shape[0] ** 3 * k > 20 * MAX_ENTRIES
            ):
                self.fail(
                    f"the power {exponent} of a {_shape(base)} matrix written out is too costly",
                    position,
                )
            if exponent < 0:  # X^{-k} = (X^{-1})^k
                base = self._sympy(lambda: _inverse(base), position)
            return base if k == 1 else self._sympy(lambda: base**k, position)
        if base.is_Number and exponent.is_Rational:
            if base == 0 and exponent < 0:
                self.fail("division by zero (0 to a negative power)", position)
            size = max(abs(base.p), base.q, 2) if base.is_Rational else 2
            if abs(exponent) * math.log2(size) > MAX_BITS:
                self.fail(
                    f"number too large: {base}**{exponent} has more than {MAX_BITS} bits", position
                )
        return self._sympy(lambda: sympy.Pow(base, exponent), position)

    def transpose(self, a, position: int):
        a = self.as_value(a, position)
        if isinstance(a, Ones):
            return replace(a, row=not a.row)
        return a if _is_scalar(a) else a.T

    def fitted(self, value, position: int | None = None):
        """`value`, unless it is an all-ones vector no neighbour gave a length: then fail."""
        if isinstance(value, Ones):
            self.fail(
                "cannot tell the length of the all-ones vector here; write its size, "
                "\\mathbf{1}_n or ones(n, 1)",
                value.position if position is None else position,
            )
        return value

    def _fit_sum(self, a, b, position):
        """An all-ones term of a sum takes the shape of the other term."""
        if isinstance(a, Ones) and isinstance(b, Ones):
            self.fitted(a, position)
        if isinstance(a, Ones) and not _is_scalar(b):
            a = a.of_shape(b.shape)
        if isinstance(b, Ones) and not _is_scalar(a):
            b = b.of_shape(a.shape)
        return self.fitted(a, position), self.fitted(b, position)

    def _fit_product(self, a, b, position):
        """1^T M is a row of M's rows; M 1 a column of M's columns."""
        if isinstance(a, Ones) and a.row and not _is_scalar(b):
            a = a.of_shape((1, b.shape[0]))
        if isinstance(b, Ones) and not b.row and not _is_scalar(a):
            b = b.of_shape((a.shape[1], 1))
        return self.fitted(a, position), self.fitted(b, position)

    def index(self, a, indices: tuple[int, ...], position: int):
        if isinstance(a, list):
            a = self.as_value(a, position)
        a = self.fitted(a, position)
        if _is_scalar(a):
            self.fail("only a vector or matrix can be indexed", position)
        rows, cols = a.shape
        if len(indices) == 1 and 1 in (rows, cols):
            indices = (indices[0], 0) if cols == 1 else (0, indices[0])
        if len(indices) != 2 or not (0 <= indices[0] < rows and 0 <= indices[1] < cols):
            self.fail(
                f"index {indices} is outside the {_shape(a)} matrix (indices start at 0)", position
            )
        return _entry(a, indices)

    def call(self, function: Callable, args: list, name: str, position: int, keywords=None):
        self.tick(position)
        if len(args) > MAX_ARGS:
            self.fail(f"{name}: more than {MAX_ARGS} arguments", position)
        args = [self.fitted(a, position) for a in args]
        try:
            return function(self, *args, **(keywords or {}))
        except ParseError:
            raise
        except sympy.ShapeError as error:
            self.misfit(f"{name}: {error}".split("\n")[0][:300], position)
        except (TypeError, ValueError, ArithmeticError) as error:
            self.fail(f"{name}: {error}".split("\n")[0][:300], position)

    def _same_shape(self, a, b, verb: str, position: int) -> None:
        if a.shape != b.shape:
            self.misfit(f"cannot {verb} a {_shape(a)} and a {_shape(b)} matrix", position)

    def _sympy(self, thunk: Callable, position: int):
        try:
            return thunk()
        except sympy.ShapeError as error:
            self.misfit(str(error).split("\n")[0][:300], position)
        except (TypeError, ValueError, ArithmeticError) as error:
            self.fail(str(error).split("\n")[0][:300], position)


def _inverse(M):
    """M⁻¹: a matrix expression's Inverse, or an explicit matrix's, as adj(M)/det(M) when its
    entries are symbols (Gaussian elimination simplifies at every pivot: minutes at 3x3)."""
    if not isinstance(M, MatrixBase):
        return M.I
    if not M.free_symbols:
        return ImmutableMatrix(M.inv())
    return ImmutableMatrix(M.adjugate(method="berkowitz") / M.det(method="berkowitz"))


def _scalar_if_1x1(v):
    """A 1x1 matrix as its one entry (a scalar); anything else as it is."""
    if isinstance(v, MatrixBase | MatrixExpr) and v.shape == (1, 1):
        return _entry(v, (0, 0))
    return v


def _entry(a, indices: tuple[int, int]):
    """Entry `indices` of `a`. The one entry of a 1x1 matrix expression holding an inverse is
    its trace: SymPy's entry of (x-mu)^T S^-1 (x-mu) writes S^-1 out by Gaussian elimination
    with simplification (minutes at 4x4) where tr(.) derives in matrix form at once."""
    if isinstance(a, MatrixExpr) and a.shape == (1, 1) and _holds_inverse(a):
        return sympy.Trace(a)
    return a[indices]


def _holds_inverse(a: MatrixExpr) -> bool:
    return any(
        isinstance(p, sympy.Inverse) or isinstance(p, sympy.MatPow) and p.exp.is_negative
        for p in sympy.preorder_traversal(a)
    )


def _is_1x1(v) -> bool:
    return isinstance(v, MatrixBase | MatrixExpr) and v.shape == (1, 1)


def _is_scalar(v) -> bool:
    return not isinstance(v, MatrixBase | MatrixExpr | list | Ones)


def _shape(a) -> str:
    return "x".join(map(str, a.shape))


def indicator(value):
    """1[value > 0], entry by entry for a matrix: the step ReLU' (0 at the kink)."""
    if _is_scalar(value):
        return sympy.Heaviside(value, 0)
    if isinstance(value, MatrixBase):
        return ImmutableMatrix(value.applyfunc(lambda e: sympy.Heaviside(e, 0)))
    return elementwise(lambda e: sympy.Heaviside(e, 0), value)
