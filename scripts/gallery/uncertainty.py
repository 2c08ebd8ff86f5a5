"""Gallery entries for the uncertainty of a prediction: the last-layer Laplace approximation."""

from __future__ import annotations

import numpy as np
import sympy
from sympy import Symbol

import symdl as sd
from gallery.entry import Entry, dL, entry, part
from gallery.reference import Claim, Property
from symdl import nn
from symdl.ops.activations import sigmoid
from symdl.prob import Bernoulli, LastLayerLaplace


def _ggn_against_finite_differences() -> tuple[bool, str]:
    """The GGN of sd.prob.LastLayerLaplace against N x the central-difference Hessian of the
    compiled mean cross-entropy in the last layer's W and b."""
    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(12, 3)), rng.integers(0, 3, 12)
    model = nn.Sequential(nn.Dense(4, "tanh"), nn.Dense(3), input_shape=3)
    compiled, params = model.compile().eval(), model.init(seed=2)
    ggn = LastLayerLaplace(compiled, params, X, y).ggn
    flat = [(n, i) for n in ("dense_2.W", "dense_2.b") for i in np.ndindex(params[n].shape)]
    rows, h = [], 1e-5
    for name, index in flat:
        sides = []
        for sign in (1, -1):
            moved = {k: v.copy() for k, v in params.items()}
            moved[name][index] += sign * h
            grads = compiled.loss_and_grads(moved, X, y)[1]
            sides.append(np.array([grads[n][i] for n, i in flat]))
        rows.append((sides[0] - sides[1]) / (2 * h))
    order = [i[1] * 3 + i[0] if n.endswith("W") else 12 + i[0] for n, i in flat]
    error = float(np.abs(ggn[np.ix_(order, order)] - 12 * np.array(rows)).max())
    return error < 1e-6, f"largest difference {error:.1e} over the 15 x 15 entries"


@entry
def laplace_last_layer() -> Entry:
    w, b, x, t = sympy.symbols("w b x t", real=True)
    z = Symbol("z", real=True)
    nll = Bernoulli.from_logit(w * x + b).nll(t)
    slope = sympy.diff(Bernoulli.from_logit(z).nll(t), z)  # by SymPy, not symdl
    curvature = sigmoid(z) * (1 - sigmoid(z))
    claims = [
        Claim(
            dL("z"), sigmoid(z) - t, Bernoulli.from_logit(z).nll(t), z, "Bishop (2006), eq. 4.91"
        ),
        Claim(
            r"\frac{\partial^2 L}{\partial z^2}",
            curvature,
            slope,
            z,
            "Bishop (2006), eq. 4.97 (the weights R of IRLS)",
        ),
    ]

    def hessian_is_ggn() -> tuple[bool, str]:
        H = sd.hessian(nll, [w, b])
        ggn = sympy.Matrix([[x * x, x], [x, 1]]) * curvature.subs(z, w * x + b)
        rng = np.random.default_rng(0)
        worst = 0.0
        for _ in range(5):
            at = dict(zip((w, b, x, t), rng.normal(size=4), strict=True))
            diff = (H - ggn).subs(at).doit()
            worst = max(worst, max(abs(float(e)) for e in diff))
        return worst < 1e-12, f"largest difference {worst:.1e} at 5 random points"

    return Entry(
        title="Laplace approximation of the last layer",
        prose=(
            "A Gaussian posterior over the last layer's weights, centred at the trained "
            "weights, with precision the Hessian of the training negative log-likelihood plus "
            "a prior precision. Because the logits $z = W\\varphi + b$ are linear in the "
            "weights, that Hessian is exactly the generalised Gauss-Newton $J^T H_z J$: the "
            "curvature of the loss in the logits, carried by the features."
        ),
        derivation=sd.derive(nll, [w, b], names={w * x + b: "z"}),
        parts=(
            part("The loss in the logit (verified)", *(c.equation for c in claims)),
            part(
                "Posterior over the last layer",
                (
                    r"\Sigma^{-1}",
                    r"\sum_n J_n^T H_{z_n} J_n + \lambda I, \quad "
                    r"J_n = \tilde\varphi_n^T \otimes I_K",
                ),
                (
                    r"J_n^T H_{z_n} J_n",
                    r"\tilde\varphi_n \tilde\varphi_n^T \otimes H_{z_n}",
                ),
            ),
            part(
                "Predictive (probit approximation)",
                (
                    r"p(y \mid x)",
                    r"\operatorname{softmax}\left(\mu / \sqrt{1 + \tfrac{\pi}{8}"
                    r"\operatorname{diag}(J \Sigma J^T)}\right)",
                ),
            ),
        ),
        checks=(
            *claims,
            Property(
                "sympy.Matrix",
                "the Hessian in (w, b) equals J^T H_z J with J = (x, 1) at random points",
                hessian_is_ggn,
            ),
            Property(
                "finite differences",
                "of the compiled training gradients: sd.prob.LastLayerLaplace's GGN is N times "
                "the Hessian of the mean cross-entropy in the last layer",
                _ggn_against_finite_differences,
            ),
        ),
    )
