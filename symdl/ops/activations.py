"""Elementwise activations: ReLU, leaky ReLU, sigmoid, softplus, ELU, GELU, SiLU, Mish.

Kinks follow one convention, as PyTorch does: at the kink the derivative is the slope on its
left (0 for ReLU at 0, alpha for leaky ReLU at 0), never an average of the two sides.
"""

from __future__ import annotations

import sympy
from sympy import Function, Heaviside, Piecewise, Rational, erf, exp, log, pi, sqrt, tanh
from sympy.core.function import ArgumentIndexError

from symdl.core.tidy import REWRITES as textbook_rewrites
from symdl.ops.base import Op, on_matrices

_ONE_PERCENT = Rational(1, 100)


class relu(Op):
    r"""Rectified linear unit $\operatorname{ReLU}(x) = \max(x, 0)$; $\operatorname{ReLU}'(0) = 0$."""

    latex_name = r"\operatorname{ReLU}"
    aliases = ("ReLU", "Relu")
    init = "he"
    nargs = 1

    def definition(self):
        return sympy.Max(self.args[0], 0)

    def fdiff(self, argindex=1):
        if argindex != 1:
            raise ArgumentIndexError(self, argindex)
        return Heaviside(self.args[0], 0)

    def _numpycode(self, printer):
        return self._np(printer, "numpy.maximum", self.args[0], "0.0")


class leaky_relu(Op):
    r"""Leaky ReLU $x$ for $x > 0$, $\alpha x$ otherwise ($\alpha = 0.01$ by default)."""

    latex_name = r"\operatorname{LeakyReLU}"
    aliases = ("LeakyReLU",)
    init = "he"

    def __new__(cls, x, alpha=_ONE_PERCENT, **kwargs):
        return on_matrices(cls, (x, alpha)) or Function.__new__(cls, x, alpha, **kwargs)

    def definition(self):
        x, alpha = self.args
        return Piecewise((x, x > 0), (alpha * x, True))

    def fdiff(self, argindex=1):
        x, alpha = self.args
        if argindex == 1:
            return Piecewise((1, x > 0), (alpha, True))
        if argindex == 2:
            return Piecewise((0, x > 0), (x, True))
        raise ArgumentIndexError(self, argindex)

    @classmethod
    def example(cls):
        x, a = sympy.symbols("x alpha", real=True)
        return cls(x, a), {x: (-3.0, 3.0), a: (0.01, 0.5)}

    def _latex(self, printer, exp=None):
        x, alpha = (printer._print(a) for a in self.args)
        tex = rf"{self.latex_name}_{{{alpha}}}\left({x}\right)"
        return rf"{tex}^{{{exp}}}" if exp is not None else tex

    def _numpycode(self, printer):
        x, alpha = (printer._print(a) for a in self.args)
        return f"{printer._module_format('numpy.where')}(({x}) > 0, {x}, ({alpha})*({x}))"


class sigmoid(Op):
    r"""Logistic function $\sigma(x) = 1 / (1 + e^{-x})$, with $\sigma' = \sigma (1 - \sigma)$."""

    latex_name = r"\sigma"
    aliases = ("sigma", "σ")
    nargs = 1

    def definition(self):
        return 1 / (1 + exp(-self.args[0]))

    def fdiff(self, argindex=1):
        if argindex != 1:
            raise ArgumentIndexError(self, argindex)
        return self * (1 - self)

    def _numpycode(self, printer):  # expit stays finite and exact for |x| large
        return self._np(printer, "scipy.special.expit", self.args[0])

    def composed(self, outer):
        """log(sigmoid(z)) as one step, finite for z = -1000 (the program asks this)."""
        return _log_sigmoid(self.args[0]) if outer is log else None


