"""Sequential models: the layers' matrix expressions joined into one loss, derived by the
chain rule, and compiled to NumPy functions that train. A Sequential is the graph of one input
and one output (its layers applied in a chain, by symdl.nn.network's walk), compiled by the
one CompiledModel (symdl.nn.compiled) that serves graph models too.

    model = nn.Sequential(nn.Dense(128, "relu"), nn.Dense(10), input_shape=784)
    params = model.init(seed=0)
    step = model.compile()
    loss, grads = step.loss_and_grads(params, X, y)   # X rows are examples, as in NumPy
"""

from __future__ import annotations

import numpy as np
import sympy
from sympy import MatrixSymbol

from symdl.core.calculus import derive
from symdl.core.derivation import Derivation
from symdl.nn.compiled import Argument, CompiledModel, _Binder  # noqa: F401 (their old home)
from symdl.nn.layers import Layer, ShapeError, build_layers, walk
from symdl.nn.losses import Loss, get_loss
from symdl.nn.network import chain, forward, loss_of, name_layers


class Sequential:
    """Layers applied in order, then a loss (by default softmax cross-entropy on logits).

    Layers may be blocks (`Residual`) holding layers of their own. Every layer is numbered
    in the order it computes (a block after its inner layers), so each parameter has its own
    symbol, W^{(l)}, and its own name, "dense_3.W".

    Args:
        *layers: Layer objects (or nested Sequential models).
        loss: a Loss or its name: "cross_entropy", "binary_cross_entropy_with_logits", "mse",
            "huber", "hinge".
        input_shape: the shape of one example: features, (C, L) or (C, H, W).
    """

    def __init__(self, *layers, loss: Loss | str = "cross_entropy", input_shape=None, name=None):
        flat: list[Layer] = []
        for layer in layers:
            flat += layer.layers if isinstance(layer, Sequential) else [layer]
        if not flat:
            raise ValueError("Sequential: give at least one layer")
        self.layers = flat
        self.loss = get_loss(loss)
        self.name = name or "model"
        self.input_shape = None
        self._name_layers()
        if input_shape is not None:
            self.build(input_shape)

    @property
    def is_classifier(self) -> bool:
        """Whether the loss classifies (then `train` records accuracy)."""
        return self.loss.is_classifier

    def _name_layers(self) -> None:
        """Names "dense_2" per kind and numbers l = 1, 2, ... in the order `walk` gives."""
        name_layers(self.layers, type(self).__name__)

    def build(self, input_shape) -> Sequential:
        """Check every layer against the shape of one example; returns the model."""
        shape = (
            (int(input_shape),)
            if isinstance(input_shape, int | np.integer)
            else tuple(map(int, input_shape))
        )
        self.input_shape = shape
        shape = build_layers(self.layers, shape)
        self.output_shape = shape
        if len(shape) != 1:
            raise ShapeError(
                f"the last layer gives examples of shape {shape}; end with Flatten() and Dense"
            )
        return self

    def _require_built(self) -> None:
        if self.input_shape is None:
            raise ShapeError("the model has no input_shape yet: Sequential(..., input_shape=784)")

    @property
    def outputs(self) -> int:
        """The number of outputs per example."""
        self._require_built()
        return self.output_shape[0]

    def parameters(self) -> dict[str, MatrixSymbol]:
        """Every trainable matrix, keyed "layer.name" (e.g. "dense_1.W")."""
        self._require_built()
        symbols = {}
        for layer in walk(self.layers):
            for key, symbol in layer.parameters(layer.index).items():
                symbols[f"{layer.name}.{key}"] = symbol
        return symbols

    def init(self, seed: int = 0, dtype=np.float64) -> dict[str, np.ndarray]:
        """Initial parameters (Glorot or He, per layer), reproducible from `seed`.

        `dtype` (float64 or float32) is the dtype the compiled model then computes in: the
        same draws, rounded, for float32.
        """
        self._require_built()
        dtype = _float_dtype(dtype, "init")
        rng = np.random.default_rng(seed)
        params = {}
        for layer in walk(self.layers):
            for key, value in layer.init(rng).items():
                params[f"{layer.name}.{key}"] = np.asarray(value, dtype=float).astype(dtype)
        return params

    def initial_state(self) -> dict[str, np.ndarray]:
        """Non-trainable arrays (running statistics), keyed "layer.name"."""
        return {
            f"{layer.name}.{k}": v for layer in walk(self.layers) for k, v in layer.state().items()
        }

    def forward(self, train: bool = True, upto: int | None = None, loops: bool = False):
        """The output of the first `upto` top-level layers (all by default) for the batch X;
        `loops=True` for the compiled expression (recurrent layers may loop over time).

        Returns:
            (A, context, names): the output matrix (features x N), the context (extra inputs
            and state updates the layers declared) and textbook names {subexpression: "Z^{(l)}"}.
        """
        self._require_built()
        x, tensors = chain(self.input_shape, self.layers if upto is None else self.layers[:upto])
        last = tensors[-1] if tensors else x
        (A,), context, names = forward([x], tensors, [last], self.parameters(), train, loops)
        return A, context, names

    def expression(self, train: bool = True):
        """The loss expression and what goes with it.

        Returns:
            (loss, outputs, context, names): the scalar loss, the output matrix Z (logits),
            the context (the extra inputs layers declared, such as dropout masks, and the
            values they want after a training step, such as batch statistics), and textbook
            names {subexpression: "Z^{(l)}", ...}.
        """
        loss, (A,), context, names = self._expression(train)
        return loss, A, context, names

    def _expression(self, train: bool, loops: bool = False):
        """(loss, [output], context, names): the network of one input and one output, as a
        graph model gives it (the compiled model reads this, with `loops=True`: recurrent
        layers may loop over time)."""
        forget_built_expressions()
        A, context, names = self.forward(train, loops=loops)
        loss, names = loss_of([A], [self.loss], [1], context, names)
        return loss, [A], context, names

    def _ends(self) -> tuple[list, list]:
        """The shape of each input and (loss, width) of each output: one of each."""
        self._require_built()
        return [self.input_shape], [(self.loss, self.outputs)]

    def derive(self) -> Derivation:
        """The backpropagation derivation of the training loss (textbook names Z, A per layer)."""
        loss, _, _, names = self.expression(train=True)
        return derive(loss, list(self.parameters().values()), names=names)

    def compile(self, seed: int = 0) -> CompiledModel:
        """NumPy functions for training and prediction (see CompiledModel)."""
        return CompiledModel(self, seed=seed)

    def summary(self) -> str:
        """One line per layer: name, output shape, parameter count; a block's line gives the
        count of its layers, listed indented below it."""
        self._require_built()

        def count(layer) -> int:
            own = sum(int(np.prod(s)) for s in layer.natural_shapes().values())
            return own + sum(count(inner) for inner in layer.layers)

        def lines(layers, indent: str) -> list[str]:
            rows = []
            for layer in layers:
                name = indent + layer.name
                rows.append(f"{name:<14} {str(layer.output_shape):<16} {count(layer)}")
                rows += lines(layer.layers, indent + "  ")
            return rows

        total = sum(count(layer) for layer in self.layers)
        header = f"{'layer':<14} {'output':<16} params"
        return "\n".join([header, *lines(self.layers, ""), f"total parameters: {total}"])

    def __repr__(self) -> str:
        inner = ", ".join(repr(layer) for layer in self.layers)
        return f"Sequential({inner}, loss={self.loss!r}, input_shape={self.input_shape})"


def forget_built_expressions() -> None:
    """Empty SymPy's cache before a model's expression is built again (the training and the
    evaluation expressions are two builds). Matrix sums and products are not cached, so a
    rebuilt network is a new tree equal to the old; a cached op (a loss) of it then finds the
    old one by hash and SymPy compares the two trees node by node without remembering shared
    nodes, which takes time exponential in the sharing: a transformer block in a graph model
    of four outputs compiled for minutes, 12 s with the cache emptied."""
    sympy.core.cache.clear_cache()


def _float_dtype(dtype, where: str) -> np.dtype:
    """float32 or float64, the dtypes a model computes in; anything else is an error."""
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"{where}: dtype must be float32 or float64, got {dtype}")
    return dtype
