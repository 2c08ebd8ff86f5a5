"""Export to JAX: a derivation or a compiled model as a pure, jit-compatible function that
returns the value and symdl's derived gradients, printed from each op's own code.

    f = to_jax(sd.derive(L, [w, b]))          # f(*inputs) -> (value, gradients)
    step = export_model(model.compile())      # step.loss_and_grads(params, X, Y), pure
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
    shaped,
)
from symdl.compile.codegen import CompiledDerivation
from symdl.core.derivation import Derivation


class JaxPrinter(BackendPrinter):
    """symdl's printer for JAX: numpy -> jax.numpy, scipy.special -> jax.scipy.special,
    symdl.ops.runtime and symdl.ops.linalg -> symdl.compile.jax_kernels."""

    backend = "JAX"
    modules = {
        "numpy": "jax.numpy",
        "scipy.constants": "jax.numpy",
        "scipy.special": "jax.scipy.special",
        "symdl.ops.runtime": "symdl.compile.jax_kernels",
        "symdl.ops.linalg": "symdl.compile.jax_kernels",
    }

    # SymPy's JAX printer knows that jax.numpy has no logical_and.reduce
    def _print_And(self, expr):
        from sympy.printing.numpy import JaxPrinter as SymPyJaxPrinter

        return SymPyJaxPrinter._print_And(self, expr)

    def _print_Or(self, expr):
        from sympy.printing.numpy import JaxPrinter as SymPyJaxPrinter

        return SymPyJaxPrinter._print_Or(self, expr)


def _dtype(jnp, dtype):
    """The float dtype of an export: float64 needs jax_enable_x64, float32 is JAX's default."""
    import jax

    x64 = jax.config.jax_enable_x64
    dtype = jnp.dtype(dtype if dtype is not None else ("float64" if x64 else "float32"))
    if dtype == jnp.float64 and not x64:
        raise ValueError(
            "float64 in JAX needs jax.config.update('jax_enable_x64', True) before any array "
            "is made; or export with dtype='float32'"
        )
    return dtype


class JaxFunction:
    """`f(*inputs) -> (value, gradient)`, inputs in `.args` order, pure and jit-compatible.

    The gradient is arranged as the derivation's wrt (one array, a tuple or list, or a stacked
    Matrix); symbolic dimensions are read from the input shapes (static under jit).
    `.source` is the generated JAX code.
    """

    def __init__(self, derivation: Derivation, dtype=None):
        require("jax")
        import jax.numpy as jnp

        self.dtype = _dtype(jnp, dtype)
        self.derivation = derivation
        self._compiled = compiled = CompiledDerivation(derivation)
        self.args = compiled.args
        self.function, self.source = backend_source(compiled, JaxPrinter())

    def __call__(self, *values):
        import jax.numpy as jnp

        compiled = self._compiled
        if len(values) != len(self.args):
            names = ", ".join(map(str, self.args))
            raise TypeError(f"expected {len(self.args)} inputs ({names}), got {len(values)}")
        values = [jnp.asarray(v, dtype=self.dtype) for v in values]
        if compiled.matrices:
            value, *grads = self.function(*values, *compiled._bind_dimensions(values))
            grads = [jnp.asarray(g, self.dtype) for g in grads]
            return jnp.asarray(value, self.dtype).reshape(()), shaped(
                self.derivation, grads, jnp.stack
            )
        value, *grads = self.function(*values)
        shape = jnp.broadcast_shapes(*(jnp.shape(v) for v in values), jnp.shape(value))
        grads = [jnp.broadcast_to(jnp.asarray(g, self.dtype), shape) for g in grads]
        value = jnp.broadcast_to(jnp.asarray(value, self.dtype), shape)
        return value, shaped(self.derivation, grads, jnp.stack)


def to_jax(derivation: Derivation, dtype=None) -> JaxFunction:
    """`derivation` as a pure JAX function returning (value, gradient); see JaxFunction.

    Args:
        derivation: from `sd.derive`.
        dtype: "float32" or "float64" (needs jax_enable_x64); default float64 when x64 is
            enabled, else float32.

    Raises:
        MissingBackend: jax is not installed (`pip install symdl[export]`).
        UnsupportedOp: an op whose code JAX cannot run, named.
    """
    return JaxFunction(derivation, dtype=dtype)


class JaxModel:
    """A compiled model's training step in JAX: `loss_and_grads(params, X, Y)` is pure.

    params: {name: array} (as `model.init()` gives, or `.params(...)` converts);
    X: (N, *input_shape), one example per row; Y: targets one row per example, as
    `.targets(y)` makes them from labels. A graph model (`nn.Model`) takes one X per input
    (a list or tuple, or `model.pack(...)` of them) and one Y per output (a tuple, as
    `.targets` gives). Running statistics and constants are fixed at
    export. Wrap in jax.jit, shard X and Y over a mesh for data parallelism.
    """

    def __init__(self, compiled_model, dtype=None, train: bool = True):
        require("jax")
        import jax.numpy as jnp

        self.dtype = _dtype(jnp, dtype)
        self.plan = ModelPlan(compiled_model, train=train)
        self.names = self.plan.names
        self.function, self.source = backend_source(self.plan.compiled, JaxPrinter())
        self._forward, _ = forward_source(self.plan.compiled, JaxPrinter())

    def params(self, params: Mapping) -> dict:
        """`params` as JAX arrays of the export's dtype."""
        import jax.numpy as jnp

        return {name: jnp.asarray(params[name], self.dtype) for name in self.names}

    def targets(self, y):
        """Targets for `loss_and_grads`, one row per example (labels become one-hot rows)."""
        import jax.numpy as jnp

        return each(self.plan.targets(y), lambda a: jnp.asarray(a, self.dtype))

    def loss_and_grads(self, params: Mapping, X, Y):
        """(loss, {name: gradient}) by symdl's derived backward pass; pure, jit-compatible."""
        import jax.numpy as jnp

        missing = [n for n in self.names if n not in params]
        if missing:
            raise KeyError(f"params has no {missing}; the model's parameters are {self.names}")
        arguments = self.plan.arguments(params, X, Y, lambda a: jnp.asarray(a, self.dtype))
        value, *grads = self.function(*arguments)
        return jnp.asarray(value, self.dtype).reshape(()), self.plan.gradients(grads)

    def loss(self, params: Mapping, X, Y):
        """The loss alone, by the forward pass (jax.grad of it referees symdl's gradient)."""
        import jax.numpy as jnp

        arguments = self.plan.arguments(params, X, Y, lambda a: jnp.asarray(a, self.dtype))
        return jnp.asarray(self._forward(*arguments)[0], self.dtype).reshape(())


def export_model(compiled_model, dtype=None, train: bool = True) -> JaxModel:
    """A compiled model (`model.compile()`) exported to JAX; see JaxModel."""
    return JaxModel(compiled_model, dtype=dtype, train=train)
