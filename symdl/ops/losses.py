"""Losses and penalties: MSE, binary cross-entropy (on probabilities and on logits),
softmax cross-entropy on logits, Huber, hinge, and the L1 and L2 penalties.

A loss of vectors is the mean over entries, as PyTorch's default reduction; its arguments are
stored flat (predictions, then targets, then parameters such as Huber's delta).
"""

from __future__ import annotations

from typing import ClassVar

import sympy
from sympy import (
    Abs,
    Function,
    Heaviside,
    Integer,
    Lambda,
    MatrixExpr,
    MatrixSymbol,
    OneMatrix,
    Piecewise,
    S,
    log,
    sign,
)
from sympy.core.function import ArgumentIndexError
from sympy.matrices import MatrixBase

from symdl.core.matrices import ENTRY, elementwise, hadamard
from symdl.ops.activations import sigmoid
from symdl.ops.base import MatrixLoss, Op, _columns, flatten_vector, is_vector, on_matrices
from symdl.ops.vector import MatSoftmax, _vector_latex, log_softmax, logsumexp, softmax


class _MeanLoss(Op):
    """Mean over entries of an elementwise loss `term(prediction, target, *params)`."""

    defaults: ClassVar[tuple] = ()
    short_name: ClassVar[str] = ""

    def __new__(cls, *args, **kwargs):
        if matrix := on_matrices(cls, args):
            return matrix
        if len(args) >= 2 and (is_vector(args[0]) or is_vector(args[1])):
            pred = flatten_vector(args[0], cls.__name__)
            target = flatten_vector(args[1], cls.__name__)
            if len(pred) != len(target):
                raise ValueError(
                    f"{cls.__name__}: prediction has {len(pred)} entries but target has "
                    f"{len(target)}"
                )
            args = (*pred, *target, *args[2:])
        n_params = len(cls.defaults)
        if n_params and (len(args) - n_params) % 2:
            args = (*args, *cls.defaults)
        if (len(args) - n_params) % 2 or len(args) - n_params < 2:
            raise TypeError(f"{cls.__name__}: expected (prediction, target); got {args!r}")
        return Function.__new__(cls, *args, **kwargs)

    @property
    def n(self) -> int:
        return (len(self.args) - len(self.defaults)) // 2

    @property
    def predictions(self) -> tuple:
        return self.args[: self.n]

    @property
    def targets(self) -> tuple:
        return self.args[self.n : 2 * self.n]

    @property
    def params(self) -> tuple:
        return self.args[2 * self.n :]

    def _pairs(self):
        return zip(self.predictions, self.targets, strict=True)

    def definition(self):
        return sympy.Add(*(self.term(p, y, *self.params) for p, y in self._pairs())) / self.n

    def fdiff(self, argindex=1):
        i = argindex - 1
        if not 0 <= i < len(self.args):
            raise ArgumentIndexError(self, argindex)
        if i >= 2 * self.n:
            k = i - 2 * self.n
            return (
                sympy.Add(*(self.dterm(p, y, *self.params)[2 + k] for p, y in self._pairs()))
                / self.n
            )
        p, y = self.predictions[i % self.n], self.targets[i % self.n]
        return self.dterm(p, y, *self.params)[i // self.n] / self.n

    @classmethod
    def example(cls):
        p = sympy.symbols("p0:2", real=True)
        y = sympy.symbols("y0:2", real=True)
        return cls(list(p), list(y)), {s: (-3.0, 3.0) for s in (*p, *y)}

    def _latex(self, printer, exp=None):
        parts = [_vector_latex(printer, self.predictions), _vector_latex(printer, self.targets)]
        sub = "".join(f"_{{{printer._print(a)}}}" for a in self.params)
        tex = rf"{self.latex_name}{sub}\left({', '.join(parts)}\right)"
        return rf"{tex}^{{{exp}}}" if exp is not None else tex

    def _numpycode(self, printer):
        terms = [self.numpy_term(printer, p, y, *self.params) for p, y in self._pairs()]
        total = " + ".join(terms)
        return f"({total})" if self.n == 1 else f"(({total})/{self.n})"


class mse(_MeanLoss):
    r"""Mean squared error $\frac{1}{n}\sum_i (\hat{y}_i - y_i)^2$."""

    latex_name = r"\operatorname{MSE}"
    aliases = ("MSE",)

    @staticmethod
    def term(p, y):
        return (p - y) ** 2

    @staticmethod
    def dterm(p, y):
        return 2 * (p - y), -2 * (p - y)

    @staticmethod
    def numpy_term(printer, p, y):
        return f"(({printer._print(p)}) - ({printer._print(y)}))**2"


class binary_cross_entropy(_MeanLoss):
    r"""Binary cross-entropy of probabilities $-\frac{1}{n}\sum_i y_i \log p_i + (1 - y_i)\log(1 - p_i)$.

    Its NumPy form clamps each log at -100, as PyTorch does, so a probability of exactly 0 or 1
    gives a finite loss.
    """

    latex_name = r"\operatorname{BCE}"
    aliases = ("BCE",)

    def stable_form(self):
        """On probabilities sigma(z): the logit form, finite for z of +-1000 (the program
        asks this; a sigma(z) the user names stays a step of its own)."""
        if all(isinstance(p, sigmoid) for p in self.predictions):
            return _bce_of_sigmoid(*(p.args[0] for p in self.predictions), *self.targets)
        return None

    @staticmethod
    def term(p, y):
        return -(y * log(p) + (1 - y) * log(1 - p))

    @staticmethod
    def dterm(p, y):
        return _bce_slope(p, y), _bce_target_slope(p, y)

    @classmethod
    def example(cls):
        p = sympy.symbols("p0:2", real=True)
        y = sympy.symbols("y0:2", real=True)
        return cls(list(p), list(y)), {**{s: (0.05, 0.95) for s in p}, **{s: (0.0, 1.0) for s in y}}

    @staticmethod
    def numpy_term(printer, p, y):
        maximum, log_, log1p = (
            printer._module_format(f"numpy.{f}") for f in ("maximum", "log", "log1p")
        )
        p, y = f"({printer._print(p)})", f"({printer._print(y)})"
        return f"-({y}*{maximum}({log_}({p}), -100.0) + (1 - {y})*{maximum}({log1p}(-{p}), -100.0))"


class binary_cross_entropy_with_logits(_MeanLoss):
    r"""Binary cross-entropy of logits $\frac{1}{n}\sum_i \operatorname{softplus}(z_i) - y_i z_i$.

    Equal to `binary_cross_entropy(sigmoid(z), y)`, but finite for logits of +-1000.
    """

    latex_name = r"\operatorname{BCE}_{\text{logits}}"

    @staticmethod
    def term(p, y):
        return sympy.log(1 + sympy.exp(p)) - y * p

    @staticmethod
    def dterm(p, y):
        return sigmoid(p) - y, -p

    @staticmethod
    def numpy_term(printer, p, y):
        p, y = f"({printer._print(p)})", f"({printer._print(y)})"
        return f"({printer._module_format('numpy.logaddexp')}(0.0, {p}) - {y}*{p})"


class _bce_of_sigmoid(binary_cross_entropy_with_logits):
    r"""`binary_cross_entropy(sigmoid(z), y)`, as it is written and shown, computed in its logit
    form: value softplus(z) - y z, derivative $\sigma(z) - y$ (finite for z of +-1000, where
    $\sigma(z)$ rounds to 0 or 1 and the chain rule through it would give 0/0)."""

    def _latex(self, printer, exp=None):
        probabilities = [sigmoid(z) for z in self.predictions]
        parts = [_vector_latex(printer, probabilities), _vector_latex(printer, self.targets)]
        tex = rf"\operatorname{{BCE}}\left({', '.join(parts)}\right)"
        return rf"{tex}^{{{exp}}}" if exp is not None else tex

    def _sympystr(self, printer):
        shown = [sigmoid(z) for z in self.predictions]
        if self.n > 1:
            return f"binary_cross_entropy({shown}, {list(self.targets)})"
        return (
            f"binary_cross_entropy({printer._print(shown[0])}, {printer._print(self.targets[0])})"
        )


class _Shown(Op):
    """A derivative shown and differentiated as its elementary `definition`, with a NumPy
    form of its own (clamped where the exact one is 0/0 or infinite)."""

    def fdiff(self, argindex=1):
        if not 1 <= argindex <= len(self.args):
            raise ArgumentIndexError(self, argindex)
        dummies = [sympy.Dummy() for _ in self.args]
        local = self.func(*dummies).definition().diff(dummies[argindex - 1])
        return local.xreplace(dict(zip(dummies, self.args, strict=True)))

    def doit(self, **hints):
        return self.definition().doit(**hints) if hints.get("deep", True) else self

    def _latex(self, printer, exp=None):
        tex = printer._print(self.definition())
        return rf"\left({tex}\right)^{{{exp}}}" if exp is not None else tex

    def _sympystr(self, printer):
        return printer.parenthesize(self.definition(), 40)


class _bce_slope(_Shown):
    r"""$\partial \operatorname{BCE}/\partial p = (p - y) / (p (1 - p))$; in NumPy the
    denominator is clamped at 1e-12, as PyTorch does, so p = 0 or 1 gives a finite slope."""

    nargs = 2

    def definition(self):
        p, y = self.args
        return (p - y) / (p * (1 - p))

    def _numpycode(self, printer):
        p, y = (f"({printer._print(a)})" for a in self.args)
        maximum = printer._module_format("numpy.maximum")
        return f"(({p} - {y})/{maximum}({p}*(1 - {p}), 1e-12))"


class _bce_target_slope(_Shown):
    r"""$\partial \operatorname{BCE}/\partial y = \log(1 - p) - \log p$; in NumPy each log
    is clamped at -100, the derivative of the clamped value."""

    nargs = 2

    def definition(self):
        p, _ = self.args
        return log(1 - p) - log(p)

    def _numpycode(self, printer):
        p = f"({printer._print(self.args[0])})"
        maximum, log_, log1p = (
            printer._module_format(f"numpy.{f}") for f in ("maximum", "log", "log1p")
        )
        return f"({maximum}({log1p}(-{p}), -100.0) - {maximum}({log_}({p}), -100.0))"


class huber(_MeanLoss):
    r"""Huber loss: $\frac{1}{2} r^2$ for $|r| \le \delta$, else $\delta(|r| - \frac{\delta}{2})$, $r = \hat{y} - y$."""

    latex_name = r"\operatorname{Huber}"
    defaults = (S.One,)

    @staticmethod
    def term(p, y, delta):
        r = p - y
        return Piecewise((r**2 / 2, Abs(r) <= delta), (delta * (Abs(r) - delta / 2), True))

    @staticmethod
    def dterm(p, y, delta):
        r = p - y
        inner = Abs(r) <= delta
        dr = Piecewise((r, inner), (delta * sign(r), True))
        return dr, -dr, Piecewise((0, inner), (Abs(r) - delta, True))

    @classmethod
    def example(cls):
        expr, ranges = super().example()
        d = sympy.Symbol("delta", positive=True)
        return cls(list(expr.predictions), list(expr.targets), d), {**ranges, d: (0.5, 2.0)}

    @staticmethod
    def numpy_term(printer, p, y, delta):
        abs_, where = printer._module_format("numpy.abs"), printer._module_format("numpy.where")
        r = f"(({printer._print(p)}) - ({printer._print(y)}))"
        d = f"({printer._print(delta)})"
        return f"{where}({abs_}({r}) <= {d}, 0.5*{r}**2, {d}*({abs_}({r}) - 0.5*{d}))"


class hinge(_MeanLoss):
    r"""Hinge loss $\frac{1}{n}\sum_i \max(0, 1 - y_i s_i)$ of scores $s$ and labels $y = \pm 1$."""

    latex_name = r"\operatorname{hinge}"

    @staticmethod
    def term(s, y):
        return sympy.Max(0, 1 - y * s)

    @staticmethod
    def dterm(s, y):
        active = Heaviside(1 - y * s, 0)  # 0 exactly at the margin, the kink convention
        return -y * active, -s * active

    @staticmethod
    def numpy_term(printer, s, y):
        s, y = f"({printer._print(s)})", f"({printer._print(y)})"
        return f"{printer._module_format('numpy.maximum')}(0.0, 1 - {y}*{s})"


class cross_entropy(Op):
    r"""Softmax cross-entropy of logits $z$ against a distribution $y$: $-\sum_i y_i \log\operatorname{softmax}(z)_i$.

    The target may also be a class index: `cross_entropy(z, 2)` is `cross_entropy(z, [0, 0, 1, ...])`.
    """

    latex_name = r"\operatorname{CE}"
    aliases = ("CE",)

    def __new__(cls, *args, normalized: bool = False, **kwargs):
        if normalized:
            return cls._normalized(*args)
        if matrix := on_matrices(cls, args):
            return matrix
        if len(args) == 2 and all(isinstance(a, MatrixBase) and 1 not in a.shape for a in args):
            # explicit matrices, one example per column: the matrix form, written out
            return cls.matrix_class(*map(sympy.ImmutableMatrix, args)).doit()
        if len(args) == 2 and is_vector(args[0]):
            z = flatten_vector(args[0], "cross_entropy")
            y = args[1]
            if isinstance(y, int | Integer):
                if not 0 <= int(y) < len(z):
                    raise ValueError(f"cross_entropy: class {y} is outside 0..{len(z) - 1}")
                y = [int(k == int(y)) for k in range(len(z))]
            y = flatten_vector(y, "cross_entropy")
            if len(y) != len(z):
                raise ValueError(f"cross_entropy: {len(z)} logits but a target of {len(y)} entries")
            args = (*z, *y)
        if len(args) % 2 or not args:
            raise TypeError(f"cross_entropy: expected (logits, target); got {args!r}")
        return Function.__new__(cls, *args, **kwargs)

    @classmethod
    def _normalized(cls, z, y):
        """The loss for targets that sum to 1 (one-hot labels, probabilities), in the form
        whose gradient is softmax(z) - y."""
        if isinstance(z, MatrixExpr) or isinstance(y, MatrixExpr):
            return MatCrossEntropyNormalized(z, y)
        if isinstance(z, MatrixBase) and 1 not in z.shape:
            return MatCrossEntropyNormalized(*map(sympy.ImmutableMatrix, (z, y))).doit()
        ce = cls(z, y)
        return logsumexp(*ce.logits) - sympy.Add(
            *(zi * yi for zi, yi in zip(ce.logits, ce.targets, strict=True))
        )

    @property
    def logits(self) -> tuple:
        return self.args[: len(self.args) // 2]

    @property
    def targets(self) -> tuple:
        return self.args[len(self.args) // 2 :]

    def definition(self):
        z = self.logits
        lse = log(sympy.Add(*(sympy.exp(zi) for zi in z)))
        return sympy.Add(*(yi * (lse - zi) for zi, yi in zip(z, self.targets, strict=True)))

    def fdiff(self, argindex=1):
        n, i = len(self.logits), argindex - 1
        if 0 <= i < n:
            return sympy.Add(*self.targets) * softmax(i, *self.logits) - self.targets[i]
        if n <= i < 2 * n:
            return -log_softmax(i - n, *self.logits)
        raise ArgumentIndexError(self, argindex)

    def numeric_form(self):
        lse = logsumexp(*self.logits)
        return sympy.Add(*(y * (lse - z) for z, y in zip(self.logits, self.targets, strict=True)))

    @classmethod
    def example(cls):
        z = sympy.symbols("z0:3", real=True)
        y = sympy.symbols("y0:3", real=True)
        return cls(list(z), list(y)), {**{s: (-3.0, 3.0) for s in z}, **{s: (0.0, 1.0) for s in y}}

    def _latex(self, printer, exp=None):
        parts = (_vector_latex(printer, self.logits), _vector_latex(printer, self.targets))
        tex = rf"{self.latex_name}\left({', '.join(parts)}\right)"
        return rf"{tex}^{{{exp}}}" if exp is not None else tex

    def _numpycode(self, printer):
        return f"({printer._print(self.numeric_form())})"


class _Penalty(Op):
    """A norm-based penalty of a parameter vector, stored flat."""

    def __new__(cls, *args, **kwargs):
        if matrix := on_matrices(cls, args):
            return matrix
        if len(args) == 1 and is_vector(args[0]):
            args = flatten_vector(args[0], cls.__name__)
        if not args:
            raise TypeError(f"{cls.__name__}: expected at least one parameter")
        return Function.__new__(cls, *args, **kwargs)

    @classmethod
    def example(cls):
        w = sympy.symbols("w0:3", real=True)
        return cls(list(w)), {s: (-3.0, 3.0) for s in w}

    def _latex(self, printer, exp=None):
        tex = self.latex_form(_vector_latex(printer, self.args))
        return rf"\left({tex}\right)^{{{exp}}}" if exp is not None else tex

    def _numpycode(self, printer):
        return f"({printer._print(self.definition())})"


class l1(_Penalty):
    r"""L1 penalty $\lVert w \rVert_1 = \sum_i |w_i|$; its derivative at $w_i = 0$ is 0."""

    def definition(self):
        return sympy.Add(*(Abs(w) for w in self.args))

    def fdiff(self, argindex=1):
        if not 1 <= argindex <= len(self.args):
            raise ArgumentIndexError(self, argindex)
        return sign(self.args[argindex - 1])

    @staticmethod
    def latex_form(w):
        return rf"\left\lVert {w} \right\rVert_{{1}}"


class l2(_Penalty):
    r"""L2 penalty $\lVert w \rVert_2^2 = \sum_i w_i^2$ (weight decay $\lambda$ adds $2\lambda w$ to the gradient)."""

    def definition(self):
        return sympy.Add(*(w**2 for w in self.args))

    def fdiff(self, argindex=1):
        if not 1 <= argindex <= len(self.args):
            raise ArgumentIndexError(self, argindex)
        return 2 * self.args[argindex - 1]

    @staticmethod
    def latex_form(w):
        return rf"\left\lVert {w} \right\rVert_{{2}}^{{2}}"


# ---------------------------------------------------------------- matrix forms (a batch per column)


class _MeanMatrixLoss(MatrixLoss):
    """The matrix form of a `_MeanLoss`: its NumPy form is the scalar op's term, written once,
    applied to whole arrays and averaged."""

    def _numpycode(self, printer):
        mean = printer._module_format("symdl.ops.runtime.mean_all")
        return f"{mean}({self.scalar.numpy_term(printer, *self.args)})"


class MatCrossEntropy(MatrixLoss):
    r"""Softmax cross-entropy of logits $Z$ against targets $Y$, one example per column,
    averaged over the $N$ columns: PyTorch's $-\frac{1}{N}\sum_j Y_{:j}^\top
    \log\operatorname{softmax}(Z_{:j})$, the list form `cross_entropy(z, y)` on each column,
    for any targets (soft ones that do not sum to 1 too).

    Its gradient is $(\operatorname{softmax}(Z)\operatorname{diag}(\mathbf{1}^\top Y) - Y)/N$.
    For targets whose columns each sum to 1 (one-hot labels, probabilities), say so:
    `cross_entropy(Z, Y, normalized=True)` is the same loss on such targets, with the textbook
    gradient $(\operatorname{softmax}(Z) - Y)/N$; a model's loss is that one, since it makes
    its targets from labels.
    """

    name = "cross_entropy"
    scalar = cross_entropy
    latex_name = r"\operatorname{CE}"

    @classmethod
    def example(cls):
        Z, Y = MatrixSymbol("Z", 3, 2), MatrixSymbol("Y", 3, 2)
        return cls(Z, Y), [Z, Y], {Z: (-2.0, 2.0), Y: (0.0, 1.0)}

    def explicit(self, Z, Y):
        columns = list(zip(_columns(Z), _columns(Y), strict=True))
        return sympy.Add(*(cross_entropy(z, y) for z, y in columns)) / len(columns)

    def vjp(self, index, G, out):
        Z, Y = self.args
        k, n = Z.shape
        if index == 0:  # softmax(Z) with each column scaled by the total of its targets
            totals = OneMatrix(k, 1) * (OneMatrix(1, k) * Y)
            return (G / n) * (hadamard(MatSoftmax(Z), totals) - Y)
        return (-G / n) * log_softmax.matrix_form(Z)

    def _numpycode(self, printer):
        Z, Y = (printer._print(a) for a in self.args)
        lse = printer._module_format("symdl.ops.runtime.logsumexp")
        mean = printer._module_format("symdl.ops.runtime.mean_all")
        return f"{mean}((({Y})*({lse}({Z}, axis=0) - ({Z}))).sum(axis=0))"


class MatCrossEntropyNormalized(MatCrossEntropy):
    r"""Softmax cross-entropy for targets whose columns each sum to 1 (one-hot labels or
    probabilities): $\frac{1}{N}\sum_j \operatorname{logsumexp}(Z_{:j}) - Y_{:j}^\top Z_{:j}$,
    which on such targets is `MatCrossEntropy`, and whose gradient is the textbook
    $(\operatorname{softmax}(Z) - Y)/N$. Written `cross_entropy(Z, Y, normalized=True)`."""

    @classmethod
    def example(cls):
        Z, C = MatrixSymbol("Z", 3, 2), MatrixSymbol("C", 3, 2)
        # targets that sum to 1 whatever C is: the assumption this form rests on
        return cls(Z, MatSoftmax(C)), [Z, C], {Z: (-2.0, 2.0), C: (-2.0, 2.0)}

    def explicit(self, Z, Y):
        columns = list(zip(_columns(Z), _columns(Y), strict=True))
        terms = (cross_entropy(z, y, normalized=True) for z, y in columns)
        return sympy.Add(*terms) / len(columns)

    def vjp(self, index, G, out):
        Z, Y = self.args
        n = Z.shape[1]
        if index == 0:
            return (G / n) * (MatSoftmax(Z) - Y)
        return (-G / n) * Z

    def _sympystr(self, printer):
        Z, Y = (printer._print(a) for a in self.args)
        return f"cross_entropy({Z}, {Y}, normalized=True)"

    def _numpycode(self, printer):
        Z, Y = (printer._print(a) for a in self.args)
        lse = printer._module_format("symdl.ops.runtime.logsumexp")
        mean = printer._module_format("symdl.ops.runtime.mean_all")
        return f"{mean}({lse}({Z}, axis=0) - ({Y}*{Z}).sum(axis=0, keepdims=True))"


class MatMSE(_MeanMatrixLoss):
    r"""Mean squared error over every entry: $\frac{1}{kN}\sum_{ij} (P_{ij} - Y_{ij})^2$."""

    name = "mse"
    scalar = mse
    latex_name = r"\operatorname{MSE}"

    def explicit(self, P, Y):
        return mse(list(P), list(Y))

    def vjp(self, index, G, out):
        P, Y = self.args
        sign = 2 if index == 0 else -2
        return (sign * G / self.count) * (P - Y)


class MatBCEWithLogits(_MeanMatrixLoss):
    r"""Binary cross-entropy of logits over every entry: mean of $\operatorname{softplus}(Z) - Y \circ Z$."""

    name = "binary_cross_entropy_with_logits"
    scalar = binary_cross_entropy_with_logits
    latex_name = r"\operatorname{BCE}_{\text{logits}}"

    def explicit(self, Z, Y):
        return binary_cross_entropy_with_logits(list(Z), list(Y))

    def vjp(self, index, G, out):
        Z, Y = self.args
        if index == 0:
            return (G / self.count) * (elementwise(sigmoid, Z) - Y)
        return (-G / self.count) * Z


class _MatBCEOfSigmoid(MatBCEWithLogits):
    r"""`binary_cross_entropy(sigmoid(Z), Y)` as written and shown, computed in its logit form:
    gradient $(\sigma(Z) - Y)/(kN)$, finite for logits of +-1000 (the matrix form of
    `_bce_of_sigmoid`)."""

    def _latex_body(self, printer):
        Z, Y = self.args
        shown = printer._print(elementwise(sigmoid, Z))
        return rf"\operatorname{{BCE}}\left({shown}, {printer._print(Y)}\right)"

    def _sympystr(self, printer):
        Z, Y = self.args
        return (
            f"binary_cross_entropy({printer._print(elementwise(sigmoid, Z))}, {printer._print(Y)})"
        )


def _sigmoid_argument(P):
    """Z when `P` is sigmoid(Z) entry by entry, else None."""
    function = getattr(P, "function", None)
    if isinstance(function, Lambda) and function.expr == sigmoid(function.variables[0]):
        return P.args[1]
    return None


class MatBCE(_MeanMatrixLoss):
    r"""Binary cross-entropy of probabilities over every entry (logs clamped at -100 in NumPy)."""

    name = "binary_cross_entropy"
    scalar = binary_cross_entropy
    latex_name = r"\operatorname{BCE}"

    def stable_form(self):
        """On probabilities sigmoid(Z): the logit form, whose gradient is (sigmoid(Z) - Y)/(kN)
        and which stays finite for logits of +-1000."""
        P, Y = self.args
        Z = _sigmoid_argument(P)
        return _MatBCEOfSigmoid(Z, Y) if Z is not None else None

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


class MatHuber(_MeanMatrixLoss):
    r"""Huber loss over every entry, mean: $\frac{1}{2}r^2$ inside $|r| \le \delta$, linear outside."""

    name = "huber"
    scalar = huber
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


class MatHinge(_MeanMatrixLoss):
    r"""Hinge loss over every entry, mean of $\max(0, 1 - Y \circ S)$ for labels $\pm 1$."""

    name = "hinge"
    scalar = hinge
    latex_name = r"\operatorname{hinge}"

    def explicit(self, S_, Y):
        return hinge(list(S_), list(Y))

    def vjp(self, index, G, out):
        scores, Y = self.args
        margin = OneMatrix(*scores.shape) - hadamard(Y, scores)
        active = elementwise(Lambda(ENTRY, sympy.Heaviside(ENTRY, 0)), margin)  # 0 at the margin
        other = Y if index == 0 else scores
        return (-G / self.count) * hadamard(other, active)


class _MatrixPenalty(MatrixLoss):
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


class MatL2(_MatrixPenalty):
    r"""Squared Frobenius norm $\lVert W \rVert_F^2 = \sum_{ij} W_{ij}^2$."""

    name = "l2"
    scalar = l2
    norm, power = "F", "2"

    def vjp(self, index, G, out):
        return (2 * G) * self.args[0]

    def _numpycode(self, printer):
        return f"({printer._print(self.args[0])}**2).sum()"


class MatL1(_MatrixPenalty):
    r"""Entrywise L1 norm $\sum_{ij} |W_{ij}|$; its derivative at 0 is 0."""

    name = "l1"
    scalar = l1
    norm = "1"

    def vjp(self, index, G, out):
        return G * elementwise(sympy.sign, self.args[0])

    def _numpycode(self, printer):
        return f"{printer._module_format('numpy.abs')}({printer._print(self.args[0])}).sum()"
