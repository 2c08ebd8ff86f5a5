"""symdl's operations, each declared once with its derivative, notation and NumPy form:
activations, vector functions, losses (scalar and matrix form together), convolution,
pooling and batch statistics; their NumPy kernels live in symdl.ops.runtime.

Every declared op is exported by its name (`symdl.ops.relu`), read from the registry
`declared()`: declaring an op class is all it takes. To declare one of your own, subclass
`Op` (elementwise ops: `definition`, `fdiff`, `latex_name`, `_numpycode`), or `MatrixOp` /
`MatrixLoss` for a matrix form; `elementwise(f, Z)` applies a scalar function to each entry.
"""

import symdl.ops.activations
import symdl.ops.losses
import symdl.ops.vector  # noqa: F401  (importing the modules declares their ops)
from symdl.core.matrices import elementwise
from symdl.ops.base import MatrixLoss, MatrixOp, Op, activations, declared, elementary
from symdl.ops.blocks import pad_rows, row_block, vstack
from symdl.ops.convolution import channel_sum, conv2d, conv2d_input_grad, conv2d_kernel_grad
from symdl.ops.linalg import (
    eigh_vectors,
    eigvalsh,
    max_eigenvalue,
    nuclear_norm,
    singular_values,
)
from symdl.ops.pooling import avg_pool2d, avg_pool2d_grad, max_pool2d, max_pool2d_grad
from symdl.ops.statistics import map_reduce, map_repeat, mean
from symdl.ops.tokens import bmm, tokens, untokens
from symdl.ops.window import Geometry, columns

globals().update(declared())

__all__ = [
    "singular_values",
    "nuclear_norm",
    "max_eigenvalue",
    "eigvalsh",
    "eigh_vectors",
    "Geometry",
    "MatrixLoss",
    "MatrixOp",
    "Op",
    "activations",
    "avg_pool2d",
    "bmm",
    "avg_pool2d_grad",
    "channel_sum",
    "columns",
    "conv2d",
    "conv2d_input_grad",
    "conv2d_kernel_grad",
    "declared",
    "elementary",
    "elementwise",
    "map_reduce",
    "map_repeat",
    "max_pool2d",
    "max_pool2d_grad",
    "mean",
    "pad_rows",
    "row_block",
    "tokens",
    "untokens",
    "vstack",
]
__all__ += sorted(declared())