def _sigmoid_in_textbook_form(node):
    """exp(u)/(exp(u) + 1), exp(u)/(1 + exp(u)) and 1/(1 + exp(-u)) as sigmoid(u) (what the
    derivative of log(1 + e^u) comes out as), for closed forms; else None."""
    if not isinstance(node, sympy.Mul | sympy.Pow) or isinstance(node, sympy.MatrixExpr):
        return None
    factors = list(sympy.Mul.make_args(node))
    for k, f in enumerate(factors):  # exp(u) sigmoid(-u) = sigmoid(u)
        if isinstance(f, sigmoid) and exp(-f.args[0]) in factors:
            rest = factors[:k] + factors[k + 1 :]
            rest.remove(exp(-f.args[0]))
            return sympy.Mul(sigmoid(-f.args[0]), *rest)
    for k, f in enumerate(factors):
        if not (isinstance(f, sympy.Pow) and f.exp == -1 and isinstance(f.base, sympy.Add)):
            continue
        terms = f.base.args
        if len(terms) != 2 or sympy.S.One not in terms:
            continue
        e = terms[0] if terms[1] == 1 else terms[1]
        if not isinstance(e, exp):
            continue
        u = e.args[0]
        rest = factors[:k] + factors[k + 1 :]
        if e in rest:  # exp(u)/(1 + exp(u))
            rest.remove(e)
            return sympy.Mul(sigmoid(u), *rest)
        return sympy.Mul(sigmoid(-u), *rest)  # 1/(1 + exp(-u))
    return None


textbook_rewrites.append(_sigmoid_in_textbook_form)


class _log_sigmoid(Op):
    r"""$\log \sigma(x) = -\operatorname{softplus}(-x)$, written and shown as log(sigmoid(x)),
    with derivative $\sigma(-x)$: finite where $\sigma(x)$ rounds to 0 (x of -1000)."""

    nargs = 1

    def definition(self):
        return -log(1 + exp(-self.args[0]))

    def fdiff(self, argindex=1):
        if argindex != 1:
            raise ArgumentIndexError(self, argindex)
        return sigmoid(-self.args[0])

    def _latex(self, printer, exp=None):
        tex = rf"\log{{\left(\sigma\left({printer._print(self.args[0])}\right) \right)}}"
        return rf"{tex}^{{{exp}}}" if exp is not None else tex

    def _sympystr(self, printer):
        return f"log(sigmoid({printer._print(self.args[0])}))"

    def _numpycode(self, printer):
        return f"(-{self._np(printer, 'numpy.logaddexp', '0.0', -self.args[0])})"


class softplus(Op):
    r"""Softplus $\log(1 + e^{x})$, a smooth ReLU whose derivative is $\sigma(x)$."""

    latex_name = r"\operatorname{softplus}"
    nargs = 1

    def definition(self):
        return log(1 + exp(self.args[0]))

    def fdiff(self, argindex=1):
        if argindex != 1:
            raise ArgumentIndexError(self, argindex)
        return sigmoid(self.args[0])

    def _numpycode(self, printer):  # log(e^0 + e^x) without overflow
        return self._np(printer, "numpy.logaddexp", "0.0", self.args[0])


