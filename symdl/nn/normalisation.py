r"""Batch and layer normalisation: the statistics as named steps (mu, C, sigma^2), epsilon a
symbol, gamma and beta per feature or, after a convolution, per channel."""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np
import sympy
from sympy import HadamardPower, Integer, MatrixSymbol, OneMatrix

from symdl.core.matrices import hadamard, matadd, matmul, scale
from symdl.nn.layers import Context, Layer, _features
from symdl.ops import map_reduce, map_repeat
from symdl.ops import mean as batch_mean


class _Normalise(Layer, ABC):
    """Shared parts of batch and layer normalisation: a scale γ and a shift β per normalised
    row (a feature, or a channel of images), the statistics named as written by hand."""

    def __init__(self, eps: float = 1e-5, name=None):
        super().__init__(name)
        self.eps = float(eps)

    @abstractmethod
    def _rows(self) -> int:
        """How many rows γ and β have: features, or channels of images."""

    def _output_shape(self, input_shape):
        self._rows()
        return input_shape

    def parameters(self, index):
        d = self._rows()
        return {
            "gamma": MatrixSymbol(f"gamma^{{({index})}}", d, 1),
            "beta": MatrixSymbol(f"beta^{{({index})}}", d, 1),
        }

    def natural_shapes(self):
        d = self._rows()
        return {"gamma": (d,), "beta": (d,)}

    def init(self, rng):
        d = self._rows()
        return {"gamma": np.ones(d), "beta": np.zeros(d)}

    def _name_statistics(self, context, mean, centred, var) -> None:
        context.names[mean] = f"mu^{{({context.index})}}"
        context.names[centred] = f"C^{{({context.index})}}"
        context.names[var] = f"sigma^{{2({context.index})}}"

    def _name_normalised(self, context, inverse, X_hat) -> None:
        """σ⁻¹ = (σ² + ε)^(-1/2) and x̂ = C σ⁻¹ as steps of their own, so the backward pass
        reuses them rather than multiplying γ, C and σ⁻¹ again in each adjoint."""
        context.names.setdefault(inverse, f"s^{{({context.index})}}")
        context.names.setdefault(X_hat, rf"\hat{{X}}^{{({context.index})}}")

    def _scale_shift(self, X_hat, params, context, spread=lambda v: v):
        ones = OneMatrix(1, context.batch)
        gamma, beta = spread(params["gamma"]), spread(params["beta"])
        # γ ∘ x̂ kept as two factors (not flattened into x̂'s own product): x̂ stays a step
        return matadd(sympy.HadamardProduct(matmul(gamma, ones), X_hat), matmul(beta, ones))


def _epsilon(eps: float, context: Context) -> sympy.Symbol:
    """ε as a symbol, so the equations read (σ² + ε)^(-1/2); its value is a constant input of
    the compiled code. Layers with different values get ε^{(l)}."""
    epsilon = sympy.Symbol("epsilon", positive=True)
    if context.constants.get(epsilon, eps) != eps:
        epsilon = sympy.Symbol(f"epsilon^{{({context.index})}}", positive=True)
    context.constants[epsilon] = eps
    return epsilon


def _inverse_sqrt(v, epsilon):
    shifted = matadd(v, scale(epsilon, OneMatrix(*v.shape)))
    return HadamardPower(shifted, sympy.Rational(-1, 2))


class BatchNorm(_Normalise):
    r"""Batch normalisation: in training with the batch mean $\mu$ and variance $\sigma^2$ (also
    tracked as running averages with `momentum`), at inference with the running averages;
    then $\gamma \circ \hat{x} + \beta$. Flat examples are normalised per feature; images
    (C, H, W) or sequences (C, L) per channel, over the batch and every position, as
    PyTorch's BatchNorm2d/1d do."""

    kind = "batchnorm"

    def __init__(self, momentum: float = 0.1, eps: float = 1e-5, name=None):
        super().__init__(eps, name)
        self.momentum = float(momentum)

    def _rows(self) -> int:
        return self.input_shape[0]

    @property
    def positions(self) -> int:
        """Entries per channel in one example: 1 for flat features, H·W for images."""
        return _features(self.input_shape[1:])

    def state(self):
        d = self._rows()
        return {"running_mean": np.zeros(d), "running_var": np.ones(d)}

    def forward(self, A, params, context):
        P, N = self.positions, context.batch
        ones_row = OneMatrix(1, N)

        def spread(v):  # a value per channel, over the channel's positions
            return v if P == 1 else map_repeat(v, Integer(P))

        def average(M):  # the mean per channel over the batch and the positions
            if P == 1:
                return batch_mean(M, 1)
            return scale(sympy.Rational(1, P), batch_mean(map_reduce(M, Integer(P)), 1))

        if context.train:
            mean = average(A)
            centred = sympy.MatAdd(A, scale(-1, matmul(spread(mean), ones_row)))  # A kept whole
            var = average(hadamard(centred, centred))
            context.state_update(self, "mean", mean)
            context.state_update(self, "var", var)
            self._name_statistics(context, mean, centred, var)
        else:
            d = self._rows()
            mean = context.extra_input(
                self, "running_mean", MatrixSymbol(f"mu^{{({context.index})}}", d, 1)
            )
            var = context.extra_input(
                self, "running_var", MatrixSymbol(f"sigma^{{2({context.index})}}", d, 1)
            )
            centred = sympy.MatAdd(A, scale(-1, matmul(spread(mean), ones_row)))
        inverse = _inverse_sqrt(var, _epsilon(self.eps, context))
        X_hat = hadamard(centred, matmul(spread(inverse), ones_row))
        self._name_normalised(context, inverse, X_hat)
        out = self._scale_shift(X_hat, params, context, spread)
        return out, out

    def extra_input_value(self, key, shape, train, rng, state):
        """The running mean or variance, a column."""
        return state[key].reshape(-1, 1)

    def update_state(self, state, values, batch):
        """Running averages of the batch statistics; the variance unbiased, as PyTorch keeps
        it."""
        mean = np.asarray(values["mean"]).ravel()
        count = batch * self.positions  # entries behind each statistic
        var = np.asarray(values["var"]).ravel() * count / max(count - 1, 1)
        m = self.momentum
        return {
            "running_mean": (1 - m) * state["running_mean"] + m * mean,
            "running_var": (1 - m) * state["running_var"] + m * var,
        }


class LayerNorm(_Normalise):
    r"""Layer normalisation: each example normalised over all its features (every entry of an
    image too), then $\gamma \circ \hat{x} + \beta$ with γ and β per feature."""

    kind = "layernorm"

    def _rows(self) -> int:
        return _features(self.input_shape)

    def forward(self, A, params, context):
        ones_col = OneMatrix(A.shape[0], 1)
        mean = batch_mean(A, 0)
        centred = sympy.MatAdd(A, scale(-1, matmul(ones_col, mean)))  # A kept whole
        var = batch_mean(hadamard(centred, centred), 0)
        self._name_statistics(context, mean, centred, var)
        inverse = _inverse_sqrt(var, _epsilon(self.eps, context))
        X_hat = hadamard(centred, matmul(ones_col, inverse))
        self._name_normalised(context, inverse, X_hat)
        out = self._scale_shift(X_hat, params, context)
        return out, out
