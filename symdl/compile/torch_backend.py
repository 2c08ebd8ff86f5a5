"""Export to PyTorch: a derivation or a compiled model as a `torch.autograd.Function` whose
backward is symdl's derived gradient (computed with the value, in one pass), and an
`nn.Module` holding a model's parameters.

    f = to_torch(sd.derive(L, [w, b]))     # f(*tensors) -> value; value.backward() fills .grad
    module = export_module(model.compile(), params)   # module(X, Y) -> loss tensor
"""

from __future__ import annotations

from collections.abc import Mapping

from symdl.compile.backends import (
    BackendPrinter,
    ModelPlan,
    backend_source,
    each,
    forward_source,
    require,
)
from symdl.compile.codegen import CompiledDerivation
from symdl.core.derivation import Derivation


class TorchPrinter(BackendPrinter):
    """symdl's printer for PyTorch: numpy, numpy.linalg, scipy.special, symdl.ops.runtime and
    symdl.ops.linalg to modules offering NumPy's names on tensors."""

    backend = "PyTorch"
    modules = {
        "numpy": "symdl.compile.torch_numpy",
        "numpy.linalg": "symdl.compile.torch_linalg",
        "scipy.constants": "symdl.compile.torch_numpy",
        "scipy.special": "symdl.compile.torch_special",
        "symdl.ops.runtime": "symdl.compile.torch_kernels",
        "symdl.ops.linalg": "symdl.compile.torch_kernels",
    }


def floats(dtype):
    """torch_numpy.floats, imported only once torch is known to be installed."""
    from symdl.compile.torch_numpy import floats

    return floats(dtype)


class InputNotDifferentiated(ValueError):
    """A tensor that requires grad is an input the derivation does not differentiate by."""


def _autograd_function(name: str, run, differentiated: list[bool], inputs: list[str]):
    """A torch.autograd.Function: forward runs `run(*tensors) -> (value, gradients)` and keeps
    the gradients; backward scales them by the upstream gradient.

    With an upstream gradient of 1 (`loss.backward()`) the kept gradients are handed to
    autograd as they are, and not kept any longer, so that autograd takes them as the
    parameters' `.grad` without a copy; a second backward through a retained graph computes
    them again from the saved inputs."""
    import torch

    def forward(ctx, *tensors):
        for i in range(len(tensors)):
            if ctx.needs_input_grad[i] and not differentiated[i]:
                raise InputNotDifferentiated(
                    f"{name}: input {inputs[i]} requires grad but the derivation is not with "
                    f"respect to it; derive with {inputs[i]} in wrt, or detach it"
                )
        value, grads = run(*tensors)
        ctx.save_for_backward(*(t if torch.is_tensor(t) else None for t in tensors))
        ctx.others = [None if torch.is_tensor(t) else t for t in tensors]
        ctx.grads = grads
        ctx.shapes = [getattr(t, "shape", None) for t in tensors]
        return value

    def backward(ctx, upstream):
        grads, ctx.grads = ctx.grads, None
        if grads is None:  # a second backward (retain_graph): the first handed them over
            saved = zip(ctx.saved_tensors, ctx.others, strict=True)
            grads = run(*(t if t is not None else other for t, other in saved))[1]
        unit = upstream.numel() == 1 and float(upstream) == 1.0
        grads, out = iter(grads), []
        for flag, shape in zip(differentiated, ctx.shapes, strict=True):
            if not flag:
                out.append(None)
                continue
            g = next(grads) if unit else upstream * next(grads)
            out.append(g.sum_to_size(shape) if g.shape != shape else g)
        del grads
        return tuple(out)

    return type(
        name,
        (torch.autograd.Function,),
        {"forward": staticmethod(forward), "backward": staticmethod(backward)},
    )