class elu(Op):
    r"""Exponential linear unit: $x$ for $x > 0$, $\alpha (e^{x} - 1)$ otherwise."""

    latex_name = r"\operatorname{ELU}"
    aliases = ("ELU",)
    init = "he"

    def __new__(cls, x, alpha=sympy.S.One, **kwargs):
        return on_matrices(cls, (x, alpha)) or Function.__new__(cls, x, alpha, **kwargs)

    def definition(self):
        x, alpha = self.args
        return Piecewise((x, x > 0), (alpha * (exp(x) - 1), True))

    def fdiff(self, argindex=1):
        x, alpha = self.args
        if argindex == 1:  # alpha e^x written as elu + alpha: no overflow for large x
            return Piecewise((1, x > 0), (self + alpha, True))
        if argindex == 2:
            return Piecewise((0, x > 0), (exp(x) - 1, True))
        raise ArgumentIndexError(self, argindex)

    @classmethod
    def example(cls):
        x, a = sympy.symbols("x alpha", real=True)
        return cls(x, a), {x: (-3.0, 3.0), a: (0.2, 2.0)}

    def _latex(self, printer, exp=None):
        x, alpha = self.args
        sub = "" if alpha == 1 else f"_{{{printer._print(alpha)}}}"
        tex = rf"{self.latex_name}{sub}\left({printer._print(x)}\right)"
        return rf"{tex}^{{{exp}}}" if exp is not None else tex

    def _numpycode(self, printer):
        x, alpha = (printer._print(a) for a in self.args)
        where, expm1, minimum = (
            printer._module_format(f"numpy.{f}") for f in ("where", "expm1", "minimum")
        )
        return f"{where}(({x}) > 0, {x}, ({alpha})*{expm1}({minimum}({x}, 0.0)))"


class gelu(Op):
    r"""Gaussian error linear unit $x\,\Phi(x) = \frac{x}{2}\left(1 + \operatorname{erf}(x/\sqrt{2})\right)$."""

    latex_name = r"\operatorname{GELU}"
    aliases = ("GELU",)
    init = "he"
    nargs = 1

    def definition(self):
        x = self.args[0]
        return x / 2 * (1 + erf(x / sqrt(2)))

    def fdiff(self, argindex=1):
        if argindex != 1:
            raise ArgumentIndexError(self, argindex)
        x = self.args[0]
        return (1 + erf(x / sqrt(2))) / 2 + x * exp(-(x**2) / 2) / sqrt(2 * pi)

    def _numpycode(self, printer):  # ndtr is Phi, accurate in both tails
        x = printer._print(self.args[0])
        return f"(({x})*{printer._module_format('scipy.special.ndtr')}({x}))"


class silu(Op):
    r"""Sigmoid linear unit (swish) $x\,\sigma(x)$, with derivative $\sigma(x)(1 + x(1 - \sigma(x)))$."""

    latex_name = r"\operatorname{SiLU}"
    aliases = ("SiLU", "swish")
    init = "he"
    nargs = 1

    def definition(self):
        x = self.args[0]
        return x / (1 + exp(-x))

    def fdiff(self, argindex=1):
        if argindex != 1:
            raise ArgumentIndexError(self, argindex)
        x = self.args[0]
        s = sigmoid(x)
        return s * (1 + x * (1 - s))

    def _numpycode(self, printer):
        x = printer._print(self.args[0])
        return f"(({x})*{printer._module_format('scipy.special.expit')}({x}))"


class mish(Op):
    r"""Mish $x \tanh(\operatorname{softplus}(x))$ (Misra, 2019), with derivative
    $\tanh(s) + x\,\sigma(x)\,(1 - \tanh^2(s))$ where $s = \operatorname{softplus}(x)$."""

    latex_name = r"\operatorname{mish}"
    init = "he"
    nargs = 1

    def definition(self):
        x = self.args[0]
        return x * tanh(log(1 + exp(x)))

    def fdiff(self, argindex=1):
        if argindex != 1:
            raise ArgumentIndexError(self, argindex)
        x = self.args[0]
        t = tanh(softplus(x))
        return t + x * sigmoid(x) * (1 - t**2)

    def numeric_form(self):
        r"""$x \tanh(\operatorname{softplus}(x))$: compiled code computes
        $\tanh(\operatorname{softplus}(x))$ once for mish and its derivative."""
        x = self.args[0]
        return x * tanh(softplus(x))

    def _numpycode(self, printer):  # softplus by logaddexp: finite for |x| large
        x = printer._print(self.args[0])
        tanh_, logaddexp = (printer._module_format(f"numpy.{f}") for f in ("tanh", "logaddexp"))
        return f"(({x})*{tanh_}({logaddexp}(0.0, {x})))"
