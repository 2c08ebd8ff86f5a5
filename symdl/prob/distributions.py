"""Distributions whose negative log-likelihoods are the usual losses: Gaussian (fixed or learned
variance), Bernoulli, categorical, Laplace and Poisson, each with a symbolic `log_prob` and `nll`.

>>> import sympy
>>> mu, y = sympy.symbols("mu y", real=True)
>>> Gaussian(mu).nll(y)
(-mu + y)**2/2 + log(2*pi)/2
"""

from __future__ import annotations

from collections.abc import Sequence

import sympy
from sympy import Expr, exp, log, pi

from symdl.ops.activations import sigmoid
from symdl.ops.base import flatten_vector
from symdl.ops.vector import log_softmax


class Distribution:
    """A distribution of an observation `y` whose parameters are SymPy expressions."""

    def log_prob(self, y) -> Expr:
        """$\\log p(y)$ as a SymPy expression."""
        raise TypeError(f"{type(self).__name__} does not define log_prob")

    def nll(self, y) -> Expr:
        """The negative log-likelihood $-\\log p(y)$, the loss this distribution gives."""
        return -self.log_prob(y)

    def nll_sum(self, ys: Sequence) -> Expr:
        """$-\\sum_i \\log p(y_i)$ over independent observations with these parameters."""
        return sympy.Add(*(self.nll(y) for y in ys))


class Gaussian(Distribution):
    r"""$\mathcal{N}(\mu, \sigma^2)$; `nll` is $\frac{(y-\mu)^2}{2\sigma^2} + \frac12\log(2\pi\sigma^2)$.

    With $\sigma^2 = 1$ the NLL is half the squared error plus a constant (MSE); with
    `Gaussian.with_log_variance(mu, s)` the variance $e^{s}$ is learned (heteroscedastic).
    """

    def __init__(self, mean, variance=sympy.S.One):
        self.mean, self.variance = sympy.sympify(mean), sympy.sympify(variance)

    @classmethod
    def with_log_variance(cls, mean, log_variance) -> Gaussian:
        """A Gaussian whose variance is $e^{s}$ for a free (learned) log-variance $s$."""
        g = cls(mean, exp(log_variance))
        g.log_variance = sympy.sympify(log_variance)
        return g

    def log_prob(self, y):
        log_var = getattr(self, "log_variance", None)
        log_var = log(self.variance) if log_var is None else log_var
        return -((y - self.mean) ** 2) / (2 * self.variance) - (log(2 * pi) + log_var) / 2


class Bernoulli(Distribution):
    r"""$p(y) = p^y (1-p)^{1-y}$; `nll` is the binary cross-entropy.

    `Bernoulli.from_logit(z)` takes $p = \sigma(z)$; its NLL is BCE on logits,
    $\log(1 + e^z) - y z$, the form that stays finite for large logits.
    """

    def __init__(self, probability):
        self.probability = sympy.sympify(probability)
        self.logit = None

    @classmethod
    def from_logit(cls, logit) -> Bernoulli:
        b = cls(sigmoid(logit))
        b.logit = sympy.sympify(logit)
        return b

    def log_prob(self, y):
        if self.logit is not None:  # log σ(z) = z − log(1 + e^z), log(1 − σ(z)) = −log(1 + e^z)
            return y * self.logit - log(1 + exp(self.logit))
        p = self.probability
        return y * log(p) + (1 - y) * log(1 - p)


class Categorical(Distribution):
    r"""A distribution over classes $0..K-1$ with probabilities $\operatorname{softmax}(z)$;
    `nll` is the softmax cross-entropy $-\log \operatorname{softmax}(z)_y$.

    The observation is a class index or a one-hot (or probability) vector.
    """

    def __init__(self, logits):
        self.logits = flatten_vector(logits, "Categorical")

    def log_prob(self, y):
        if isinstance(y, int):
            if not 0 <= y < len(self.logits):
                raise ValueError(f"Categorical: class {y} is outside 0..{len(self.logits) - 1}")
            return log_softmax(y, *self.logits)
        target = flatten_vector(y, "Categorical target")
        if len(target) != len(self.logits):
            raise ValueError(
                f"Categorical: target has {len(target)} entries but there are "
                f"{len(self.logits)} logits"
            )
        return sympy.Add(*(t * log_softmax(k, *self.logits) for k, t in enumerate(target)))


class Laplace(Distribution):
    r"""$p(y) = \frac{1}{2b} e^{-|y-\mu|/b}$; `nll` is $|y - \mu|/b + \log 2b$ (the L1 loss)."""

    def __init__(self, loc, scale=sympy.S.One):
        self.loc, self.scale = sympy.sympify(loc), sympy.sympify(scale)

    def log_prob(self, y):
        return -sympy.Abs(y - self.loc) / self.scale - log(2 * self.scale)


class Poisson(Distribution):
    r"""$p(y) = \lambda^y e^{-\lambda} / y!$; `nll` is $\lambda - y\log\lambda + \log y!$.

    `Poisson.from_log_rate(z)` takes $\lambda = e^z$, giving PyTorch's Poisson loss
    $e^z - y z$ (plus $\log y!$, constant in the parameters).
    """

    def __init__(self, rate):
        self.rate = sympy.sympify(rate)
        self.log_rate = None

    @classmethod
    def from_log_rate(cls, log_rate) -> Poisson:
        p = cls(exp(log_rate))
        p.log_rate = sympy.sympify(log_rate)
        return p

    def log_prob(self, y):
        log_rate = log(self.rate) if self.log_rate is None else self.log_rate
        return y * log_rate - self.rate - sympy.loggamma(y + 1)
