r"""symdl's functions of whole matrices: elementwise application, column-wise softmax and
log-sum-exp, and losses of a batch (one example per column).

Each op states its vector-Jacobian product (`vjp`: the adjoint of an argument given the adjoint
$G$ of the result), its notation, its NumPy form, and how it expands on explicit matrices
(`doit`), which is how the tests compare it with the scalar definition entry by entry.
"""

from __future__ import annotations

from typing import ClassVar

import sympy
from sympy import Dummy, Expr, Lambda, MatrixBase, S
from sympy.matrices.expressions import MatrixExpr, OneMatrix
from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction

from symdl.ops.activations import sigmoid
from symdl.ops.losses import binary_cross_entropy_with_logits, cross_entropy, l1, l2, mse
from symdl.ops.vector import logsumexp, softmax

ENTRY = Dummy(
    "x", real=True
)  # the one variable of every elementwise Lambda: equal functions compare equal


def hadamard(*factors):
    """The elementwise product, flattened (SymPy's HadamardProduct, or the factor alone)."""
    factors = [f for f in factors if f != 1]
    return factors[0] if len(factors) == 1 else sympy.HadamardProduct(*factors).doit(deep=False)


class elementwise(ElementwiseApplyFunction):
    r"""A scalar function applied to each entry of a matrix, printed $f(Z)$ as in textbooks."""

    def __new__(cls, function, expr):
        if not isinstance(function, Lambda):
            function = Lambda(ENTRY, function(ENTRY))
        elif function.variables != (ENTRY,):
            function = Lambda(ENTRY, function.expr.xreplace({function.variables[0]: ENTRY}))
        return MatrixExpr.__new__(cls, function, sympy.sympify(expr))

    @property
    def body(self) -> Expr:
        """f(x) with x the entry variable ENTRY."""
        return self.function.expr

    def doit(self, **hints):
        arg = self.expr.doit(**hints) if hints.get("deep", True) else self.expr
        if isinstance(arg, MatrixBase):
            return arg.applyfunc(self.function)
        return elementwise(self.function, arg)

    def _entry(self, i, j, **kwargs):
        return self.body.xreplace({ENTRY: self.expr[i, j]})

    def _shown(self, printer, arg_text: str) -> str:
        marker = sympy.Symbol("SYMDLENTRY")
        return printer._print(self.body.xreplace({ENTRY: marker})).replace("SYMDLENTRY", arg_text)

    def _latex(self, printer, exp=None):
        tex = self._shown(printer, printer._print(self.expr))
        if not (self.body.is_Function and self.body.args == (ENTRY,)):
            tex = rf"\left[{tex}\right]_{{\circ}}"  # an elementwise expression, said so
        return rf"\left({tex}\right)^{{{exp}}}" if exp is not None else tex

    def _sympystr(self, printer):
        if self.body.is_Function and self.body.args == (ENTRY,):
            return self._shown(printer, printer._print(self.expr))
        return f"elementwise({printer._print(self.function)}, {printer._print(self.expr)})"


def as_elementwise(expr: Expr, arg) -> object:
    """Scalar `expr` in ENTRY as a matrix expression in `arg`, with Hadamard products and
    powers where the scalar has products and powers: $y(1 - y) \\mapsto A \\circ (\\mathbb{1} - A)$."""
    shape = arg.shape
    if expr == ENTRY:
        return arg
    if not expr.has(ENTRY):
        return expr * OneMatrix(*shape)
    if isinstance(expr, sympy.Add):
        return sympy.MatAdd(*(as_elementwise(t, arg) for t in expr.args)).doit(deep=False)
    if isinstance(expr, sympy.Mul):
        coeff, rest = expr.as_independent(ENTRY, as_Add=False)
        product = hadamard(*(as_elementwise(f, arg) for f in sympy.Mul.make_args(rest)))
        return product if coeff == 1 else coeff * product
    if isinstance(expr, sympy.Pow) and expr.base == ENTRY and expr.exp.is_Integer and expr.exp > 0:
        return sympy.HadamardPower(arg, expr.exp)
    return elementwise(Lambda(ENTRY, expr), arg)


def _columns(Z) -> list[list]:
    rows, cols = Z.shape
    return [[Z[i, j] for i in range(rows)] for j in range(cols)]


def _explicit(*args) -> bool:
    return all(isinstance(a, MatrixBase) for a in args)


class MatrixOp(MatrixExpr):
    """A matrix-valued symdl op of matrix arguments."""

    name: ClassVar[str] = ""
    latex_name: ClassVar[str] = ""

    def __new__(cls, *args):
        return MatrixExpr.__new__(cls, *map(sympy.sympify, args))

    def doit(self, **hints):
        args = [a.doit(**hints) for a in self.args] if hints.get("deep", True) else self.args
        if _explicit(*args):
            return self.explicit(*args)
        return self.func(*args)

    def _latex(self, printer, exp=None):
        body = ", ".join(printer._print(a) for a in self.args)
        tex = rf"{self.latex_name}\left({body}\right)"
        return rf"\left({tex}\right)^{{{exp}}}" if exp is not None else tex

    def _sympystr(self, printer):
        return f"{self.name}({', '.join(printer._print(a) for a in self.args)})"


class MatSoftmax(MatrixOp):
    r"""Softmax of each column: $\operatorname{softmax}(Z)_{ij} = e^{Z_{ij}} / \sum_k e^{Z_{kj}}$."""

    name = "softmax"
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

    def _numpycode(self, printer):
        return f"{printer._module_format('scipy.special.softmax')}({printer._print(self.args[0])}, axis=0)"


