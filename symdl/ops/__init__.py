"""symdl's operations, each declared once with its derivative, notation and NumPy form:
activations, vector functions, losses (scalar and matrix form together), convolution,
pooling and batch statistics; their NumPy kernels live in symdl.ops.runtime."""

from symdl.ops.activations import elu, gelu, leaky_relu, relu, sigmoid, silu, softplus
from symdl.ops.base import Op, declared
from symdl.ops.convolution import channel_sum, conv2d, conv2d_input_grad, conv2d_kernel_grad
from symdl.ops.linalg import (
    eigh_vectors,
    eigvalsh,
    max_eigenvalue,
    nuclear_norm,
    singular_values,
)
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
from symdl.ops.pooling import avg_pool2d, avg_pool2d_grad, max_pool2d, max_pool2d_grad
from symdl.ops.statistics import map_reduce, map_repeat, mean
from symdl.ops.vector import log_softmax, logsumexp, softmax
from symdl.ops.window import Geometry, columns

__all__ = [
    "singular_values",
    "nuclear_norm",
    "max_eigenvalue",
    "eigvalsh",
    "eigh_vectors",
    "Geometry",
    "Op",
    "avg_pool2d",
    "avg_pool2d_grad",
    "channel_sum",
    "columns",
    "conv2d",
    "conv2d_input_grad",
    "conv2d_kernel_grad",
    "map_reduce",
    "map_repeat",
    "max_pool2d",
    "max_pool2d_grad",
    "mean",
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
