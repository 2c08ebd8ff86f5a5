"""Optimizers (SGD, Adam, AdamW, Adagrad, RMSProp) and learning-rate schedules.

Each optimizer updates a dict of NumPy arrays in place and states its update rule as SymPy
equations, so the rule that trains is the rule that prints.
"""

from symdl.optim.clipping import ClipGradNorm
from symdl.optim.optimizers import (
    SGD,
    Adagrad,
    Adam,
    AdamW,
    Optimizer,
    RMSProp,
    RMSprop,
    get_optimizer,
    registered,
)
from symdl.optim.rules import OptimizerError
from symdl.optim.rules import t as t  # the update count in schedules' equations
from symdl.optim.schedules import CosineLR, ExponentialLR, LinearWarmup, Schedule, StepLR

__all__ = [
    "SGD",
    "Adagrad",
    "Adam",
    "AdamW",
    "ClipGradNorm",
    "CosineLR",
    "ExponentialLR",
    "LinearWarmup",
    "Optimizer",
    "OptimizerError",
    "RMSProp",
    "RMSprop",
    "Schedule",
    "StepLR",
    "get_optimizer",
    "registered",
]
