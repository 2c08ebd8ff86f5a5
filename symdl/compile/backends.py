"""What the JAX and PyTorch exports share: a printer that turns the NumPy code each op supplies
(`_numpycode`) into another array library's by translating module prefixes, never op names,
and the plan that feeds a compiled model's parameters and batch to the generated function.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import ClassVar

import numpy as np
import sympy
from sympy import S

from symdl.compile.codegen import (
    Assignment,
    CompiledDerivation,
    SymdlNumPyPrinter,
    _load,
    _source,
    numeric_form,
)
from symdl.core.rules import UnsupportedOp  # the one class, raised here for export refusals

EXTRA = "pip install symdl[export]"


class MissingBackend(ImportError):
    """The array library an export needs is not installed."""


def require(package: str):
    """Import `package` (jax or torch) or say which extra installs it."""
    try:
        return importlib.import_module(package)
    except ImportError as error:
        raise MissingBackend(
            f"exporting to {package} needs {package} installed: {EXTRA} (or pip install {package})"
        ) from error


def _exists(module: str, name: str) -> bool:
    """`module` has `name`: a function, or a submodule (an op may print a module prefix alone,
    as the spectral ops print numpy.linalg and symdl.ops.linalg)."""
    try:
        if hasattr(importlib.import_module(module), name):
            return True
        importlib.import_module(f"{module}.{name}")
        return True
    except ImportError:
        return False


class BackendPrinter(SymdlNumPyPrinter):
    """SymdlNumPyPrinter whose module names are translated for another array library.

    Each op prints its NumPy form once (`_numpycode`); `modules` maps a module prefix
    ("numpy", "scipy.special", "symdl.ops.runtime") to the backend module offering the same
    names with the same meaning. A name the backend lacks is an UnsupportedOp naming the op.
    """

    backend: ClassVar[str] = ""
    modules: ClassVar[dict[str, str]] = {}
    numpy_only: ClassVar[tuple[str, ...]] = ("numpy", "scipy")

    def __init__(self, settings=None):
        super().__init__({"fully_qualified_modules": True, "inline": True, **(settings or {})})
        self.printmethod = "_numpycode"  # ops supply one code method for every backend
        self._printing: list = []

    @property
    def kernels(self) -> str:
        return self.modules["symdl.ops.runtime"]

    def _sum(self, code, axis):
        return f"({code}).sum(axis={axis}, keepdims=True)"  # every array library has .sum

    def translate(self, fqn: str) -> str:
        """`fqn` with its longest translated module prefix replaced."""
        for prefix in sorted(self.modules, key=len, reverse=True):
            if fqn == prefix or fqn.startswith(prefix + "."):
                return self.modules[prefix] + fqn[len(prefix) :]
        return fqn

    def _module_format(self, fqn, register=True):
        translated = self.translate(fqn)
        module, _, name = translated.rpartition(".")
        if not module:  # a Python builtin
            return super()._module_format(translated, register)
        if translated.split(".")[0] in self.numpy_only or not _exists(module, name):
            raise UnsupportedOp(
                f"{self._current_op()}: its code calls {fqn}, which {self.backend} does not "
                f"offer (as {translated}); export a model without this op, or add {name} to "
                f"{module}"
            )
        return super()._module_format(translated, register)

    def _current_op(self) -> str:
        for expr in reversed(self._printing):
            if not isinstance(expr, sympy.Symbol | sympy.MatrixSymbol | sympy.Number):
                return type(expr).__name__
        return "an expression"

    def _print(self, expr, **kwargs):
        self._printing.append(expr)
        try:
            return super()._print(expr, **kwargs)
        finally:
            self._printing.pop()

    def _print_Heaviside(self, expr):  # symdl's kink convention, in the arguments' dtype
        at_zero = expr.pargs[1] if len(expr.pargs) > 1 else S.Half
        step = self._module_format(f"{self.kernels}.heaviside")
        return f"{step}({self._print(expr.args[0])}, {self._print(at_zero)})"


def backend_source(compiled: CompiledDerivation, printer: BackendPrinter, outputs=None):
    """The generated function of `compiled` printed for another backend, and its source."""
    derivation = compiled.derivation
    if outputs is None:
        outputs = [derivation.output, *derivation.gradient_entries]
    source = _source(compiled.args, compiled.dimensions, compiled.body, outputs, printer=printer)
    return _load(source), source


def forward_source(compiled: CompiledDerivation, printer: BackendPrinter):
    """The forward pass alone (the value, no gradient) printed for another backend: what the
    backend's own autodiff differentiates when it referees symdl's gradient."""
    derivation = compiled.derivation
    body = [Assignment(s.name, numeric_form(s.rhs)) for s in derivation.forward]
    source = _source(compiled.args, compiled.dimensions, body, [derivation.output], printer)
    return _load(source), source


class ModelPlan:
    """How a compiled model's training function takes its arguments, from a params dict,
    a batch X (one example per row) and targets Y (one row per example).

    A graph model (`nn.Model`) of several inputs takes X as a list or tuple of arrays, one per
    input (or `model.pack(...)` of them, split again here), and Y as one array per output."""

    def __init__(self, compiled_model, train: bool = True):
        # a recurrent layer compiled as a loop over time runs in NumPy only: the export prints
        # the model compiled with that layer unrolled (the same loss and gradients)
        unrolled = getattr(compiled_model, "unrolled", None)
        compiled_model = unrolled() if unrolled is not None else compiled_model
        self.model = compiled_model.model
        self.names = list(compiled_model.names)
        self.shapes = dict(compiled_model.shapes)
        if train:
            compiled, plan, extra_keys = compiled_model._train
        else:
            compiled, plan, extra_keys = compiled_model._eval_training()
        self.compiled, self.plan, self.train = compiled, plan, train
        self.batch = next(iter(compiled.dimensions), None)  # the batch size N
        self.shape_in_function = {
            a.what: tuple(map(int, arg.shape))
            for a, arg in zip(plan, compiled.args, strict=True)
            if a.kind == "parameter"
        }
        self.state_of = {
            a.what: compiled_model._state_of(a.what.layer) for a in plan if a.kind == "extra"
        }
        self._targets_of = getattr(compiled_model, "_targets", None)  # a graph model's
        inputs = getattr(self.model, "inputs", None)  # a graph model's Input tensors
        self.widths = [int(np.prod(t.shape)) for t in inputs] if inputs else None
        for a in plan:  # refuse a random input (a dropout mask) now, not at the first step
            if a.kind == "extra":
                self._extra(a.what, 1)

    def targets(self, y):
        """Targets as the loss expects them, one row per example (labels become one-hot); for
        a graph model of several outputs a tuple, one array per output."""
        if self._targets_of is None:
            return self.model.loss.targets(y, self.model.outputs).T
        rows = tuple(t.T for t in self._targets_of(y, np.float64))
        return rows[0] if len(rows) == 1 else rows

    def _matrices(self, X, asarray) -> list:
        """The batch as one (features, N) matrix per model input."""
        if self.widths is None or len(self.widths) == 1:
            X = X[0] if isinstance(X, list | tuple) and len(X) == 1 else X
            X = asarray(X)
            return [X.reshape(X.shape[0], -1).T]
        if isinstance(X, list | tuple):
            if len(X) != len(self.widths):
                raise ValueError(f"X: {len(X)} arrays for {len(self.widths)} model inputs")
            arrays = [asarray(x) for x in X]
            arrays = [x.reshape(x.shape[0], -1) for x in arrays]
        else:  # model.pack(...): the inputs side by side
            X = asarray(X)
            X = X.reshape(X.shape[0], -1)
            ends = np.cumsum(self.widths)
            arrays = [X[:, end - w : end] for w, end in zip(self.widths, ends, strict=True)]
        for x, w in zip(arrays, self.widths, strict=True):
            if x.shape[1] != w:
                raise ValueError(
                    f"X: examples of {x.shape[1]} features; the inputs have {self.widths}"
                )
        return [x.T for x in arrays]

    def arguments(self, params: Mapping, X, Y, asarray) -> list:
        """The generated function's arguments; `asarray` converts X, Y and constants to the
        backend's arrays."""
        Xs = self._matrices(X, asarray)
        Ys = [asarray(y).T for y in (Y if isinstance(Y, list | tuple) else [Y])]
        N = Xs[0].shape[1]
        values = []
        for argument in self.plan:
            kind, what = argument.kind, argument.what
            if kind == "parameter":
                value, shape = params[what], tuple(map(int, self.shapes[what]))
                wanted = self.shape_in_function[what]
                values.append(value.reshape(wanted) if wanted != shape else value)
            elif kind == "batch":
                values.append(Xs[what or 0])
            elif kind == "targets":
                values.append(Ys[what or 0])
            elif kind == "constant":
                values.append(asarray(what))
            else:  # a layer's extra input: a running statistic, fixed at export time
                values.append(asarray(self._extra(what, N)))
        return [*values, N]

    def _extra(self, wanted, N):
        shape = tuple(N if d == self.batch else int(d) for d in wanted.expr.shape)
        state = self.state_of[wanted]()
        layer = wanted.layer
        return layer.extra_input_value(wanted.key, shape, self.train, _NoRandom(wanted), state)

    def gradients(self, grads) -> dict:
        return {
            name: g.reshape(self.shapes[name])
            for name, g in zip(self.names, grads[: len(self.names)], strict=True)
        }


