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
from sympy.matrices.expressions import (
    Identity,
    MatrixExpr,
    MatrixSymbol,
    OneMatrix,
    ZeroMatrix,
)
from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction

from symdl.ops.activations import sigmoid
from symdl.ops.losses import (
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    hinge,
    huber,
    l1,
    l2,
    mse,
)
from symdl.ops.vector import logsumexp, softmax

ENTRY = Dummy(
    "x", real=True
)  # the one variable of every elementwise Lambda: equal functions compare equal


def hadamard(*factors):
    r"""The elementwise product, flattened; factors $c\mathbb{1}$ come out as scalars:
    $(c\mathbb{1}) \circ X = c X$."""
    coeff, rest = S.One, []
    for f in factors:
        c, mats = f.as_coeff_matrices() if isinstance(f, sympy.MatMul) else (S.One, [f])
        if len(mats) == 1 and isinstance(mats[0], OneMatrix):
            coeff *= c
        else:
            rest.append(f)
    if not rest:
        return scale(coeff, OneMatrix(*factors[0].shape))
    flat = [g for f in rest for g in (f.args if isinstance(f, sympy.HadamardProduct) else (f,))]
    if len(flat) > 1 and all(g == flat[0] for g in flat):
        # C^{∘2}, SymPy's canonical form of C ∘ C: an expression that also went through
        # SymPy's operators (which canonicalise) still contains the very node a name refers to
        return scale(coeff, sympy.HadamardPower(flat[0], len(flat)))
    # built, not canonicalised: the adjoint stays first, as in δ ∘ f'(Z)
    product = flat[0] if len(flat) == 1 else sympy.HadamardProduct(*flat)
    return scale(coeff, product)


def matmul(*factors):
    """A matrix product, flattened but nothing evaluated: SymPy's `*` and `doit` canonicalise
    by multiplying again, a deep doit that rewrites subexpressions (the order inside a
    Hadamard product, say) which a program step or a name refers to."""
    coeff, matrices = S.One, []
    for factor in factors:
        if isinstance(factor, sympy.MatMul):
            c, mats = factor.as_coeff_matrices()
            coeff, matrices = coeff * c, matrices + list(mats)
        elif isinstance(factor, MatrixExpr):
            matrices.append(factor)
        else:
            coeff *= factor
    shape = (matrices[0].rows, matrices[-1].cols)
    if any(isinstance(m, ZeroMatrix) for m in matrices) or coeff == 0:
        return ZeroMatrix(*shape)
    kept = [m for m in matrices if not isinstance(m, Identity)] or [Identity(shape[0])]
    if coeff == 1 and len(kept) == 1:
        return kept[0]
    return sympy.MatMul(*([] if coeff == 1 else [coeff]), *kept)


def matadd(*terms):
    """A matrix sum, flattened but nothing evaluated (see matmul)."""
    flat = [t for term in terms for t in (term.args if isinstance(term, sympy.MatAdd) else (term,))]
    kept = [t for t in flat if not isinstance(t, ZeroMatrix)]
    if not kept:
        return flat[0]
    return kept[0] if len(kept) == 1 else sympy.MatAdd(*kept)


def scale(c, M):
    """`c M` flattened, nothing evaluated inside `c` or `M` (see matmul)."""
    return M if c == 1 else matmul(c, M)


def _raised(tex: str, exp) -> str:
    """`tex` to the power `exp` (which SymPy's printer passes for a power of an op), if any."""
    return rf"\left({tex}\right)^{{{exp}}}" if exp is not None else tex


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

    @property
    def is_indicator(self) -> bool:
        """The step function 1[x > 0] (ReLU's derivative, 0 at the kink)."""
        return self.body == sympy.Heaviside(ENTRY, 0)

    def _latex(self, printer, exp=None):
        if self.is_indicator:
            tex = rf"\mathbb{{1}}\left[{printer._print(self.expr)} > 0\right]"
        else:
            tex = self._shown(printer, printer._print(self.expr))
            if not (self.body.is_Function and self.body.args == (ENTRY,)):
                tex = rf"\left[{tex}\right]_{{\circ}}"  # an elementwise expression, said so
        return _raised(tex, exp)

    def _sympystr(self, printer):
        if self.is_indicator:
            return f"({printer._print(self.expr)} > 0)"
        if self.body.is_Function and self.body.args == (ENTRY,):
            return self._shown(printer, printer._print(self.expr))
        return f"elementwise({self._shown(printer, printer._print(self.expr))})"


