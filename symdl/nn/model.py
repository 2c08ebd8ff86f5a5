"""Sequential models: the layers' matrix expressions joined into one loss, derived by the
chain rule, and compiled to NumPy functions that train.

    model = nn.Sequential(nn.Dense(128, "relu"), nn.Dense(10), input_shape=784)
    params = model.init(seed=0)
    step = model.compile()
    loss, grads = step.loss_and_grads(params, X, y)   # X rows are examples, as in NumPy
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import sympy
from sympy import MatrixSymbol

from symdl.compile.codegen import CompiledProgram
from symdl.core.calculus import derive
from symdl.core.derivation import Derivation
from symdl.core.program import _Graph, build_program, canonical
from symdl.nn.layers import Context, Layer, Owned, ShapeError, build_layers, walk
from symdl.nn.losses import Loss, get_loss


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
        every = list(walk(self.layers))
        counts: dict[str, int] = {}
        taken = {layer.given_name for layer in every if layer.given_name}
        for index, layer in enumerate(every, start=1):
            layer.index = index
            if layer.given_name:
                layer.name = layer.given_name
                continue
            while True:
                counts[layer.kind] = counts.get(layer.kind, 0) + 1
                candidate = f"{layer.kind}_{counts[layer.kind]}"
                if candidate not in taken:
                    break
            layer.name = candidate
            taken.add(candidate)
        names = [layer.name for layer in every]
        if len(set(names)) != len(names):
            raise ValueError(f"Sequential: layer names must be distinct, got {names}")

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

    def forward(self, train: bool = True, upto: int | None = None):
        """The output of the first `upto` top-level layers (all by default) for the batch X.

        Returns:
            (A, context, names): the output matrix (features x N), the context (extra inputs
            and state updates the layers declared) and textbook names {subexpression: "Z^{(l)}"}.
        """
        self._require_built()
        layers = self.layers if upto is None else self.layers[:upto]
        N = sympy.Symbol("N", integer=True, positive=True)
        X = MatrixSymbol("X", int(np.prod(self.input_shape)), N)
        symbols = self.parameters()
        context = Context(index=0, batch=N, train=train)
        names: dict = {}

        def apply(layers, A):
            for layer in layers:
                context.index = index = layer.index
                prefix = layer.name + "."
                params = {k[len(prefix) :]: v for k, v in symbols.items() if k.startswith(prefix)}
                Z, A_next = layer.forward(A, params, context)
                if Z is not None and Z != A and not isinstance(Z, MatrixSymbol):
                    names.setdefault(Z, f"Z^{{({index})}}")
                if A_next != Z and A_next != A and not isinstance(A_next, MatrixSymbol):
                    names.setdefault(A_next, f"A^{{({index})}}")
                A = A_next
            return A

        context.apply = apply
        A = apply(layers, X)
        for expr, name in context.names.items():
            names.setdefault(expr, name)
        return A, context, names

    def expression(self, train: bool = True):
        """The loss expression and what goes with it.

        Returns:
            (loss, outputs, context, names): the scalar loss, the output matrix Z (logits),
            the context (the extra inputs layers declared, such as dropout masks, and the
            values they want after a training step, such as batch statistics), and textbook
            names {subexpression: "Z^{(l)}", ...}.
        """
        forget_built_expressions()
        A, context, names = self.forward(train)
        Y = MatrixSymbol("Y", self.outputs, A.shape[1])
        loss = self.loss.expression(A, Y)
        for penalty in context.penalties:
            loss = loss + penalty
        # a layer output that a later sum absorbed (x + y + z flattens) keeps no name
        present = _Graph([canonical(loss)])
        names = {k: v for k, v in names.items() if canonical(k) in present}
        return loss, A, context, names

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


class CompiledModel:
    """A model compiled to NumPy.

    `loss_and_grads(params, X, y) -> (loss, {name: gradient})` in the current mode
    (training by default: dropout on, batch statistics, running averages updated),
    `loss(params, X, y)` and `predict(params, X)` at inference. X has one example per row,
    shaped (N, *input_shape); gradients have the shapes of the parameters.
    """

    def __init__(self, model: Sequential, seed: int = 0):
        model._require_built()
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
        loss, Z, context, _ = model.expression(train=False)
        self._eval = self._with_plan(CompiledProgram(build_program([loss])), context)
        predictions = CompiledProgram(build_program([model.loss.predictions(Z)]))
        self._predict = self._with_plan(predictions, context)
        self._sampled = self._features = None  # compiled when first asked for
        self._binders: dict[int, _Binder] = {}  # per plan of a training step, by its id

    # modes -------------------------------------------------------------------------------
    def train(self) -> CompiledModel:
        """Training mode: dropout on, batch statistics; returns the model."""
        self.training = True
        return self

    def eval(self) -> CompiledModel:
        """Inference mode: no dropout, running statistics; returns the model."""
        self.training = False
        return self

    # compilation -------------------------------------------------------------------------
    def _compile_training(self, train: bool):
        loss, _, context, names = self.model.expression(train=train)
        extra = [wanted.expr for wanted in context.outputs]
        for i, expr in enumerate(extra):
            names.setdefault(expr, f"s_{{{i + 1}}}")
        derivation = derive(loss, list(self.symbols.values()), names=names)
        steps = {source: name for name, source in derivation.program.sources.items()}
        for wanted in context.outputs:
            if wanted.expr not in steps:
                raise ValueError(
                    f"{wanted.layer.name}: wants the value {wanted.key!r} after a training step, "
                    "but the training step does not compute it; a state update must be a "
                    "subexpression of the loss (a matrix a later layer uses)"
                )
        compiled = derivation.compile(extra=[steps[e] for e in extra])
        return (*self._with_plan(compiled, context), context.outputs)

    def _with_plan(self, compiled, context) -> tuple:
        """The compiled function and how to get each of its arguments, worked out once, since
        a training step is too short to look names up again."""
        return compiled, self._plan(compiled.args, context)

    # calls -------------------------------------------------------------------------------
    def _plan(self, compiled_args, context) -> list[Argument]:
        """For each argument of a compiled function, a function of (params, X, Y) giving its
        value: a parameter, the batch, a constant, or an extra input its layer gives."""
        param_of = {symbol.name: name for name, symbol in self.symbols.items()}
        constants = {symbol.name: value for symbol, value in context.constants.items()}
        plan = []
        for arg in compiled_args:
            if arg.name in constants:
                value = constants[arg.name]
                plan.append(Argument("constant", value, _constant(value)))
            elif arg.name in param_of:
                name = param_of[arg.name]
                shape = tuple(map(int, arg.shape))
                plan.append(Argument("parameter", name, self._parameter(name, shape)))
            elif arg.name == "X":
                plan.append(Argument("batch", None, _batch_input))
            elif arg.name == "Y":
                plan.append(Argument("targets", None, _targets))
            elif arg.name in context.inputs:
                wanted = context.inputs[arg.name]
                plan.append(Argument("extra", wanted, self._extra_input(wanted, context)))
            else:
                raise ShapeError(f"internal: no value for the input {arg.name}")
        return plan

    def _parameter(self, name: str, shape: tuple) -> Callable:
        natural = self.shapes[name]

        def value_of(params, X, Y):
            value = params.get(name) if isinstance(params, Mapping) else None
            if value is None:
                raise ShapeError(
                    f"params has no {name!r}; the model's parameters are "
                    f"{', '.join(self.names)} (model.init(seed) makes them)"
                )
            if not isinstance(value, np.ndarray):
                value = np.asarray(value, dtype=float)
            if value.shape != natural:
                raise ShapeError(f"{name}: expected an array of shape {natural}, got {value.shape}")
            return value.reshape(shape) if natural != shape else value

        return value_of

    def _extra_input(self, wanted: Owned, context) -> Callable:
        """The value of an extra input, from the layer that declared it."""
        layer, key, train = wanted.layer, wanted.key, context.train
        dims = [None if d == context.batch else int(d) for d in wanted.expr.shape]
        read_state = self._state_of(layer)

        def value_of(params, X, Y):
            shape = tuple(X.shape[1] if d is None else d for d in dims)
            value = layer.extra_input_value(key, shape, train, self.rng, read_state())
            return np.asarray(value).astype(X.dtype, copy=False)

        return value_of

    def _state_of(self, layer) -> Callable[[], dict]:
        """A function giving `layer`'s entries of the model's state, keyed as the layer keys
        them."""
        keys = {key: f"{layer.name}.{key}" for key in layer.state()}
        return lambda: {key: self.state[full] for key, full in keys.items()}

    def _inputs(self, plan, params, X, Y):
        """Arrays in the order of the compiled function's arguments, as `plan` says."""
        return [argument.value_of(params, X, Y) for argument in plan]

    def _dtype(self, params) -> np.dtype:
        """The dtype a call computes in: float32 when the parameters are float32, else float64."""
        first = params.get(self.names[0]) if isinstance(params, Mapping) else None
        dtype = getattr(first, "dtype", None)
        return np.dtype(np.float32) if dtype == np.float32 else np.dtype(np.float64)

    def _batch(self, X, dtype=np.float64):
        X = np.asarray(X, dtype=dtype)
        expected = self.model.input_shape
        if X.shape[1:] != expected and X.reshape(len(X), -1).shape[1] != int(np.prod(expected)):
            raise ShapeError(
                f"input: examples of shape {X.shape[1:]} do not fit the model's input shape {expected}"
            )
        return X.reshape(len(X), -1).T

    def loss_and_grads(self, params: Mapping[str, np.ndarray], X, y):
        """The loss and its gradient with respect to every parameter."""
        compiled, plan, wanted = self._train if self.training else self._eval_training()
        dtype = self._dtype(params)
        Xc = self._batch(X, dtype)
        Y = self.model.loss.targets(y, self.model.outputs).astype(dtype, copy=False)
        binder = self._binders.get(id(plan))
        if binder is None:
            binder = self._binders[id(plan)] = _Binder(plan, self.shapes)
        inputs = binder.inputs(params, Xc, Y)
        if inputs is None:  # not every parameter an ndarray of its shape: checked one by one
            inputs = self._inputs(plan, params, Xc, Y)
        value, *rest = compiled.function(*inputs, Xc.shape[1])
        grads = binder.gradients(self.names, rest, dtype)
        if grads is None:
            grads = {}
            for name, g in zip(self.names, rest[: len(self.names)], strict=True):
                shape = self.shapes[name]
                if not isinstance(g, np.ndarray) or g.dtype != dtype:
                    g = np.asarray(g, dtype=dtype)
                grads[name] = g if g.shape == shape else g.reshape(shape)
        if self.training and wanted:
            self._update_state(wanted, rest[len(self.names) :], Xc.shape[1])
        return float(value), grads

    def _eval_training(self):
        if self._eval_grads is None:
            self._eval_grads = self._compile_training(train=False)
        return self._eval_grads

    def _update_state(self, wanted: list[Owned], values: list, batch: int) -> None:
        """Each layer's new state, from the values it asked for (running statistics)."""
        by_layer: dict = {}
        for owned, value in zip(wanted, values, strict=True):
            by_layer.setdefault(owned.layer, {})[owned.key] = value
        for layer, layer_values in by_layer.items():
            state = self._state_of(layer)()
            for key, value in layer.update_state(state, layer_values, batch).items():
                self.state[f"{layer.name}.{key}"] = value

    def _run(self, program: tuple, params, X, y=None):
        compiled, plan = program
        dtype = self._dtype(params)
        Xc = self._batch(X, dtype)
        Y = None if y is None else self.model.loss.targets(y, self.model.outputs).astype(dtype)
        return compiled.function(*self._inputs(plan, params, Xc, Y), Xc.shape[1])[0]

    def loss(self, params, X, y) -> float:
        """The loss at inference (no dropout, running statistics), without gradients."""
        return float(self._run(self._eval, params, X, y))

    def predict(self, params, X, *, train: bool = False) -> np.ndarray:
        """Outputs for each example, one row per example: probabilities for classifiers.

        `train=True` runs the training-mode forward pass instead (dropout on, batch
        statistics): a fresh random draw at each call, the samples MC dropout averages.
        """
        if train and self._sampled is None:
            _, Z, context, _ = self.model.expression(train=True)
            program = CompiledProgram(build_program([self.model.loss.predictions(Z)]))
            self._sampled = self._with_plan(program, context)
        out = self._run(self._sampled if train else self._predict, params, X)
        return np.asarray(out, dtype=self._dtype(params)).T

    def features(self, params, X) -> np.ndarray:
        """The input of the last layer for each example (one row per example), at inference:
        what a method on the last layer alone (a last-layer Laplace approximation) works on."""
        if self._features is None:
            A, context, _ = self.model.forward(train=False, upto=len(self.model.layers) - 1)
            self._features = self._with_plan(CompiledProgram(build_program([A])), context)
        out = self._run(self._features, params, X)
        return np.asarray(out, dtype=self._dtype(params)).T

    @property
    def source(self) -> str:
        """The generated NumPy source of the training step."""
        return self._train[0].source


