"""numpy.linalg's functions, as generated code calls them, on PyTorch tensors: torch.linalg's
function of the same name, and svd taking NumPy's compute_uv."""

from __future__ import annotations

import torch


def __getattr__(name: str):
    function = getattr(torch.linalg, name, None)
    if not callable(function):
        raise AttributeError(f"torch.linalg has no function {name} for numpy.linalg.{name}")
    return function


def svd(a, full_matrices=True, compute_uv=True):
    """numpy.linalg.svd: (U, s, Vh), or the singular values alone without compute_uv."""
    if not compute_uv:
        return torch.linalg.svdvals(a)
    return torch.linalg.svd(a, full_matrices=full_matrices)