def as_elementwise(expr: Expr, arg) -> object:
    """Scalar `expr` in ENTRY as a matrix expression in `arg`, with Hadamard products and
    powers where the scalar has products and powers: $y(1 - y) \\mapsto A \\circ (\\mathbb{1} - A)$."""
    shape = arg.shape
    if expr == ENTRY:
        return arg
    if not expr.has(ENTRY):
        return expr * OneMatrix(*shape)
    if isinstance(expr, sympy.Add):  # constants first: 1 - A, as written by hand
        terms = sorted(expr.args, key=lambda t: t.has(ENTRY))
        return sympy.MatAdd(*(as_elementwise(t, arg) for t in terms))
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
    """Whether every matrix argument is an explicit Matrix (scalar parameters aside)."""
    matrices = [a for a in args if isinstance(a, MatrixBase | MatrixExpr)]
    return bool(matrices) and all(isinstance(a, MatrixBase) for a in matrices)


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
        return _raised(self._latex_body(printer), exp)

    def _latex_body(self, printer) -> str:
        """The op's own notation; `_latex` adds a power around it."""
        body = ", ".join(printer._print(a) for a in self.args)
        return rf"{self.latex_name}\left({body}\right)"

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

    @classmethod
    def example(cls):
        Z, C = MatrixSymbol("Z", 3, 2), MatrixSymbol("C", 3, 2)
        return sympy.Trace(C.T * cls(Z)), [Z], {Z: (-2.0, 2.0), C: (-1.0, 1.0)}

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

    @classmethod
    def example(cls):
        Z, C = MatrixSymbol("Z", 3, 2), MatrixSymbol("C", 1, 2)
        return sympy.Trace(C.T * cls(Z)), [Z], {Z: (-2.0, 2.0), C: (-1.0, 1.0)}

    def _numpycode(self, printer):
        lse = printer._module_format("symdl.ops.kernels.logsumexp")
        return f"{lse}({printer._print(self.args[0])}, axis=0)"


class MatrixLoss(Expr):
    """A scalar symdl op of matrix arguments (a loss over a batch, a penalty of a matrix)."""

    name: ClassVar[str] = ""
    latex_name: ClassVar[str] = ""
    is_commutative = True
    is_real = True

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


class MatCrossEntropy(MatrixLoss):
    r"""Softmax cross-entropy of logits $Z$ against targets $Y$, one example per column,
    averaged over the $N$ columns: $\frac{1}{N}\sum_j \operatorname{logsumexp}(Z_{:j}) - Y_{:j}^\top Z_{:j}$.

    This is $-\frac{1}{N}\sum_j Y_{:j}^\top \log\operatorname{softmax}(Z_{:j})$ whenever each
    column of $Y$ sums to 1 (one-hot labels or probabilities), and its gradient is the textbook
    $(\operatorname{softmax}(Z) - Y)/N$ for every $Y$.
    """

    name = "cross_entropy"
    latex_name = r"\operatorname{CE}"

    @classmethod
    def example(cls):
        Z, Y = MatrixSymbol("Z", 3, 2), MatrixSymbol("Y", 3, 2)
        return cls(Z, Y), [Z, Y], {Z: (-2.0, 2.0), Y: (0.0, 1.0)}

    def explicit(self, Z, Y):
        cols = list(zip(_columns(Z), _columns(Y), strict=True))
        terms = [logsumexp(z) - sum(zi * yi for zi, yi in zip(z, y, strict=True)) for z, y in cols]
        return sympy.Add(*terms) / len(cols)

    def vjp(self, index, G, out):
        Z, Y = self.args
        n = Z.shape[1]
        if index == 0:
            return (G / n) * (MatSoftmax(Z) - Y)
        return (-G / n) * Z

    def _numpycode(self, printer):
        Z, Y = (printer._print(a) for a in self.args)
        lse = printer._module_format("symdl.ops.kernels.logsumexp")
        return f"({lse}({Z}, axis=0) - ({Y}*{Z}).sum(axis=0, keepdims=True)).mean()"


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


class MatBCE(MatrixLoss):
    r"""Binary cross-entropy of probabilities over every entry (logs clamped at -100 in NumPy)."""

    name = "binary_cross_entropy"
    latex_name = r"\operatorname{BCE}"

    def explicit(self, P, Y):
        return binary_cross_entropy(list(P), list(Y))

    @classmethod
    def example(cls):
        P, Y = MatrixSymbol("P", 3, 2), MatrixSymbol("Y", 3, 2)
        return cls(P, Y), [P, Y], {P: (0.05, 0.95), Y: (0.0, 1.0)}

    def vjp(self, index, G, out):
        P, Y = self.args
        scale = G / self.count
        if index == 0:  # (P − Y) ⊘ (P ∘ (1 − P))
            odds = hadamard(P, OneMatrix(*P.shape) - P)
            return scale * hadamard(P - Y, sympy.HadamardPower(odds, -1))
        return scale * elementwise(Lambda(ENTRY, sympy.log(1 - ENTRY) - sympy.log(ENTRY)), P)

    def _numpycode(self, printer):
        P, Y = (printer._print(a) for a in self.args)
        log, log1p, maximum = (
            printer._module_format(f"numpy.{f}") for f in ("log", "log1p", "maximum")
        )
        return f"(-({Y}*{maximum}({log}({P}), -100.0) + (1 - {Y})*{maximum}({log1p}(-{P}), -100.0))).mean()"


