"""Losses of a model: the symbolic loss of outputs Z against targets Y (both one example per
column), how label arrays become Y, and what `predict` returns."""

from __future__ import annotations

import numpy as np
import sympy

from symdl.core.matrices import elementwise
from symdl.ops import Op
from symdl.ops.activations import sigmoid
from symdl.ops.losses import binary_cross_entropy_with_logits, cross_entropy, hinge, huber, mse
from symdl.ops.vector import MatSoftmax


class TargetError(ValueError):
    """Labels or targets that do not fit the loss or the model's outputs."""


class Loss:
    """A loss: `expression(Z, Y)`, `targets(y, outputs)` and `predictions(Z)`.

    A subclass names the declared loss op it trains with (`op = mse`); the expression is that
    op on the matrices, `op(Z, Y, *params, **options)`, and the name is the op's. What stays here is what
    belongs to a model: how labels become targets and what `predict` returns.
    """

    op: type[Op] | None = None
    is_classifier = False

    @property
    def name(self) -> str:
        return self.op.__name__ if self.op is not None else "loss"

    # the op's keyword arguments (cross-entropy's normalized=True)
    options: dict = {}

    def params(self) -> tuple:
        """The op's arguments after `(Z, Y)` (Huber's delta)."""
        return ()

    def expression(self, Z, Y):
        """The scalar loss of outputs `Z` against targets `Y` (both outputs x N)."""
        if self.op is None:
            raise TypeError(f"{type(self).__name__} names no loss op (op = ...) and no expression")
        return self.op(Z, Y, *self.params(), **self.options)

    def predictions(self, Z):
        """What `predict` returns for outputs `Z` (probabilities for a classifier)."""
        return Z

    def targets(self, y, outputs: int) -> np.ndarray:
        """Targets as a matrix (outputs x N): from (N,) or (N, outputs) arrays; floats keep
        their dtype (float32 targets of a float32 model are not copied twice), others are
        made float64."""
        y = np.asarray(y)
        if y.dtype.kind != "f":
            y = y.astype(float)
        if y.ndim == 1 and outputs == 1:
            return y[None, :]
        if y.ndim == 2 and y.shape[1] == outputs:
            return y.T
        raise TargetError(
            f"{self.name}: targets of shape {y.shape} do not fit {outputs} outputs; give (N,) "
            f"for one output or (N, {outputs})"
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class CrossEntropy(Loss):
    """Softmax cross-entropy on logits, averaged over the batch; labels are class indices
    (N,) or probability rows (N, classes). `predict` gives softmax probabilities."""

    op = cross_entropy
    is_classifier = True

    # the targets it makes sum to 1 per example (checked below), so the loss takes the form
    # whose gradient is the textbook (softmax(Z) - Y)/N
    options = {"normalized": True}

    def predictions(self, Z):
        return MatSoftmax(Z)

    def targets(self, y, outputs):
        y = np.asarray(y)
        if y.ndim == 1:
            if not np.issubdtype(y.dtype, np.integer):
                if not np.all(np.mod(y, 1) == 0):
                    raise TargetError(f"{self.name}: labels must be class indices 0..{outputs - 1}")
                y = y.astype(int)
            if y.size and (y.min() < 0 or y.max() >= outputs):
                raise TargetError(
                    f"{self.name}: labels run from {y.min()} to {y.max()} but the model has "
                    f"{outputs} outputs (classes 0..{outputs - 1})"
                )
            Y = np.zeros((outputs, y.size))
            Y[y, np.arange(y.size)] = 1.0
            return Y
        Y = super().targets(y, outputs)
        totals = Y.sum(axis=0)
        if np.any(Y < 0) or not np.allclose(totals, 1.0, rtol=0, atol=1e-6):
            row = int(np.argmax(np.abs(totals - 1.0) + (Y < 0).any(axis=0)))
            raise TargetError(
                f"{self.name}: target row {row} is not a distribution (it sums to "
                f"{totals[row]:.6g}); give class indices or probability rows that sum to 1, or "
                "write the loss as sd.cross_entropy(Z, Y) on your own targets"
            )
        return Y


class BCEWithLogits(Loss):
    """Binary cross-entropy on logits, averaged over every entry; targets in [0, 1].
    `predict` gives sigmoid probabilities."""

    op = binary_cross_entropy_with_logits
    is_classifier = True

    def predictions(self, Z):
        return elementwise(sigmoid, Z)


class MSE(Loss):
    """Mean squared error over every entry (regression)."""

    op = mse


class Huber(Loss):
    """Huber loss with threshold `delta`, averaged over every entry (robust regression)."""

    op = huber

    def __init__(self, delta: float = 1.0):
        self.delta = float(delta)

    def params(self):
        return (sympy.Float(self.delta),)

    def __repr__(self) -> str:
        return f"Huber(delta={self.delta})"


class Hinge(Loss):
    """Hinge loss for labels ±1 (labels 0/1 are read as -1/+1); `predict` gives the predicted
    label as 0 or 1."""

    op = hinge
    is_classifier = True

    def predictions(self, Z):
        return elementwise(lambda z: sympy.Heaviside(z, 0), Z)

    def targets(self, y, outputs):
        Y = super().targets(y, outputs)
        if np.all(np.isin(Y, (0.0, 1.0))):
            return 2 * Y - 1
        if not np.all(np.isin(Y, (-1.0, 1.0))):
            raise TargetError(f"{self.name}: labels must be -1/+1 (or 0/1)")
        return Y


# by the name of each loss's op, and one short name
LOSSES = {cls.op.__name__: cls for cls in (CrossEntropy, BCEWithLogits, MSE, Huber, Hinge)}
LOSSES["bce_with_logits"] = BCEWithLogits


def get_loss(loss) -> Loss:
    """A Loss from an instance or a name ("cross_entropy", "mse", ...)."""
    if isinstance(loss, Loss):
        return loss
    if isinstance(loss, str) and loss in LOSSES:
        return LOSSES[loss]()
    raise ValueError(f"loss {loss!r} is not a Loss or one of {', '.join(LOSSES)}")