@dataclass(frozen=True)
class Argument:
    """One argument of a compiled model function: its `kind` ("parameter", "batch",
    "targets", "constant" or "extra"), what it names (a parameter's name, the constant, the
    layer's Owned extra input) and `value_of(params, X, Y)`, its value for one call. Exports to
    other backends read the kind; the NumPy step only calls `value_of`."""

    kind: str
    what: object
    value_of: Callable


_FROM_CALL = ("batch", "targets")  # arguments a call gives: X and Y


class _Binder:
    """The arguments of a compiled training step gathered in one pass, for the common call:
    every parameter a NumPy array of its shape. `inputs` returns None otherwise, and the
    caller then takes each argument through its plan step, which checks it and names what is
    wrong; `gradients` returns None when a gradient is not an array of the parameters' dtype.
    A training step of a small network is a few tens of µs, so one check per parameter in
    Python (a call, isinstance, a lookup) is a visible part of it."""

    def __init__(self, plan: list[Argument], shapes: Mapping[str, tuple]):
        parameters = [(i, a.what) for i, a in enumerate(plan) if a.kind == "parameter"]
        others = [(i, a) for i, a in enumerate(plan) if a.kind != "parameter"]
        self.names = [name for _, name in parameters]
        self.expected = [(np.ndarray, shapes[name]) for name in self.names]
        # the compiled step's shape of each parameter, where it differs (a bias is a column)
        self.reshape = []
        for k, (i, _) in enumerate(parameters):
            value = plan[i].value_of({self.names[k]: np.zeros(shapes[self.names[k]])}, None, None)
            if value.shape != shapes[self.names[k]]:
                self.reshape.append((k, value.shape))
        # where each argument comes from: [parameters..., X, Y, the other arguments...]
        count, rest = len(parameters), [(i, a) for i, a in others if a.kind not in _FROM_CALL]
        source = {i: k for k, (i, _) in enumerate(parameters)}
        source |= {i: count + (a.kind == "targets") for i, a in others if a.kind in _FROM_CALL}
        source |= {i: count + 2 + k for k, (i, _) in enumerate(rest)}
        self.order = [source[i] for i in range(len(plan))]
        self.others = [a.value_of for _, a in rest]
        self.targets = any(a.kind == "targets" for a in plan)
        # the gradients come back in the compiled shapes: (name, natural shape) where they differ
        self.compiled = {self.names[k]: shape for k, shape in self.reshape}
        self.natural = [(self.names[k], shapes[self.names[k]]) for k, _ in self.reshape]
        self.shapes = shapes
        self.wanted: dict = {}  # per dtype: (ndarray, dtype, compiled shape) of each gradient

    def inputs(self, params, X, Y) -> list | None:
        """The compiled step's arguments, or None if a parameter needs the checks."""
        try:
            values = [params[name] for name in self.names]
            if [(type(v), v.shape) for v in values] != self.expected:  # type: ndarray exactly
                return None
        except (KeyError, TypeError, AttributeError):  # no such key, not a dict, no shape
            return None
        if self.targets and Y is None:
            return None
        for k, shape in self.reshape:
            values[k] = values[k].reshape(shape)
        values += (X, Y)
        values += [value_of(params, X, Y) for value_of in self.others]
        return [values[j] for j in self.order]

    def gradients(self, names: list[str], rest: list, dtype) -> dict | None:
        """{name: gradient in the parameter's shape}, or None if one is not an array of
        `dtype` (then the caller converts each)."""
        grads = rest[: len(names)]
        wanted = self.wanted.get(dtype)
        if wanted is None:
            wanted = self.wanted[dtype] = [
                (np.ndarray, dtype, self.compiled.get(name, self.shapes[name])) for name in names
            ]
        if [(type(g), g.dtype, g.shape) for g in grads] != wanted:
            return None
        out = dict(zip(names, grads, strict=True))
        for name, shape in self.natural:
            out[name] = out[name].reshape(shape)
        return out


def forget_built_expressions() -> None:
    """Empty SymPy's cache before a model's expression is built again (the training and the
    evaluation expressions are two builds). Matrix sums and products are not cached, so a
    rebuilt network is a new tree equal to the old; a cached op (a loss) of it then finds the
    old one by hash and SymPy compares the two trees node by node without remembering shared
    nodes, which takes time exponential in the sharing: a transformer block in a graph model
    of four outputs compiled for minutes, 12 s with the cache emptied."""
    sympy.core.cache.clear_cache()


def _constant(value) -> Callable:
    return lambda params, X, Y: value


def _batch_input(params, X, Y):
    return X


def _targets(params, X, Y):
    if Y is None:
        raise ShapeError("internal: the loss needs targets")
    return Y


def _float_dtype(dtype, where: str) -> np.dtype:
    """float32 or float64, the dtypes a model computes in; anything else is an error."""
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"{where}: dtype must be float32 or float64, got {dtype}")
    return dtype