def each(value, asarray):
    """`asarray` of an array, or of each array of a tuple or list (a graph model's targets)."""
    if isinstance(value, list | tuple):
        return tuple(asarray(v) for v in value)
    return asarray(value)


def shaped(derivation, grads, stack):
    """The gradient entries arranged as `derivation.wrt` is: one, a list/tuple, or a Matrix."""
    wrt_shape = derivation.shape
    if wrt_shape in (list, tuple):
        return wrt_shape(grads)
    result = wrt_shape(list(range(len(grads))))
    if isinstance(result, sympy.MatrixBase):
        return stack(grads).reshape(result.shape + tuple(grads[0].shape))
    return grads[0]


class _NoRandom:
    """Stands in for the model's generator: an extra input drawn at random (a dropout mask) is
    not exported, since the exported step is a pure function of (params, X, Y) and takes no
    random state (no JAX key, no torch generator)."""

    def __init__(self, wanted):
        self.wanted = wanted

    def __getattr__(self, name):
        layer = self.wanted.layer
        raise UnsupportedOp(
            f"{layer.name} ({type(layer).__name__}): its input {self.wanted.key!r} is drawn at "
            "random at each training step, and the exported step takes no random state (a JAX "
            "key, a torch generator); export with train=False (the inference loss, this layer "
            "off), or train with dropout in symdl's own loop"
        )
