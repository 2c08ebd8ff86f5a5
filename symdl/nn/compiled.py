"""A model compiled to NumPy: the training step (loss and gradients), the loss and the
predictions at inference, and the fast binding of a step's arguments. One class serves every
model; a Sequential is the network of one input and one output.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from symdl.compile.codegen import CompiledProgram
from symdl.core.calculus import derive
from symdl.core.program import build_program
from symdl.nn.layers import Owned, ShapeError, _features, walk


class CompiledModel:
    """A model compiled to NumPy.

    `loss_and_grads(params, X, y) -> (loss, {name: gradient})` in the current mode
    (training by default: dropout on, batch statistics, running averages updated),
    `loss(params, X, y)` and `predict(params, X)` at inference. X has one example per row,
    shaped (N, *input_shape); gradients have the shapes of the parameters.

    A graph model (`nn.Model`) takes X as one array per input (a tuple or list, or
    `model.pack(...)` of them) and y as one target array per output (a tuple or list; one
    array for a single output; for several outputs that take labels, also an (N, outputs)
    array, one column each, which `sd.train` can batch); `predict` then gives a list of
    arrays, one per output.
    """

    def __init__(self, model, seed: int = 0, *, loops: bool = True):
        # model: a Sequential or an nn.Model (no import: a cycle)
        model._require_built()
        self.model = model
        self.loops = loops  # recurrent layers may loop over time (see `unrolled`)
        self.looped: list = []  # the layers whose compiled code loops
        self._unrolled = None
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
        # the network's ends: the shape of each input, (loss, width) of each output
        self._input_shapes, self._outputs = model._ends()
        self._listed = getattr(model, "takes_lists", False)  # X, y: one array per input/output
        self._train = self._compile_training(train=True)
        self._eval_grads = None
        loss, outs, context, _ = model._expression(train=False, loops=loops)
        self._eval = self._with_plan(CompiledProgram(build_program([loss])), context)
        self._predict = self._predictions(outs, context)
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
        loss, _, context, names = self.model._expression(train=train, loops=self.loops)
        self.looped = list(dict.fromkeys(self.looped + context.looped))
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

    def _predictions(self, outs: list, context) -> tuple:
        """The compiled predictions of each output (probabilities for a classifier)."""
        predictions = [
            loss.predictions(Z) for (loss, _), Z in zip(self._outputs, outs, strict=True)
        ]
        return self._with_plan(CompiledProgram(build_program(predictions)), context)

    def _plan(self, compiled_args, context) -> list[Argument]:
        """For each argument of a compiled function, a function of (params, Xs, Ys) giving
        its value: a parameter, a model input (X, or X_i of several: "batch" with the input's
        index), targets ("targets" with the output's index), a constant, or an extra input
        its layer gives."""
        param_of = {symbol.name: name for name, symbol in self.symbols.items()}
        constants = {symbol.name: value for symbol, value in context.constants.items()}
        inputs = _numbered("X", len(self._input_shapes))
        targets = _numbered("Y", len(self._outputs))
        plan = []
        for arg in compiled_args:
            if arg.name in constants:
                value = constants[arg.name]
                plan.append(Argument("constant", value, _constant(value)))
            elif arg.name in param_of:
                name = param_of[arg.name]
                shape = tuple(map(int, arg.shape))
                plan.append(Argument("parameter", name, self._parameter(name, shape)))
            elif arg.name in inputs:
                index = inputs.index(arg.name)
                plan.append(Argument("batch", index, _batch_input(index)))
            elif arg.name in targets:
                index = targets.index(arg.name)
                plan.append(Argument("targets", index, _targets(index)))
            elif arg.name in context.inputs:
                wanted = context.inputs[arg.name]
                plan.append(Argument("extra", wanted, self._extra_input(wanted, context)))
            else:
                raise ShapeError(f"internal: no value for the input {arg.name}")
        return plan

    def _parameter(self, name: str, shape: tuple) -> Callable:
        natural = self.shapes[name]

        def value_of(params, Xs, Ys):
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

        def value_of(params, Xs, Ys):
            X = Xs[0]
            shape = tuple(X.shape[1] if d is None else d for d in dims)
            value = layer.extra_input_value(key, shape, train, self.rng, read_state())
            return np.asarray(value).astype(X.dtype, copy=False)

        return value_of

    def _state_of(self, layer) -> Callable[[], dict]:
        """A function giving `layer`'s entries of the model's state, keyed as the layer keys
        them."""
        keys = {key: f"{layer.name}.{key}" for key in layer.state()}
        return lambda: {key: self.state[full] for key, full in keys.items()}

    # calls -------------------------------------------------------------------------------
    def _inputs(self, plan, params, Xs, Ys):
        """Arrays in the order of the compiled function's arguments, as `plan` says."""
        return [argument.value_of(params, Xs, Ys) for argument in plan]

    def _dtype(self, params) -> np.dtype:
        """The dtype a call computes in: float32 when the parameters are float32, else float64."""
        first = params.get(self.names[0]) if isinstance(params, Mapping) else None
        dtype = getattr(first, "dtype", None)
        return np.dtype(np.float32) if dtype == np.float32 else np.dtype(np.float64)

    def _batch(self, X, dtype=np.float64) -> list[np.ndarray]:
        """One (features, N) matrix per model input."""
        shapes = self._input_shapes
        if len(shapes) == 1 and not (self._listed and isinstance(X, list | tuple)):
            X, expected = np.asarray(X, dtype=dtype), shapes[0]
            if X.shape[1:] != expected and X.reshape(len(X), -1).shape[1] != _features(expected):
                raise ShapeError(
                    f"input: examples of shape {X.shape[1:]} do not fit the model's input "
                    f"shape {expected}"
                )
            return [X.reshape(len(X), -1).T]
        widths = [_features(s) for s in shapes]
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
        for a, w, shape in zip(arrays, widths, shapes, strict=True):
            if a.shape[1] != w:
                raise ShapeError(f"input: examples of {a.shape[1]} features, expected {shape}")
        return [np.ascontiguousarray(a.T) for a in arrays]

    def _targets(self, y, dtype) -> list[np.ndarray]:
        """One target matrix (outputs, N) per model output."""
        outputs = self._outputs
        if len(outputs) == 1 and not (self._listed and isinstance(y, list | tuple)):
            ys = [y]
        elif isinstance(y, list | tuple):
            ys = list(y)
        elif np.ndim(y) == 2 and np.shape(y)[1] == len(outputs):
            ys = list(np.asarray(y).T)  # one column per output: labels, as sd.train batches
        else:
            ys = [y]
        if len(ys) != len(outputs):
            raise ShapeError(f"targets: {len(ys)} arrays for {len(outputs)} model outputs")
        return [
            loss.targets(t, width).astype(dtype, copy=False)
            for (loss, width), t in zip(outputs, ys, strict=True)
        ]

    def loss_and_grads(self, params: Mapping[str, np.ndarray], X, y):
        """The loss and its gradient with respect to every parameter."""
        compiled, plan, wanted = self._train if self.training else self._eval_training()
        binder = self._binders.get(id(plan))
        if binder is None:
            binder = self._binders[id(plan)] = _Binder(
                plan, self.shapes, len(self._input_shapes), len(self._outputs)
            )
        values, dtype = binder.parameters(params)
        if dtype is None:
            dtype = self._dtype(params)
        Xs = self._batch(X, dtype)
        Ys = self._targets(y, dtype)
        N = Xs[0].shape[1]
        if values is None:  # not every parameter an ndarray of its shape: checked one by one
            inputs = self._inputs(plan, params, Xs, Ys)
        else:
            inputs = binder.arguments(values, params, Xs, Ys)
        value, *rest = compiled.function(*inputs, N)
        grads = binder.gradients(self.names, rest, dtype, (dtype, N) if values else None)
        if grads is None:
            grads = {}
            for name, g in zip(self.names, rest[: len(self.names)], strict=True):
                shape = self.shapes[name]
                if not isinstance(g, np.ndarray) or g.dtype != dtype:
                    g = np.asarray(g, dtype=dtype)
                grads[name] = g if g.shape == shape else g.reshape(shape)
        if self.training and wanted:
            self._update_state(wanted, rest[len(self.names) :], N)
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

    def _run(self, program: tuple, params, X, y=None) -> list:
        """Every output of a compiled inference function."""
        compiled, plan = program
        dtype = self._dtype(params)
        Xs = self._batch(X, dtype)
        Ys = None if y is None else self._targets(y, dtype)
        return compiled.function(*self._inputs(plan, params, Xs, Ys), Xs[0].shape[1])

    def loss(self, params, X, y) -> float:
        """The loss at inference (no dropout, running statistics), without gradients."""
        return float(self._run(self._eval, params, X, y)[0])

    def predict(self, params, X, *, train: bool = False) -> np.ndarray | list[np.ndarray]:
        """Outputs for each example, one row per example: probabilities for classifiers; a
        list of such arrays for a model of several outputs.

        `train=True` runs the training-mode forward pass instead (dropout on, batch
        statistics): a fresh random draw at each call, the samples MC dropout averages.
        """
        if train and self._sampled is None:
            _, outs, context, _ = self.model._expression(train=True, loops=self.loops)
            self._sampled = self._predictions(outs, context)
        outs = self._run(self._sampled if train else self._predict, params, X)
        dtype = self._dtype(params)
        arrays = [np.asarray(out, dtype=dtype).T for out in outs[: len(self._outputs)]]
        return arrays[0] if len(arrays) == 1 else arrays

    def features(self, params, X) -> np.ndarray:
        """The input of the last layer for each example (one row per example), at inference:
        what a method on the last layer alone (a last-layer Laplace approximation) works on."""
        if self._features is None:
            if not hasattr(self.model, "forward"):
                raise TypeError(f"features: {type(self.model).__name__} has no last layer")
            upto = len(self.model.layers) - 1
            A, context, _ = self.model.forward(train=False, upto=upto, loops=self.loops)
            self._features = self._with_plan(CompiledProgram(build_program([A])), context)
        out = self._run(self._features, params, X)[0]
        return np.asarray(out, dtype=self._dtype(params)).T

    @property
    def source(self) -> str:
        """The generated NumPy source of the training step."""
        return self._train[0].source

    def unrolled(self) -> CompiledModel:
        """This model compiled with every recurrent layer unrolled (itself if none loops), and
        sharing its state: what the JAX and PyTorch exports print, since a loop over time
        (symdl.nn.scan) runs in NumPy only."""
        if not self.looped:
            return self
        if self._unrolled is None:
            twin = type(self)(self.model, loops=False)
            twin.state, twin.rng, twin.training = self.state, self.rng, self.training
            self._unrolled = twin
        return self._unrolled


@dataclass(frozen=True)
class Argument:
    """One argument of a compiled model function: its `kind` ("parameter", "batch",
    "targets", "constant" or "extra"), what it names (a parameter's name, the index of the
    model input or output, the constant, the layer's Owned extra input) and
    `value_of(params, Xs, Ys)`, its value for one call (Xs one matrix per model input, Ys one
    per output). Exports to other backends read the kind; the NumPy step only calls
    `value_of`."""

    kind: str
    what: object
    value_of: Callable


class _Binder:
    """The arguments of a compiled training step gathered in one pass, for the common call:
    every parameter a NumPy array of its shape. `inputs` returns None otherwise, and the
    caller then takes each argument through its plan step, which checks it and names what is
    wrong; `gradients` returns None when a gradient is not an array of the parameters' dtype.
    A training step of a small network is a few tens of µs, so one check per parameter in
    Python (a call, isinstance, a lookup) is a visible part of it."""

    def __init__(
        self, plan: list[Argument], shapes: Mapping[str, tuple], inputs: int, outputs: int
    ):
        parameters = [(i, a.what) for i, a in enumerate(plan) if a.kind == "parameter"]
        self.names = [name for _, name in parameters]
        # per float dtype: (ndarray, shape, dtype) of each parameter, as the common call has them
        self.expected = {
            np.dtype(t): [(np.ndarray, shapes[name], np.dtype(t)) for name in self.names]
            for t in (np.float32, np.float64)
        }
        # the compiled step's shape of each parameter, where it differs (a bias is a column)
        self.reshape = []
        for k, (i, _) in enumerate(parameters):
            value = plan[i].value_of({self.names[k]: np.zeros(shapes[self.names[k]])}, None, None)
            if value.shape != shapes[self.names[k]]:
                self.reshape.append((k, value.shape))
        # where each argument comes from: [parameters..., Xs..., Ys..., the others...]
        count = len(parameters)
        rest = [(i, a) for i, a in enumerate(plan) if a.kind not in ("parameter", *_FROM_CALL)]
        source = {i: k for k, (i, _) in enumerate(parameters)}
        source |= {i: count + a.what for i, a in enumerate(plan) if a.kind == "batch"}
        source |= {i: count + inputs + a.what for i, a in enumerate(plan) if a.kind == "targets"}
        source |= {i: count + inputs + outputs + k for k, (i, _) in enumerate(rest)}
        self.order = [source[i] for i in range(len(plan))]
        self.others = [a.value_of for _, a in rest]
        self.no_targets = [None] * outputs
        self.targets = any(a.kind == "targets" for a in plan)
        # the gradients come back in the compiled shapes: (name, natural shape) where they differ
        self.compiled = {self.names[k]: shape for k, shape in self.reshape}
        self.natural = [(self.names[k], shapes[self.names[k]]) for k, _ in self.reshape]
        self.shapes = shapes
        self.wanted: dict = {}  # per dtype: (ndarray, dtype, compiled shape) of each gradient
        self.verified: set = set()  # the (dtype, N) of calls whose gradients were checked

    def parameters(self, params) -> tuple[list | None, np.dtype | None]:
        """(the parameters' arrays, their dtype) when every one is an ndarray of its shape and
        all of one float dtype, the common call; else (None, None), and the caller checks each
        through its plan step, which names what is wrong."""
        try:
            values = [params[name] for name in self.names]
            dtype = values[0].dtype
            expected = self.expected.get(dtype)
            if expected is None or [(type(v), v.shape, v.dtype) for v in values] != expected:
                return None, None
        except (KeyError, TypeError, AttributeError, IndexError):  # no key, not a dict, ...
            return None, None
        return values, dtype

    def arguments(self, values: list, params, Xs, Ys) -> list:
        """The compiled step's arguments, from `parameters`' arrays and the call's."""
        values = list(values)
        for k, shape in self.reshape:
            values[k] = values[k].reshape(shape)
        values += Xs
        values += self.no_targets if Ys is None else Ys
        values += [value_of(params, Xs, Ys) for value_of in self.others]
        return [values[j] for j in self.order]

    def inputs(self, params, Xs, Ys) -> list | None:
        """The compiled step's arguments, or None if a parameter needs the checks."""
        values, _ = self.parameters(params)
        if values is None or (self.targets and Ys is None):
            return None
        return self.arguments(values, params, Xs, Ys)

    def gradients(self, names: list[str], rest: list, dtype, call=None) -> dict | None:
        """{name: gradient in the parameter's shape}, or None if one is not an array of
        `dtype` (then the caller converts each). `call` ((dtype, N)) says every argument was
        an array of that dtype: the generated step then returns arrays of one type, dtype and
        shape each time, checked at its first such call only."""
        grads = rest[: len(names)]
        if call is None or call not in self.verified:
            wanted = self.wanted.get(dtype)
            if wanted is None:
                wanted = self.wanted[dtype] = [
                    (np.ndarray, dtype, self.compiled.get(name, self.shapes[name]))
                    for name in names
                ]
            if [(type(g), g.dtype, g.shape) for g in grads] != wanted:
                return None
            if call is not None:
                self.verified.add(call)
        out = dict(zip(names, grads, strict=True))
        for name, shape in self.natural:
            out[name] = out[name].reshape(shape)
        return out


_FROM_CALL = ("batch", "targets")  # arguments a call gives: the inputs Xs and targets Ys


def _numbered(letter: str, count: int) -> list[str]:
    """The names of a model's input (or target) matrices: X alone, or X_1, X_2, ..."""
    return [letter] if count == 1 else [f"{letter}_{{{i + 1}}}" for i in range(count)]


def _constant(value) -> Callable:
    return lambda params, Xs, Ys: value


def _batch_input(index: int) -> Callable:
    return lambda params, Xs, Ys: Xs[index]


def _targets(index: int) -> Callable:
    def value_of(params, Xs, Ys):
        if Ys is None:
            raise ShapeError("internal: the loss needs targets")
        return Ys[index]

    return value_of