class MatLogSumExp(MatrixOp):
    r"""Log-sum-exp of each column, a row vector: $\log \sum_k e^{Z_{kj}}$."""

    name = "logsumexp"
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

    def _numpycode(self, printer):
        lse = printer._module_format("scipy.special.logsumexp")
        return f"{lse}({printer._print(self.args[0])}, axis=0, keepdims=True)"


class MatrixLoss(Expr):
    """A scalar symdl op of matrix arguments (a loss over a batch, a penalty of a matrix)."""

    name: ClassVar[str] = ""
    latex_name: ClassVar[str] = ""
    is_commutative = True
    is_real = True

    def __new__(cls, *args):
        args = list(map(sympy.sympify, args))
        shapes = [a.shape for a in args]
        if any(s != shapes[0] for s in shapes):
            raise ValueError(f"{cls.name}: arguments have shapes {shapes}; they must be equal")
        return Expr.__new__(cls, *args)

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
        body = ", ".join(printer._print(a) for a in self.args)
        tex = rf"{self.latex_name}\left({body}\right)"
        return rf"\left({tex}\right)^{{{exp}}}" if exp is not None else tex

    def _sympystr(self, printer):
        return f"{self.name}({', '.join(printer._print(a) for a in self.args)})"


class MatCrossEntropy(MatrixLoss):
    r"""Softmax cross-entropy of logits $Z$ against targets $Y$ (one example per column),
    averaged over the $N$ columns: $\frac{1}{N}\sum_j \operatorname{CE}(Z_{:j}, Y_{:j})$."""

    name = "cross_entropy"
    latex_name = r"\operatorname{CE}"

    def explicit(self, Z, Y):
        cols = list(zip(_columns(Z), _columns(Y), strict=True))
        return sympy.Add(*(cross_entropy(z, y) for z, y in cols)) / len(cols)

    def vjp(self, index, G, out):
        Z, Y = self.args
        k, n = Z.shape
        if index == 0:  # (softmax(Z) ∘ 1 1ᵀY − Y) / N; for one-hot Y simply (softmax(Z) − Y) / N
            return (G / n) * (hadamard(MatSoftmax(Z), OneMatrix(k, k) * Y) - Y)
        return (-G / n) * (Z - OneMatrix(k, 1) * MatLogSumExp(Z))

    def _numpycode(self, printer):
        Z, Y = (printer._print(a) for a in self.args)
        log_softmax = printer._module_format("scipy.special.log_softmax")
        return f"(-({Y}*{log_softmax}({Z}, axis=0)).sum()/{Z}.shape[1])"


class MatMSE(MatrixLoss):
    r"""Mean squared error over every entry: $\frac{1}{kN}\sum_{ij} (P_{ij} - Y_{ij})^2$."""

    name = "mse"
    latex_name = r"\operatorname{MSE}"

    def explicit(self, P, Y):
        return mse(list(P), list(Y))

    def vjp(self, index, G, out):
        P, Y = self.args
        sign = 2 if index == 0 else -2
        return (sign * G / self.count) * (P - Y)

    def _numpycode(self, printer):
        P, Y = (printer._print(a) for a in self.args)
        return f"(({P} - {Y})**2).mean()"


class MatBCEWithLogits(MatrixLoss):
    r"""Binary cross-entropy of logits over every entry: mean of $\operatorname{softplus}(Z) - Y \circ Z$."""

    name = "binary_cross_entropy_with_logits"
    latex_name = r"\operatorname{BCE}_{\text{logits}}"

    def explicit(self, Z, Y):
        return binary_cross_entropy_with_logits(list(Z), list(Y))

    def vjp(self, index, G, out):
        Z, Y = self.args
        if index == 0:
            return (G / self.count) * (elementwise(sigmoid, Z) - Y)
        return (-G / self.count) * Z

    def _numpycode(self, printer):
        Z, Y = (printer._print(a) for a in self.args)
        return f"({printer._module_format('numpy.logaddexp')}(0.0, {Z}) - {Y}*{Z}).mean()"


class MatL2(MatrixLoss):
    r"""Squared Frobenius norm $\lVert W \rVert_F^2 = \sum_{ij} W_{ij}^2$."""

    name = "l2"
    latex_name = ""

    def explicit(self, W):
        return l2(list(W))

    def vjp(self, index, G, out):
        return (2 * G) * self.args[0]

    def _latex(self, printer, exp=None):
        tex = rf"\left\lVert {printer._print(self.args[0])} \right\rVert_{{F}}^{{2}}"
        return rf"\left({tex}\right)^{{{exp}}}" if exp is not None else tex

    def _numpycode(self, printer):
        return f"({printer._print(self.args[0])}**2).sum()"


class MatL1(MatrixLoss):
    r"""Entrywise L1 norm $\sum_{ij} |W_{ij}|$; its derivative at 0 is 0."""

    name = "l1"
    latex_name = ""

    def explicit(self, W):
        return l1(list(W))

    def vjp(self, index, G, out):
        return G * elementwise(sympy.sign, self.args[0])

    def _latex(self, printer, exp=None):
        tex = rf"\left\lVert {printer._print(self.args[0])} \right\rVert_{{1}}"
        return rf"\left({tex}\right)^{{{exp}}}" if exp is not None else tex

    def _numpycode(self, printer):
        return f"{printer._module_format('numpy.abs')}({printer._print(self.args[0])}).sum()"
