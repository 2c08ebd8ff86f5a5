"""symdl: derive, read, check and run the mathematics of deep learning with SymPy.

The public API is listed in ``__all__``; see docs/api.md.
"""

import symdl.nn as nn
import symdl.optim as optim
import symdl.training.datasets as datasets
from symdl.checking.check import GradCheck, GradientMismatch, check_grad
from symdl.checking.verify import Verdict, verify
from symdl.core.backward import UnsupportedOp
from symdl.core.calculus import derive, grad, hessian, jacobian
from symdl.core.derivation import Derivation
from symdl.core.matrices import elementwise, hadamard
from symdl.core.program import Program, UnsupportedExpression, build_program
from symdl.ops import (
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    cross_entropy,
    elu,
    gelu,
    hinge,
    huber,
    l1,
    l2,
    leaky_relu,
    log_softmax,
    logsumexp,
    mse,
    relu,
    sigmoid,
    silu,
    softmax,
    softplus,
)
from symdl.parsing import ParseError
from symdl.training.loop import History, train

__version__ = "0.1.0"

__all__ = [
    "Derivation",
    "GradCheck",
    "GradientMismatch",
    "History",
    "ParseError",
    "Program",
    "UnsupportedExpression",
    "UnsupportedOp",
    "Verdict",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "build_program",
    "check_grad",
    "cross_entropy",
    "datasets",
    "derive",
    "elementwise",
    "elu",
    "gelu",
    "grad",
    "hadamard",
    "hessian",
    "hinge",
    "huber",
    "jacobian",
    "l1",
    "l2",
    "leaky_relu",
    "log_softmax",
    "logsumexp",
    "mse",
    "nn",
    "optim",
    "relu",
    "sigmoid",
    "silu",
    "softmax",
    "softplus",
    "train",
    "verify",
]
