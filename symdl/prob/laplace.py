r"""The uncertainty of a trained model's prediction: a Laplace approximation of its last layer
(a Gaussian posterior over the last layer's $W$, $b$ whose precision is the Hessian of the
training negative log-likelihood at the trained weights plus a prior precision), and MC dropout
as a baseline.

The last layer is $z = W\varphi + b$ with $\varphi$ the features the layers before it compute.
Writing $\theta = \operatorname{vec}[W\;b]$ (column by column) and $\tilde\varphi = (\varphi, 1)$,
$z = (\tilde\varphi^\top \otimes I_K)\,\theta$, so the Jacobian is $J = \tilde\varphi^\top \otimes I_K$
and the Hessian of $\sum_n \ell(z_n, y_n)$ in $\theta$ is exactly the generalised Gauss-Newton
$\sum_n J_n^\top H_n J_n = \sum_n \tilde\varphi_n\tilde\varphi_n^\top \otimes H_n$, where
$H_n = \partial^2\ell/\partial z^2$ is derived by `symdl.hessian` from the loss's likelihood.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import sympy

from symdl.core.calculus import hessian
from symdl.nn.layers import Dense
from symdl.nn.losses import MSE, BCEWithLogits, CrossEntropy
from symdl.nn.model import CompiledModel
from symdl.prob.distributions import Bernoulli, Categorical, Gaussian


class LaplaceError(ValueError):
    """A model or loss the last-layer Laplace approximation does not cover."""


def output_hessian(loss, outputs: int) -> tuple[sympy.Matrix, list, list, sympy.Symbol]:
    r"""$\partial^2 \ell / \partial z^2$ of one example's negative log-likelihood in the outputs
    $z$, from the likelihood a loss stands for: Gaussian (MSE, variance $\sigma^2$), categorical
    (cross-entropy) or Bernoulli (BCE on logits).

    Returns:
        (H, z, y, variance): the K x K symbolic Hessian, the output and target symbols and the
        noise-variance symbol $\sigma^2$ (used by the Gaussian only).

    Raises:
        LaplaceError: a loss that is not one of these likelihoods.

    >>> output_hessian(MSE(), 2)[0]
    Matrix([
    [1/sigma2,        0],
    [       0, 1/sigma2]])
    """
    z = list(sympy.symbols(f"z0:{outputs}", real=True))
    y = list(sympy.symbols(f"y0:{outputs}", real=True))
    variance = sympy.Symbol("sigma2", positive=True)
    if isinstance(loss, MSE):
        nll = sympy.Add(*(Gaussian(zk, variance).nll(yk) for zk, yk in zip(z, y, strict=True)))
    elif isinstance(loss, CrossEntropy):
        nll = Categorical(z).nll(y)
    elif isinstance(loss, BCEWithLogits):
        nll = sympy.Add(*(Bernoulli.from_logit(zk).nll(yk) for zk, yk in zip(z, y, strict=True)))
    else:
        raise LaplaceError(
            f"laplace: the loss {loss!r} is not a likelihood the approximation knows; train with "
            "MSE (Gaussian), CrossEntropy (categorical) or BCEWithLogits (Bernoulli)"
        )
    H = hessian(nll, z)
    # a categorical target sums to one; the Hessian then no longer depends on it
    return H.subs(sympy.Add(*y), 1) if isinstance(loss, CrossEntropy) else H, z, y, variance


def _vectorised(H: sympy.Matrix, z: list, y: list, variance) -> Callable:
    """(Z, Y, sigma2) -> array (N, K, K) from the symbolic Hessian, one matrix per example."""
    function = sympy.lambdify([z, y, variance], H, modules=["numpy", "scipy"])
    K = len(z)

    def evaluate(Z: np.ndarray, Y: np.ndarray, sigma2: float) -> np.ndarray:
        entries = function(list(Z.T), list(Y.T), sigma2)
        out = np.empty((len(Z), K, K))
        for k in range(K):
            for m in range(K):
                out[:, k, m] = np.broadcast_to(np.asarray(entries[k][m], dtype=float), len(Z))
        return out

    return evaluate


class LastLayerLaplace:
    r"""A Gaussian posterior $\mathcal{N}(\theta^*, \Sigma)$ over a trained model's last layer,
    $\Sigma^{-1} = \sum_n J_n^\top H_n J_n + \lambda I$.

    Args:
        compiled: the trained model, compiled (`model.compile()` or `history.compiled`); its
            last layer must be a Dense layer without activation.
        params: the trained parameters.
        X, y: the training data (the posterior is that of these examples).
        prior_precision: $\lambda$, the precision of the Gaussian prior on $W$ and $b$.
        noise_variance: regression only: $\sigma^2$ of the Gaussian likelihood; by default
            the mean squared residual on (X, y).

    Raises:
        LaplaceError: the last layer is not a linear Dense layer, or the loss is not a
            likelihood the approximation knows.
    """

    def __init__(
        self,
        compiled: CompiledModel,
        params,
        X,
        y,
        prior_precision: float = 1.0,
        noise_variance: float | None = None,
    ):
        model = compiled.model
        last = model.layers[-1]
        if not isinstance(last, Dense) or last.has_activation_output:
            raise LaplaceError(
                f"laplace: the last layer {last.name} must be a Dense layer without activation "
                "(its outputs the loss's logits or means)"
            )
        self.compiled, self.params, self.loss = compiled, params, model.loss
        self.outputs = model.outputs
        self.names = [f"{last.name}.W"] + ([f"{last.name}.b"] if last.bias else [])
        Phi = self._augmented(X)
        Z = self._linear(Phi)
        Y = model.loss.targets(y, self.outputs).T
        if isinstance(self.loss, MSE) and noise_variance is None:
            noise_variance = float(np.mean((Z - Y) ** 2))
        self.noise_variance = None if noise_variance is None else float(noise_variance)
        H_out = _vectorised(*output_hessian(self.loss, self.outputs))(
            Z, Y, self.noise_variance or 1.0
        )
        P = Phi.shape[1] * self.outputs
        weighted = Phi[:, :, None, None] * H_out[:, None]  # (N, D, K, K): phi_i H_kl
        self.ggn = np.tensordot(weighted, Phi, axes=(0, 0)).transpose(0, 1, 3, 2).reshape(P, P)
        # one eigendecomposition serves every prior precision: (GGN + lam I)^-1 = V (e + lam)^-1 V^T
        self.ggn_eigenvalues, self.ggn_eigenvectors = np.linalg.eigh(self.ggn)
        self.set_prior_precision(prior_precision)

    def set_prior_precision(self, prior_precision: float) -> LastLayerLaplace:
        """Use prior precision $\\lambda$: the posterior precision is GGN + $\\lambda I$."""
        if prior_precision <= 0:
            raise LaplaceError(f"laplace: prior_precision must be > 0, got {prior_precision}")
        self.prior_precision = float(prior_precision)
        self.precision = self.ggn + self.prior_precision * np.eye(len(self.ggn))
        V = self.ggn_eigenvectors
        self.covariance = (V / (self.ggn_eigenvalues + self.prior_precision)) @ V.T
        return self

    def tune_prior_precision(self, X, y, grid=None) -> float:
        """Set the prior precision to the one of `grid` (by default 10^-2 .. 10^3) giving the
        smallest predictive negative log-likelihood on held-out (X, y); returns it."""
        grid = np.logspace(-2, 3, 21) if grid is None else np.asarray(grid, dtype=float)
        Y = self.loss.targets(y, self.outputs).T
        Phi = self._augmented(X)
        mean, K = self._linear(Phi), self.outputs
        V = self.ggn_eigenvectors.reshape(Phi.shape[1], K, -1)
        U = np.tensordot(Phi, V, axes=(1, 0))  # (N, K, P): J_n V
        scores = []
        for lam in grid:
            cov = np.einsum("nkp,p,nlp->nkl", U, 1 / (self.ggn_eigenvalues + lam), U)
            scores.append(self._nll(self._predictive(mean, cov, "probit", 0, 0), Y))
        best = float(grid[int(np.argmin(scores))])
        self.set_prior_precision(best)
        return best

    def _nll(self, predictive, Y) -> float:
        """The mean negative log-likelihood of targets Y (N, K) under the predictive."""
        if isinstance(self.loss, MSE):
            mean, variance = predictive
            return float(np.mean((Y - mean) ** 2 / variance + np.log(2 * np.pi * variance)) / 2)
        p = np.clip(predictive, 1e-12, 1 - 1e-12)
        if isinstance(self.loss, CrossEntropy):
            return float(-np.mean(np.sum(Y * np.log(p), axis=1)))
        return float(-np.mean(Y * np.log(p) + (1 - Y) * np.log(1 - p)))

    def _augmented(self, X) -> np.ndarray:
        """Features with a column of ones for the bias: $\\tilde\\varphi$, one row per example."""
        Phi = np.asarray(self.compiled.features(self.params, X), dtype=float)
        return np.hstack([Phi, np.ones((len(Phi), 1))]) if len(self.names) == 2 else Phi

    def _linear(self, Phi: np.ndarray) -> np.ndarray:
        W = np.asarray(self.params[self.names[0]], dtype=float)
        if len(self.names) == 2:
            W = np.hstack([W, np.asarray(self.params[self.names[1]], dtype=float)[:, None]])
        return Phi @ W.T

    def output_distribution(self, X) -> tuple[np.ndarray, np.ndarray]:
        r"""The Gaussian of the outputs $z$ (logits or means) at each example: means (N, K)
        and covariances $J \Sigma J^\top$ (N, K, K)."""
        Phi = self._augmented(X)
        K = self.outputs
        blocks = self.covariance.reshape(Phi.shape[1], K, Phi.shape[1], K)
        left = np.tensordot(Phi, blocks, axes=(1, 0))  # (N, K, D, K)
        return self._linear(Phi), np.einsum("nkjl,nj->nkl", left, Phi)

    def predict(self, X, method: str = "probit", samples: int = 200, seed: int = 0):
        r"""The predictive distribution at each example.

        Regression (MSE): `(mean, variance)`, both (N, K): the output mean and
        $\operatorname{diag}(J\Sigma J^\top) + \sigma^2$. Classification: probabilities (N, K)
        averaged over the posterior, by the probit approximation
        $\operatorname{softmax}\big(\mu / \sqrt{1 + \tfrac{\pi}{8}\operatorname{diag}
        (J\Sigma J^\top)}\big)$ (`method="probit"`) or by `samples` Monte-Carlo draws of the
        logits (`method="mc"`, seeded by `seed`).

        Raises:
            LaplaceError: a method other than "probit" or "mc".
        """
        if method not in ("probit", "mc"):
            raise LaplaceError(f"laplace: method must be 'probit' or 'mc', got {method!r}")
        mean, cov = self.output_distribution(X)
        return self._predictive(mean, cov, method, samples, seed)

    def _predictive(self, mean, cov, method: str, samples: int, seed: int):
        variance = np.einsum("nkk->nk", cov)
        if isinstance(self.loss, MSE):
            return mean, variance + self.noise_variance
        if method == "probit":
            return _link(self.loss, mean / np.sqrt(1 + np.pi / 8 * variance))
        rng = np.random.default_rng(seed)
        L = np.linalg.cholesky(cov + 1e-10 * np.eye(self.outputs))
        draws = mean + np.einsum("nkl,snl->snk", L, rng.normal(size=(samples, *mean.shape)))
        return _link(self.loss, draws).mean(axis=0)


def _link(loss, logits: np.ndarray) -> np.ndarray:
    """Probabilities from logits along the last axis: softmax (categorical) or sigmoid."""
    if isinstance(loss, CrossEntropy):
        shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
        return shifted / shifted.sum(axis=-1, keepdims=True)
    return 1 / (1 + np.exp(-logits))


def mc_dropout(compiled: CompiledModel, params, X, samples: int = 50):
    """MC dropout: the mean and variance (each (N, outputs)) of `samples` predictions made with
    dropout kept on (`compiled.predict(..., train=True)`, a fresh mask each draw; the compiled
    model's generator draws them).

    Raises:
        LaplaceError: the model has no randomness at training time (no dropout), so every
            draw would be the same.
    """
    draws = np.stack([compiled.predict(params, X, train=True) for _ in range(samples)])
    if samples > 1 and np.array_equal(draws[0], draws[1]):
        raise LaplaceError(
            "mc_dropout: two draws gave the same predictions; the model needs a Dropout layer"
        )
    return draws.mean(axis=0), draws.var(axis=0)


def predictive_entropy(probabilities: np.ndarray) -> np.ndarray:
    r"""$-\sum_k p_k \log p_k$ of each row (classes along the last axis), in nats.

    >>> float(predictive_entropy(np.array([[0.5, 0.5]]))[0]) == float(np.log(2))
    True
    """
    p = np.clip(probabilities, 1e-300, 1)
    return -(probabilities * np.log(p)).sum(axis=-1)


def reliability(probabilities: np.ndarray, labels, bins: int = 10):
    """Per confidence bin: (mean confidence, accuracy, count), the reliability diagram's bars;
    the confidence is the largest probability of each row, the bins split [0, 1] evenly."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == np.asarray(labels)
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    counts = np.bincount(which, minlength=bins)
    seen = np.maximum(counts, 1)
    mean_confidence = np.bincount(which, confidence, bins) / seen
    accuracy = np.bincount(which, correct.astype(float), bins) / seen
    return mean_confidence, accuracy, counts


def expected_calibration_error(probabilities: np.ndarray, labels, bins: int = 10) -> float:
    r"""$\sum_b \frac{n_b}{N}\,|\operatorname{acc}_b - \operatorname{conf}_b|$ over equal-width
    confidence bins.

    >>> expected_calibration_error(np.array([[0.9, 0.1], [0.9, 0.1]]), [0, 1])
    0.4
    """
    confidence, accuracy, counts = reliability(probabilities, labels, bins)
    return float(np.sum(counts * np.abs(accuracy - confidence)) / counts.sum())


__all__ = [
    "LaplaceError",
    "LastLayerLaplace",
    "expected_calibration_error",
    "mc_dropout",
    "output_hessian",
    "predictive_entropy",
    "reliability",
]