class TorchFunction:
    """`f(*tensors) -> value` whose backward is symdl's gradient; inputs in `.args` order.

    `.Function` is the torch.autograd.Function; `.value_and_grad(*tensors)` returns both
    directly; `.source` is the generated code.
    """

    def __init__(self, derivation: Derivation, dtype=None):
        torch = require("torch")
        self.dtype = dtype or torch.float64
        self.derivation = derivation
        self._compiled = compiled = CompiledDerivation(derivation)
        self.args = compiled.args
        self.function, self.source = backend_source(compiled, TorchPrinter())
        wrt = list(dict.fromkeys(derivation.wrt))
        if len(wrt) != len(derivation.gradient_entries):
            raise ValueError("to_torch: give wrt as symbols or matrix symbols, not a Matrix")
        self._order = [wrt.index(a) if a in wrt else None for a in self.args]
        self.Function = _autograd_function(
            "SymdlFunction",
            self._run,
            [i is not None for i in self._order],
            [str(a) for a in self.args],
        )

    def _run(self, *tensors):
        import torch

        compiled = self._compiled
        with torch.no_grad(), floats(self.dtype):
            if compiled.matrices:
                value, *grads = self.function(*tensors, *compiled._bind_dimensions(tensors))
                shape = ()
            else:
                value, *grads = self.function(*tensors)
                shape = torch.broadcast_shapes(*(t.shape for t in tensors))
            value = torch.as_tensor(value, dtype=self.dtype).expand(shape).clone()
            grads = [torch.as_tensor(g, dtype=self.dtype) for g in grads]
            if not compiled.matrices:
                grads = [g.expand(shape).clone() for g in grads]
        wrt = list(dict.fromkeys(self.derivation.wrt))
        return value.reshape(shape), [grads[wrt.index(a)] for a in self.args if a in wrt]

    def _tensors(self, values):
        import torch

        if len(values) != len(self.args):
            names = ", ".join(map(str, self.args))
            raise TypeError(f"expected {len(self.args)} inputs ({names}), got {len(values)}")
        return [torch.as_tensor(v, dtype=self.dtype) for v in values]

    def __call__(self, *values):
        return self.Function.apply(*self._tensors(values))

    def value_and_grad(self, *values):
        """(value, [gradient per wrt entry]) without autograd."""
        value, grads = self._run(*self._tensors(values))
        by_arg = dict(zip([a for a in self.args if a in self.derivation.wrt], grads, strict=True))
        return value, [by_arg[w] for w in dict.fromkeys(self.derivation.wrt)]


def to_torch(derivation: Derivation, dtype=None) -> TorchFunction:
    """`derivation` as a PyTorch function whose backward is symdl's derived gradient.

    Args:
        derivation: from `sd.derive`, with wrt symbols or matrix symbols.
        dtype: torch.float64 (default) or torch.float32.

    Raises:
        MissingBackend: torch is not installed (`pip install symdl[export]`).
        UnsupportedOp: an op whose code PyTorch cannot run, named.
    """
    return TorchFunction(derivation, dtype=dtype)


def _model_function(plan: ModelPlan, function, dtype, parameter_shapes: list[tuple]):
    """The torch.autograd.Function of a model's loss: `apply(Xs, Ys, *parameters)` with Xs, Ys
    tuples of the inputs and targets as the generated function takes them ((features, N) and
    (outputs, N); one each for Sequential, one per input and output for a graph model) and
    the parameters in `plan.names` order and in their own shapes.

    Built once per export, so that a step does no planning: each argument of the generated
    function is taken from a precomputed slot; a parameter whose shape there differs (a
    bias, a column there) is viewed in that shape inside forward, where autograd does not
    record it, and its gradient comes back in the parameter's shape. Backward hands the
    gradients computed with the value to autograd as they are when the upstream gradient is
    1 (autograd then takes them as `.grad` without a copy); a second backward through a
    retained graph computes them again from the saved inputs."""
    import torch
    from torch.autograd.function import once_differentiable

    from symdl.compile import torch_numpy

    names = plan.names
    count = len(names)
    index = {name: i for i, name in enumerate(names)}
    # each argument of the generated function: ("parameter", i, shape there or None),
    # ("batch",), ("targets",), ("constant", tensor), ("extra", what)
    slots = []
    for argument in plan.plan:
        kind, what = argument.kind, argument.what
        if kind == "parameter":
            i = index[what]
            wanted = plan.shape_in_function[what]
            slots.append((kind, i, wanted if wanted != parameter_shapes[i] else None))
        elif kind == "constant":
            slots.append((kind, torch.as_tensor(what, dtype=dtype)))
        else:
            slots.append((kind, what))
    # each gradient: the parameter's shape, the generated function's, whether they differ
    gradient_shapes = []
    for name, shape in zip(names, parameter_shapes, strict=True):
        there = plan.shape_in_function[name]
        gradient_shapes.append((torch.Size(shape), torch.Size(there), there != shape))
    Tensor, as_tensor, DTYPE = torch.Tensor, torch.as_tensor, torch_numpy._DTYPE

    def run(Xs, Ys, parameters):
        N = Xs[0].shape[1]
        arguments = []
        for slot in slots:
            kind = slot[0]
            if kind == "parameter":
                value = parameters[slot[1]]
                arguments.append(value if slot[2] is None else value.reshape(slot[2]))
            elif kind == "batch":
                arguments.append(Xs[slot[1] or 0])
            elif kind == "targets":
                arguments.append(Ys[slot[1] or 0])
            elif kind == "constant":
                arguments.append(slot[1])
            else:  # a layer's extra input (a running statistic), read at each call
                arguments.append(as_tensor(plan._extra(slot[1], N), dtype=dtype))
        token = DTYPE.set(dtype)  # ones, zeros and eye in the export's dtype
        try:
            value, *grads = function(*arguments, N)
        finally:
            DTYPE.reset(token)
        out = []
        for g, (shape, there, reshape) in zip(grads[:count], gradient_shapes, strict=True):
            if type(g) is not Tensor or g.dtype != dtype:
                g = as_tensor(g, dtype=dtype)
            if g.shape != there:
                g = g.expand(there) if g.numel() == 1 else g.sum_to_size(there)
            out.append(g.reshape(shape) if reshape else g)
        if type(value) is not Tensor or value.dtype != dtype:
            value = as_tensor(value, dtype=dtype)
        return value.reshape(()), out

    class SymdlModelLoss(torch.autograd.Function):
        @staticmethod
        def forward(ctx, Xs, Ys, *parameters):
            given = [(name, t) for name, ts in zip(("X", "Y"), (Xs, Ys), strict=True) for t in ts]
            needs = [name for name, t in given if t.requires_grad]
            if needs:
                which = needs[0]
                raise InputNotDifferentiated(
                    f"SymdlModelLoss: input {which} requires grad but symdl's model loss is "
                    "differentiated by the parameters only; detach it"
                )
            value, grads = run(Xs, Ys, parameters)
            ctx.save_for_backward(*parameters)
            ctx.inputs = (Xs, Ys)
            ctx.grads = grads
            return value

        @staticmethod
        @once_differentiable
        def backward(ctx, upstream):
            grads, ctx.grads = ctx.grads, None
            if grads is None:  # a second backward (retain_graph): the first handed them over
                parameters = ctx.saved_tensors
                grads = run(*ctx.inputs, parameters)[1]
            if upstream.numel() != 1 or float(upstream) != 1.0:
                grads = [upstream * g for g in grads]
            return None, None, *grads

    return SymdlModelLoss


