"""symdl's deep-learning functions, each declared once with its derivative, notation and NumPy form."""

from symdl.ops.activations import elu, gelu, leaky_relu, relu, sigmoid, silu, softplus
from symdl.ops.base import Op, declared
from symdl.ops.losses import (
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    cross_entropy,
    hinge,
    huber,
    l1,
    l2,
    mse,
)
from symdl.ops.vector import log_softmax, logsumexp, softmax

__all__ = [
    "Op",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "cross_entropy",
    "declared",
    "elu",
    "gelu",
    "hinge",
    "huber",
    "l1",
    "l2",
    "leaky_relu",
    "log_softmax",
    "logsumexp",
    "mse",
    "relu",
    "sigmoid",
    "silu",
    "softmax",
    "softplus",
]
