"""Plain NumPy forms of column-wise reductions that generated code calls: fewer checks and
copies than scipy.special's general versions, which matters in a training step."""

from __future__ import annotations

import numpy as np


def logsumexp(Z: np.ndarray, axis: int = 0) -> np.ndarray:
    """log Σ exp(Z) along `axis` (kept), stable: the maximum is taken out first, so logits of
    ±1000 give finite results."""
    peak = Z.max(axis=axis, keepdims=True)
    peak = np.where(np.isfinite(peak), peak, 0.0)
    return peak + np.log(np.exp(Z - peak).sum(axis=axis, keepdims=True))