class MatHuber(MatrixLoss):
    r"""Huber loss over every entry, mean: $\frac{1}{2}r^2$ inside $|r| \le \delta$, linear outside."""

    name = "huber"
    latex_name = r"\operatorname{Huber}"

    def __new__(cls, P, Y, delta=S.One):
        return super().__new__(cls, P, Y, delta)

    def explicit(self, P, Y, delta):
        return huber(list(P), list(Y), delta)

    def vjp(self, index, G, out):
        P, Y, delta = self.args
        if index == 2:
            raise TypeError("huber: delta is a constant here; it has no gradient for matrices")
        clip = Lambda(
            ENTRY, sympy.Piecewise((ENTRY, abs(ENTRY) <= delta), (delta * sympy.sign(ENTRY), True))
        )
        sign = 1 if index == 0 else -1
        return (sign * G / self.count) * elementwise(clip, P - Y)

    def _latex_body(self, printer):
        P, Y, delta = (printer._print(a) for a in self.args)
        tex = rf"{self.latex_name}_{{{delta}}}\left({P}, {Y}\right)"
        return tex

    def _numpycode(self, printer):
        P, Y, d = (printer._print(a) for a in self.args)
        abs_, where = printer._module_format("numpy.abs"), printer._module_format("numpy.where")
        r = f"({P} - {Y})"
        return f"{where}({abs_}({r}) <= {d}, 0.5*{r}**2, {d}*({abs_}({r}) - 0.5*{d})).mean()"


class MatHinge(MatrixLoss):
    r"""Hinge loss over every entry, mean of $\max(0, 1 - Y \circ S)$ for labels $\pm 1$."""

    name = "hinge"
    latex_name = r"\operatorname{hinge}"

    def explicit(self, S_, Y):
        return hinge(list(S_), list(Y))

    def vjp(self, index, G, out):
        scores, Y = self.args
        margin = OneMatrix(*scores.shape) - hadamard(Y, scores)
        active = elementwise(Lambda(ENTRY, sympy.Heaviside(ENTRY, 0)), margin)  # 0 at the margin
        other = Y if index == 0 else scores
        return (-G / self.count) * hadamard(other, active)

    def _numpycode(self, printer):
        scores, Y = (printer._print(a) for a in self.args)
        return f"{printer._module_format('numpy.maximum')}(0.0, 1 - {Y}*{scores}).mean()"


class _Penalty(MatrixLoss):
    r"""A norm of one weight matrix, as the scalar penalty `scalar` of its entries; printed
    $\lVert W \rVert_{norm}^{power}$."""

    latex_name = ""
    scalar: ClassVar
    norm: ClassVar[str] = ""
    power: ClassVar[str] = ""

    @classmethod
    def example(cls):
        W = MatrixSymbol("W", 3, 2)
        return cls(W), [W], {W: (-2.0, 2.0)}

    def explicit(self, W):
        return type(self).scalar(list(W))

    def _latex_body(self, printer):
        tex = rf"\left\lVert {printer._print(self.args[0])} \right\rVert_{{{self.norm}}}"
        tex += f"^{{{self.power}}}" if self.power else ""
        return tex


class MatL2(_Penalty):
    r"""Squared Frobenius norm $\lVert W \rVert_F^2 = \sum_{ij} W_{ij}^2$."""

    name = "l2"
    scalar = l2
    norm, power = "F", "2"

    def vjp(self, index, G, out):
        return (2 * G) * self.args[0]

    def _numpycode(self, printer):
        return f"({printer._print(self.args[0])}**2).sum()"


class MatL1(_Penalty):
    r"""Entrywise L1 norm $\sum_{ij} |W_{ij}|$; its derivative at 0 is 0."""

    name = "l1"
    scalar = l1
    norm = "1"

    def vjp(self, index, G, out):
        return G * elementwise(sympy.sign, self.args[0])

    def _numpycode(self, printer):
        return f"{printer._module_format('numpy.abs')}({printer._print(self.args[0])}).sum()"
