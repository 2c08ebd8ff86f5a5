r"""Models that are graphs: inputs, layers applied to tensors, `add`, `concat`, `multiply`,
several inputs and outputs, one layer used twice (its parameters shared, their gradient the
sum over the uses), a loss on each output.

    x = nn.Input(4)
    h = nn.Dense(8, "tanh")(x)
    y = nn.Dense(3)(nn.concat(x, h))
    model = nn.Model(x, y, loss="cross_entropy")

The derivation is the chain rule over the graph: a tensor used twice gets the sum of the two
adjoints, $\bar{A} = \bar{A}_{\text{use 1}} + \bar{A}_{\text{use 2}}$.
"""

from __future__ import annotations

import numpy as np
import sympy

from symdl.core.calculus import derive
from symdl.core.derivation import Derivation
from symdl.core.matrices import hadamard
from symdl.nn.compiled import CompiledModel
from symdl.nn.layers import Layer, Shape, ShapeError, _features
from symdl.nn.losses import Loss, get_loss
from symdl.nn.model import Sequential, _float_dtype, forget_built_expressions
from symdl.nn.network import Input, Tensor, forward, loss_of, name_layers, order
from symdl.ops import vstack


class _Merge(Layer):
    """A layer of several inputs and no parameters."""

    def build_many(self, shapes: list[Shape]) -> Shape:
        self.input_shape = tuple(shapes)
        self.output_shape = self._merged(shapes)
        return self.output_shape


class Add(_Merge):
    """$A_1 + A_2 + \\dots$, inputs of one shape."""

    kind = "add"

    def _merged(self, shapes):
        if any(s != shapes[0] for s in shapes):
            raise ValueError(f"add needs inputs of one shape, got {shapes}")
        return shapes[0]

    def forward(self, A, params, context):
        return None, sympy.MatAdd(*A)  # not flattened: the sum reads A + B


class Multiply(Add):
    """$A_1 \\circ A_2 \\circ \\dots$ (Hadamard product), inputs of one shape."""

    kind = "multiply"

    def forward(self, A, params, context):
        return None, hadamard(*A)


class Concat(_Merge):
    """The inputs' features stacked, $[A_1; A_2; \\dots]$ (rows of each example's column)."""

    kind = "concat"

    def _merged(self, shapes):
        return (sum(_features(s) for s in shapes),)

    def forward(self, A, params, context):
        return None, vstack(*A)


def add(*tensors: Tensor) -> Tensor:
    """The sum of tensors of one shape."""
    return Add()(*tensors)


def multiply(*tensors: Tensor) -> Tensor:
    """The elementwise (Hadamard) product of tensors of one shape."""
    return Multiply()(*tensors)


def concat(*tensors: Tensor) -> Tensor:
    """The tensors' features stacked into one column per example."""
    return Concat()(*tensors)


def _as_list(value, what: str) -> list:
    items = list(value) if isinstance(value, list | tuple) else [value]
    if not items:
        raise ValueError(f"Model: give at least one {what}")
    return items


class Model:
    """A model given by its input and output tensors, with a loss on each output.

    Args:
        inputs: an `Input` tensor or a list of them (fed in that order).
        outputs: a tensor or a list of them.
        loss: a Loss or its name, or one per output (a single loss serves every output).
        loss_weights: a weight per output (default 1 each); the training loss is their
            weighted sum.
    """

    def __init__(self, inputs, outputs, loss="cross_entropy", loss_weights=None, name=None):
        self.inputs, self.outputs_ = _as_list(inputs, "input"), _as_list(outputs, "output")
        losses = loss if isinstance(loss, list | tuple) else [loss] * len(self.outputs_)
        if len(losses) != len(self.outputs_):
            raise ValueError(f"Model: {len(losses)} losses for {len(self.outputs_)} outputs")
        self.losses: list[Loss] = [get_loss(item) for item in losses]
        self.weights = [1] * len(losses) if loss_weights is None else list(loss_weights)
        self.name = name or "model"
        self.tensors = order(self.outputs_)
        known = {id(t) for t in self.inputs}
        for t in self.tensors:
            if t.layer is None and id(t) not in known:
                raise ValueError(f"Model: the outputs depend on an input not listed: {t!r}")
        self.layers: list[Layer] = list(
            dict.fromkeys(t.layer for t in self.tensors if t.layer is not None)
        )
        name_layers(self.layers, "Model")
        for out in self.outputs_:
            if len(out.shape) != 1:
                raise ShapeError(f"Model: an output has examples of shape {out.shape}; flatten it")
        self.input_shape = self.inputs[0].shape if len(self.inputs) == 1 else None

    loss = property(lambda self: self.losses[0])
    is_classifier = property(lambda self: self.losses[0].is_classifier)
    parameters = Sequential.parameters
    initial_state = Sequential.initial_state
    summary = Sequential.summary

    def _require_built(self) -> None:
        """A graph model is built as its layers are applied."""

    @property
    def outputs(self) -> int:
        """The number of outputs per example of the first output."""
        return self.outputs_[0].shape[0]

    def init(self, seed: int = 0, dtype=np.float64) -> dict[str, np.ndarray]:
        """Initial parameters, reproducible from `seed` (see Sequential.init)."""
        return Sequential.init(self, seed, _float_dtype(dtype, "init"))

    takes_lists = True  # X and y may be given as lists, one array per input and output

    def expression(self, train: bool = True):
        """(loss, output matrices, context, names), as Sequential.expression gives."""
        return self._expression(train)

    def _expression(self, train: bool, loops: bool = False):
        forget_built_expressions()
        symbols = self.parameters()
        outs, context, names = forward(
            self.inputs, self.tensors, self.outputs_, symbols, train, loops
        )
        loss, names = loss_of(outs, self.losses, self.weights, context, names)
        return loss, outs, context, names

    def _ends(self) -> tuple[list, list]:
        """The shape of each input and (loss, width) of each output."""
        return [t.shape for t in self.inputs], [
            (loss, out.shape[0]) for loss, out in zip(self.losses, self.outputs_, strict=True)
        ]

    def derive(self) -> Derivation:
        """The backpropagation derivation of the training loss over the graph."""
        loss, _, _, names = self.expression(train=True)
        return derive(loss, list(self.parameters().values()), names=names)

    def compile(self, seed: int = 0) -> GraphCompiledModel:
        """NumPy functions for training and prediction (see GraphCompiledModel)."""
        return GraphCompiledModel(self, seed=seed)

    def pack(self, *arrays) -> np.ndarray:
        """One array per input joined into one (N, total features) array, which `sd.train`
        can shuffle and batch; the compiled model splits it again."""
        if len(arrays) != len(self.inputs):
            raise ShapeError(f"Model.pack: {len(arrays)} arrays for {len(self.inputs)} inputs")
        return np.hstack([np.asarray(a).reshape(len(a), -1) for a in arrays])

    def __repr__(self) -> str:
        return f"Model(inputs={len(self.inputs)}, outputs={len(self.outputs_)}, layers={len(self.layers)})"


class GraphCompiledModel(CompiledModel):
    """A graph model compiled to NumPy: CompiledModel, which serves every model (the name
    kept for code that names it)."""


__all__ = [
    "Add",
    "Concat",
    "GraphCompiledModel",
    "Input",
    "Model",
    "Multiply",
    "Tensor",
    "add",
    "concat",
    "multiply",
]
