"""scipy.special's functions, as generated code calls them, on PyTorch tensors: torch.special's
function of the same name, and the two whose arguments differ (axis, keepdims)."""

from __future__ import annotations

import torch

from symdl.compile.torch_numpy import numpy_like


def __getattr__(name: str):
    function = getattr(torch.special, name, None)
    if not callable(function):
        raise AttributeError(f"torch.special has no function {name} for scipy.special.{name}")
    return numpy_like(function)


def logsumexp(a, axis=None, keepdims=False):
    if axis is None:
        return torch.logsumexp(a.reshape(-1), dim=0, keepdim=False)
    return torch.logsumexp(a, dim=axis, keepdim=keepdims)


def softmax(x, axis):
    return torch.softmax(x, dim=axis)
