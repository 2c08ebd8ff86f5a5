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

from collections.abc import Mapping, Sequence

import numpy as np
import sympy
from sympy import MatrixSymbol

from symdl.compile.codegen import CompiledProgram
from symdl.core.calculus import derive
from symdl.core.derivation import Derivation
from symdl.core.matrices import hadamard
from symdl.core.program import build_program
from symdl.nn.layers import Context, Layer, Owned, Shape, ShapeError, _features, walk
from symdl.nn.losses import Loss, get_loss
from symdl.nn.model import (
    Argument,
    CompiledModel,
    Sequential,
    _float_dtype,
    forget_built_expressions,
)
from symdl.ops import vstack


class Tensor:
    """A value in a graph model: a model input, or a layer applied to tensors."""

    def __init__(self, shape: Shape, layer: Layer | None = None, parents=(), name=None):
        self.shape, self.layer, self.parents, self.name = tuple(shape), layer, tuple(parents), name

    def applied(self, layer: Layer, inputs: Sequence[Tensor]) -> Tensor:
        """`layer` applied to `inputs` (this tensor first): built on first use; a later use
        must give inputs of the same shapes, and shares the layer's parameters."""
        for t in inputs:
            if not isinstance(t, Tensor):
                raise TypeError(f"{layer.name or layer.kind}: {t!r} is not a graph tensor")
        shapes = [t.shape for t in inputs]
        shape_in = shapes[0] if len(shapes) == 1 else shapes
        label = layer.given_name or type(layer).__name__
        if getattr(layer, "graph_input_shape", None) is None:
            try:
                out = layer.build_many(shapes) if len(shapes) > 1 else layer.build(shapes[0])
            except ValueError as error:
                raise ShapeError(f"{label}: {error}") from None
            layer.graph_input_shape = shape_in
        elif layer.graph_input_shape != shape_in:
            raise ShapeError(
                f"{label}: used again on inputs of shape {shape_in}, but it was built for "
                f"{layer.graph_input_shape}; a shared layer needs inputs of the same shape"
            )
        else:
            out = layer.output_shape
        return Tensor(out, layer, inputs)

    def __repr__(self) -> str:
        what = "Input" if self.layer is None else type(self.layer).__name__
        return f"Tensor({what}, shape={self.shape})"


def Input(shape, name: str | None = None) -> Tensor:  # noqa: N802 (a constructor, as in Keras)
    """A model input: examples of `shape` (features, or (T, F) for sequences)."""
    shape = (int(shape),) if isinstance(shape, int | np.integer) else tuple(map(int, shape))
    return Tensor(shape, name=name)


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


