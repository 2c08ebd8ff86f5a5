"""Probability: distributions whose negative log-likelihoods are the usual losses, KL
divergences, the VAE evidence lower bound, and the uncertainty of a trained model's prediction."""

from symdl.prob.distributions import (
    Bernoulli,
    Categorical,
    Distribution,
    Gaussian,
    Laplace,
    Poisson,
)
from symdl.prob.kl import (
    elbo_derivation,
    kl_categorical,
    kl_diagonal,
    kl_full,
    kl_gaussian,
    negative_elbo,
)
from symdl.prob.laplace import (
    LaplaceError,
    LastLayerLaplace,
    expected_calibration_error,
    mc_dropout,
    output_hessian,
    predictive_entropy,
    reliability,
)
from symdl.prob.losses import GaussianNLL, MatGaussianNLL

__all__ = [
    "LaplaceError",
    "LastLayerLaplace",
    "expected_calibration_error",
    "mc_dropout",
    "output_hessian",
    "predictive_entropy",
    "reliability",
    "GaussianNLL",
    "MatGaussianNLL",
    "elbo_derivation",
    "kl_categorical",
    "kl_diagonal",
    "kl_full",
    "kl_gaussian",
    "negative_elbo",
    "Bernoulli",
    "Categorical",
    "Distribution",
    "Gaussian",
    "Laplace",
    "Poisson",
]
