"""symdl: derive, read, check and run the mathematics of deep learning with SymPy.

The public API is listed in ``__all__``; see docs/api.md.
"""

import symdl.nn as nn
import symdl.optim as optim
import symdl.prob as prob
import symdl.training.datasets as datasets
from symdl.checking.check import GradCheck, GradientMismatch, check_grad
from symdl.checking.verify import Verdict, verify
from symdl.core.backward import UnsupportedOp
from symdl.core.calculus import derive, grad, hessian, jacobian
from symdl.core.derivation import Derivation
from symdl.core.matrices import elementwise, hadamard
from symdl.core.program import Program, UnsupportedExpression, build_program
from symdl.ops import declared as _declared
from symdl.ops.linalg import (
    eigh_vectors,
    eigvalsh,
    max_eigenvalue,
    nuclear_norm,
    singular_values,
)
from symdl.parsing import ParseError
from symdl.training.loop import History, train

__version__ = "0.1.0"

globals().update(_declared())  # every declared op is sd.<name>

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
    "build_program",
    "check_grad",
    "datasets",
    "derive",
    "eigh_vectors",
    "eigvalsh",
    "elementwise",
    "grad",
    "hadamard",
    "hessian",
    "jacobian",
    "max_eigenvalue",
    "nn",
    "nuclear_norm",
    "optim",
    "prob",
    "singular_values",
    "train",
    "verify",
]
__all__ += sorted(_declared())