def _order(outputs: list[Tensor]) -> list[Tensor]:
    """Every tensor the outputs depend on, each after its parents."""
    order, seen = [], set()

    def visit(t):
        if id(t) in seen:
            return
        seen.add(id(t))
        for p in t.parents:
            visit(p)
        order.append(t)

    for t in outputs:
        visit(t)
    return order


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
        self.tensors = _order(self.outputs_)
        known = {id(t) for t in self.inputs}
        for t in self.tensors:
            if t.layer is None and id(t) not in known:
                raise ValueError(f"Model: the outputs depend on an input not listed: {t!r}")
        self.layers: list[Layer] = list(
            dict.fromkeys(t.layer for t in self.tensors if t.layer is not None)
        )
        Sequential._name_layers(self)
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

    def expression(self, train: bool = True):
        """(loss, output matrices, context, names), as Sequential.expression gives."""
        forget_built_expressions()
        N = sympy.Symbol("N", integer=True, positive=True)
        several = len(self.inputs) > 1
        values = {
            id(t): MatrixSymbol(f"X_{{{i + 1}}}" if several else "X", _features(t.shape), N)
            for i, t in enumerate(self.inputs)
        }
        symbols = self.parameters()
        context = Context(index=0, batch=N, train=train)
        names: dict = {}
        uses: dict = {}

        def params_of(layer):
            prefix = layer.name + "."
            return {k[len(prefix) :]: v for k, v in symbols.items() if k.startswith(prefix)}

        def apply(layers, A):  # a block's inner layers, in order
            for layer in layers:
                context.index = layer.index
                A = self._named(layer, layer.forward(A, params_of(layer), context), A, names, "")
            return A

        context.apply = apply
        for t in self.tensors:
            if t.layer is None:
                continue
            layer = t.layer
            context.index = layer.index
            uses[layer] = uses.get(layer, 0) + 1
            args = [values[id(p)] for p in t.parents]
            A = args[0] if len(args) == 1 else tuple(args)
            suffix = "" if uses[layer] == 1 else f",{uses[layer]}"
            result = layer.forward(A, params_of(layer), context)
            values[id(t)] = self._named(layer, result, A, names, suffix)
        for expr, name in context.names.items():
            names.setdefault(expr, name)
        outs = [values[id(t)] for t in self.outputs_]
        several = len(outs) > 1
        terms = []
        for i, (item, weight, Z) in enumerate(zip(self.losses, self.weights, outs, strict=True)):
            Y = MatrixSymbol(f"Y_{{{i + 1}}}" if several else "Y", Z.shape[0], N)
            term = item.expression(Z, Y)
            terms.append(term if weight == 1 else sympy.Mul(weight, term))
        terms += dict.fromkeys(context.penalties)  # a shared layer's penalty once
        loss = terms[0] if len(terms) == 1 else sympy.Add(*terms, evaluate=False)
        return loss, outs, context, names

    @staticmethod
    def _named(layer, result, A, names, suffix):
        Z, out = result
        index = layer.index
        if Z is not None and Z is not A and not isinstance(Z, MatrixSymbol):
            names.setdefault(Z, f"Z^{{({index}{suffix})}}")
        if out is not Z and out is not A and not isinstance(out, MatrixSymbol):
            names.setdefault(out, f"A^{{({index}{suffix})}}")
        return out

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
    """A graph model compiled to NumPy: `loss_and_grads(params, X, y)` with X one array per
    input (a tuple or list, or `model.pack(...)` of them) and y one target array per output
    (a tuple or list; one array for a single output; for several outputs that take labels,
    also an (N, outputs) array, one column each, which `sd.train` can batch)."""

    def __init__(self, model: Model, seed: int = 0):
        self.model = model
        self.symbols = model.parameters()
        self.names = list(self.symbols)
        self.shapes = {
            f"{layer.name}.{k}": s
            for layer in walk(model.layers)
            for k, s in layer.natural_shapes().items()
        }
        self.state = model.initial_state()
        self.rng = np.random.default_rng(seed)
        self.training = True
        self._train = self._compile_training(train=True)
        self._eval_grads = None
        loss, outs, context, _ = model.expression(train=False)
        self._eval = self._with_plan(CompiledProgram(build_program([loss])), context)
        predictions = [item.predictions(Z) for item, Z in zip(model.losses, outs, strict=True)]
        self._predict = self._with_plan(CompiledProgram(build_program(predictions)), context)

    def _plan(self, compiled_args, context) -> list[Argument]:
        """As CompiledModel._plan, with the batch and the targets one matrix per input and
        per output: a "batch" or "targets" Argument names which (its index)."""
        plan, rest = [], []
        inputs = ["X"] if len(self.model.inputs) == 1 else self._names("X", self.model.inputs)
        targets = ["Y"] if len(self.model.outputs_) == 1 else self._names("Y", self.model.outputs_)
        for arg in compiled_args:
            if arg.name in inputs:
                index = inputs.index(arg.name)
                plan.append(Argument("batch", index, _item(0, index)))
            elif arg.name in targets:
                index = targets.index(arg.name)
                plan.append(Argument("targets", index, _item(1, index)))
            else:
                plan.append(None)
                rest.append(arg)
        own = iter(super()._plan(rest, context))  # parameters, constants, extra inputs
        return [step if step is not None else next(own) for step in plan]

    @staticmethod
    def _names(letter, items):
        return [f"{letter}_{{{i + 1}}}" for i in range(len(items))]

    def _extra_input(self, wanted: Owned, context):
        parent = super()._extra_input(wanted, context)
        return lambda params, X, Y: parent(params, X[0], Y)

    def _batch(self, X, dtype=np.float64):
        widths = [_features(t.shape) for t in self.model.inputs]
        if isinstance(X, list | tuple):
            if len(X) != len(widths):
                raise ShapeError(f"input: {len(X)} arrays for {len(widths)} model inputs")
            arrays = [np.asarray(a, dtype=dtype).reshape(len(a), -1) for a in X]
        else:
            X = np.asarray(X, dtype=dtype).reshape(len(X), -1)
            if X.shape[1] != sum(widths):
                raise ShapeError(
                    f"input: examples of {X.shape[1]} features; the model's inputs have "
                    f"{widths} (give one array per input, or model.pack(...) of them)"
                )
            arrays = np.split(X, np.cumsum(widths)[:-1], axis=1)
        for a, w, t in zip(arrays, widths, self.model.inputs, strict=True):
            if a.shape[1] != w:
                raise ShapeError(f"input: examples of {a.shape[1]} features, expected {t.shape}")
        return [np.ascontiguousarray(a.T) for a in arrays]

    def _targets(self, y, dtype):
        model = self.model
        several = len(model.outputs_) > 1
        if isinstance(y, list | tuple):
            ys = list(y)
        elif several and np.ndim(y) == 2 and np.shape(y)[1] == len(model.outputs_):
            ys = list(np.asarray(y).T)  # one column per output: labels, as sd.train batches
        else:
            ys = [y]
        if len(ys) != len(model.outputs_):
            raise ShapeError(f"targets: {len(ys)} arrays for {len(model.outputs_)} model outputs")
        return [
            item.targets(t, out.shape[0]).astype(dtype, copy=False)
            for item, t, out in zip(model.losses, ys, model.outputs_, strict=True)
        ]

    def loss_and_grads(self, params: Mapping[str, np.ndarray], X, y):
        """The loss and its gradient with respect to every parameter."""
        compiled, plan, wanted = self._train if self.training else self._eval_training()
        dtype = self._dtype(params)
        Xs = self._batch(X, dtype)
        inputs = self._inputs(plan, params, Xs, self._targets(y, dtype))
        value, *rest = compiled.function(*inputs, Xs[0].shape[1])
        grads = {}
        for name, g in zip(self.names, rest[: len(self.names)], strict=True):
            g = np.asarray(g, dtype=dtype)
            grads[name] = g.reshape(self.shapes[name])
        if self.training and wanted:
            self._update_state(wanted, rest[len(self.names) :], Xs[0].shape[1])
        return float(value), grads

    def _run(self, program, params, X, y=None, every=False):
        compiled, plan = program
        dtype = self._dtype(params)
        Xs = self._batch(X, dtype)
        Ys = None if y is None else self._targets(y, dtype)
        out = compiled.function(*self._inputs(plan, params, Xs, Ys), Xs[0].shape[1])
        return out if every else out[0]

    def predict(self, params, X):
        """Outputs per example, one row each (probabilities for classifiers); a list of
        arrays for a model of several outputs."""
        outs = self._run(self._predict, params, X, every=True)
        dtype = self._dtype(params)
        arrays = [np.asarray(o, dtype=dtype).T for o in outs[: len(self.model.outputs_)]]
        return arrays[0] if len(arrays) == 1 else arrays


def _item(which: int, index: int):
    return lambda params, X, Y: (X, Y)[which][index]


__all__ = ["Add", "Concat", "Input", "Model", "Multiply", "Tensor", "add", "concat", "multiply"]
