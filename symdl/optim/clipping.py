r"""Gradient clipping by global norm, wrapping any optimizer:
$g \leftarrow g \cdot \min(1, c / \lVert g \rVert)$ with $\lVert g \rVert$ over every parameter,
as `torch.nn.utils.clip_grad_norm_` does (recurrent networks' exploding gradients)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from symdl.optim.optimizers import Optimizer
from symdl.optim.rules import OptimizerError


class ClipGradNorm:
    """`optimizer` stepping with the gradients scaled down to global norm at most `max_norm`.

    Everything else (lr, state_dict, equations, ...) is the wrapped optimizer's; the norm of
    the last step's gradients before clipping is `last_norm`.

    >>> import numpy as np
    >>> from symdl.optim import SGD, ClipGradNorm
    >>> opt = ClipGradNorm(SGD(1.0), max_norm=1.0)
    >>> p = {"w": np.zeros(2)}
    >>> opt.step(p, {"w": np.array([3.0, 4.0])})
    >>> p["w"].round(4), opt.last_norm
    (array([-0.6, -0.8]), 5.0)
    """

    def __init__(self, optimizer: Optimizer, max_norm: float):
        if not max_norm > 0:
            raise OptimizerError(f"ClipGradNorm: max_norm must be positive, got {max_norm}")
        self.optimizer, self.max_norm = optimizer, float(max_norm)
        self.last_norm = 0.0

    def step(self, params: dict[str, np.ndarray], grads: Mapping[str, np.ndarray]) -> None:
        """Clip the gradients by their global norm, then step the wrapped optimizer."""
        norm = float(np.sqrt(sum(float(np.sum(np.square(g))) for g in grads.values())))
        self.last_norm = norm
        if norm > self.max_norm:
            factor = self.max_norm / (norm + 1e-6)  # PyTorch's epsilon
            grads = {name: g * factor for name, g in grads.items()}
        self.optimizer.step(params, grads)

    def __getattr__(self, name):
        return getattr(self.optimizer, name)

    def __repr__(self) -> str:
        return f"ClipGradNorm({self.optimizer!r}, max_norm={self.max_norm})"
