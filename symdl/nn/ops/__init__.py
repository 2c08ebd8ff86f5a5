r"""Convolution and pooling as symdl matrix ops, with their vector-Jacobian rules.

A batch of feature maps is a matrix with one example per column, each column the maps
flattened channel by channel (C·H·W rows), so these ops compose with every other matrix
expression. 1-D layers are the 2-D ops on a height of 1. The rules are the textbook ones:
the kernel gradient correlates the input with the upstream gradient, the input gradient is the
full convolution of the upstream gradient with the flipped kernel, and max pooling routes the
gradient to the arg-max of each window.
"""

from symdl.nn.ops.convolution import (
    channel_sum,
    conv2d,
    conv2d_input_grad,
    conv2d_kernel_grad,
)
from symdl.nn.ops.pooling import avg_pool2d, avg_pool2d_grad, max_pool2d, max_pool2d_grad
from symdl.nn.ops.statistics import map_reduce, map_repeat, mean
from symdl.nn.ops.window import Geometry, columns

__all__ = [
    "Geometry",
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
]