def export_module(compiled_model, params: Mapping | None = None, dtype=None, train=True):
    """A compiled model as a `torch.nn.Module` holding its parameters: `module(X, Y)` is the
    loss, and `loss.backward()` fills each parameter's `.grad` with symdl's gradient.

    Args:
        compiled_model: `model.compile()`.
        params: initial values {name: array}; default `model.init(0)`.
        dtype: torch.float64 (default) or torch.float32.
        train: the training loss (batch statistics) or the inference one.

    The module's `.targets(y)` makes Y from labels; `.params()` gives {name: Parameter}.
    A graph model (`nn.Model`) takes one X per input (a list or tuple, or `model.pack(...)`)
    and one Y per output (a tuple, as `.targets(y)` gives).
    Gradients accumulate in `.grad` over backward calls, as with any PyTorch module.
    """
    torch = require("torch")
    plan = ModelPlan(compiled_model, train=train)
    function, source = backend_source(plan.compiled, TorchPrinter())
    forward, _ = forward_source(plan.compiled, TorchPrinter())
    dtype = dtype or torch.float64
    params = params if params is not None else compiled_model.model.init(0)
    names = plan.names
    shapes = [tuple(map(int, plan.shapes[name])) for name in names]
    Function = _model_function(plan, function, dtype, shapes)
    as_tensor = torch.as_tensor

    class SymdlModule(torch.nn.Module):
        """A symdl model: its parameters, and its loss with symdl's backward pass."""

        def __init__(self):
            super().__init__()
            self.layers = torch.nn.ModuleDict()
            for name in names:
                layer, key = name.rsplit(".", 1)
                if layer not in self.layers:
                    self.layers[layer] = torch.nn.ParameterDict()
                value = torch.as_tensor(params[name], dtype=dtype).clone()
                self.layers[layer][key] = torch.nn.Parameter(value)
            self.source = source
            # where each parameter lives: its ParameterDict's own dict and key, read at each
            # call (a parameter replaced by assignment is seen)
            self._slots = [
                (self.layers[name.rsplit(".", 1)[0]]._parameters, name.rsplit(".", 1)[1])
                for name in names
            ]

        def params(self) -> dict:
            return {name: where[key] for name, (where, key) in zip(names, self._slots, strict=True)}

        def targets(self, y):
            return each(plan.targets(y), lambda a: torch.as_tensor(a, dtype=dtype))

        def forward(self, X, Y):
            Xs = tuple(plan._matrices(X, lambda a: as_tensor(a, dtype=dtype)))
            Ys = tuple(
                as_tensor(y, dtype=dtype).T for y in (Y if type(Y) in (list, tuple) else [Y])
            )
            return Function.apply(Xs, Ys, *[where[key] for where, key in self._slots])

        def zero_grad(self, set_to_none: bool = True) -> None:
            """As torch.nn.Module.zero_grad, over the parameters' list kept at export."""
            for where, key in self._slots:
                p = where[key]
                if p.grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                else:
                    if p.grad.grad_fn is not None:
                        p.grad.detach_()
                    else:
                        p.grad.requires_grad_(False)
                    p.grad.zero_()

        def reference_loss(self, X, Y):
            """The loss by torch's own operations alone, so that torch.autograd, not symdl,
            differentiates it: a referee for symdl's gradient."""
            arguments = plan.arguments(
                self.params(), X, Y, lambda a: torch.as_tensor(a, dtype=dtype)
            )
            with floats(dtype):
                return forward(*arguments)[0].reshape(())

    return SymdlModule()
