r"""The heteroscedastic Gaussian NLL as a model's loss: output row 0 is the mean $\mu$, row 1
the log-variance $s$; the targets' row 0 holds $y$ (a model's targets have as many rows as
outputs; row 1 is unused). The loss is the batch mean of $\frac12\left(s + (y-\mu)^2 e^{-s} + \log 2\pi\right)$."""

from __future__ import annotations

import numpy as np
import sympy
from sympy import Integer, MatrixSymbol, exp, log, pi

from symdl.nn.losses import Loss, TargetError
from symdl.ops.base import MatrixLoss, MatrixOp


def _heads(Z, Y):
    if Z.shape[0] != 2 or Y.shape[0] not in (1, 2) or Z.shape[1] != Y.shape[1]:
        raise ValueError(
            f"gaussian_nll: outputs have shape {Z.shape} and targets {Y.shape}; give outputs "
            "(2, N) (mean row, log-variance row) and targets (1, N) (or (2, N), row 0 used)"
        )


class MatGaussianNLL(MatrixLoss):
    r"""$\frac{1}{N}\sum_j \frac12\left(s_j + (y_j - \mu_j)^2 e^{-s_j} + \log 2\pi\right)$ with
    $\mu = Z_{0,:}$, $s = Z_{1,:}$ (a mean head and a log-variance head)."""

    name = "gaussian_nll"
    latex_name = r"\operatorname{NLL}_{\mathcal{N}}"

    def __new__(cls, Z, Y):
        _heads(Z, Y)
        return sympy.Expr.__new__(cls, Z, Y)

    @property
    def count(self):
        return self.args[1].shape[1]

    @classmethod
    def example(cls):
        Z, Y = MatrixSymbol("Z", 2, 3), MatrixSymbol("Y", 1, 3)
        return cls(Z, Y), [Z, Y], {Z: (-1.5, 1.5), Y: (-2.0, 2.0)}

    def explicit(self, Z, Y):
        n = Z.shape[1]
        terms = [
            (Z[1, j] + (Y[0, j] - Z[0, j]) ** 2 * exp(-Z[1, j]) + log(2 * pi)) / 2 for j in range(n)
        ]
        return sympy.Add(*terms) / n

    def vjp(self, index, G, out):
        return (G / self.count) * GaussianNLLGradient(*self.args, Integer(index))

    def _numpycode(self, printer):
        Z, Y = (printer._print(a) for a in self.args)
        exp_ = printer._module_format("numpy.exp")
        return (
            f"(0.5*(({Z})[1:2] + (({Y})[0:1] - ({Z})[0:1])**2*{exp_}(-({Z})[1:2])).mean()"
            f" + {0.5 * float(np.log(2 * np.pi))!r})"
        )


class GaussianNLLGradient(MatrixOp):
    r"""$N$ times the gradient of `MatGaussianNLL(Z, Y)` by argument `index`: for $Z$ the rows
    $-(y-\mu)e^{-s}$ and $\frac12(1 - (y-\mu)^2 e^{-s})$; for $Y$ the row $(y-\mu)e^{-s}$."""

    name = "gaussian_nll_gradient"
    latex_name = r"\nabla\operatorname{NLL}_{\mathcal{N}}"

    @property
    def shape(self):
        return self.args[int(self.args[2])].shape

    def explicit(self, Z, Y, index):
        rows = []
        r = [(Y[0, j] - Z[0, j]) * exp(-Z[1, j]) for j in range(Z.shape[1])]
        if int(index) == 0:
            rows = [
                [-e for e in r],
                [(1 - (Y[0, j] - Z[0, j]) * r[j]) / 2 for j in range(Z.shape[1])],
            ]
        else:
            rows = [r] + [[0] * len(r)] * (Y.shape[0] - 1)
        return sympy.ImmutableMatrix(rows)

    def _numpycode(self, printer):
        Z, Y = (printer._print(a) for a in self.args[:2])
        np_ = printer._module_format("numpy.concatenate")
        exp_ = printer._module_format("numpy.exp")
        r = f"((({Y})[0:1] - ({Z})[0:1])*{exp_}(-({Z})[1:2]))"
        if int(self.args[2]) == 0:
            return f"{np_}([-{r}, 0.5*(1 - (({Y})[0:1] - ({Z})[0:1])*{r})], axis=0)"
        if self.shape[0] == 1:
            return r
        return f"{np_}([{r}, 0*{r}], axis=0)"


class GaussianNLL(Loss):
    """Heteroscedastic regression: the model has 2 outputs, a mean and a log-variance, and
    trains on the Gaussian negative log-likelihood; `predict` gives both rows (mean, log-variance)."""

    name = "gaussian_nll"

    def expression(self, Z, Y):
        return MatGaussianNLL(Z, Y)

    def targets(self, y, outputs):
        if outputs != 2:
            raise TargetError(
                f"{self.name}: the model has {outputs} outputs; it needs 2 (mean, log-variance)"
            )
        y = np.asarray(y, dtype=float)
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if y.ndim != 1:
            raise TargetError(f"{self.name}: targets of shape {y.shape}; give (N,) values")
        return np.vstack([y, np.zeros_like(y)])
