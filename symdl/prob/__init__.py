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

__all__ = ["Bernoulli", "Categorical", "Distribution", "Gaussian", "Laplace", "Poisson"]
