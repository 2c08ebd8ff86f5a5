"""The function, its gradient and a claimed gradient as batched NumPy functions of points
``{symbol: array}``: the compiled derivation, lambdified claims, the scale of the function's
rounding errors, and a complex-capable form for complex-step differentiation."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import sympy
from sympy import Basic, Symbol
from sympy.printing.numpy import SciPyPrinter

from symdl.checking.claims import claimed_entries, matrix_shape
from symdl.checking.sampling import _switches, lambdified, nodes
from symdl.compile.codegen import SymdlNumPyPrinter
from symdl.ops import elementary


def holds_written_out_matrix(program) -> bool:
    """Whether a step builds a matrix from scalars (the argument of an eigenvalue, written
    out): NumPy cannot batch such a step over points, so it runs one point at a time."""
    return any(isinstance(n, sympy.MatrixBase) for s in program.steps for n in nodes([s.rhs]))


class PointByPoint:
    """A compiled derivation called on `{name: array}` one point at a time, its values and
    gradients stacked as the batched call would give them."""

    def __init__(self, compiled):
        self.compiled, self.args = compiled, compiled.args

    def __call__(self, by_name):
        arrays = {k: np.asarray(v, dtype=float) for k, v in by_name.items()}
        shape = np.broadcast_shapes(*(a.shape for a in arrays.values())) if arrays else ()
        if shape == ():
            return self.compiled(by_name)
        each = [
            self.compiled({k: float(np.broadcast_to(a, shape)[i]) for k, a in arrays.items()})
            for i in np.ndindex(*shape)
        ]
        value = np.array([float(r[0]) for r in each]).reshape(shape)
        if isinstance(each[0][1], list | tuple):
            grads = [np.array([float(r[1][k]) for r in each]).reshape(shape) for k in
                     range(len(each[0][1]))]  # fmt: skip
            return value, grads
        stacked = np.stack([np.asarray(r[1], dtype=float) for r in each], axis=-1)
        return value, stacked.reshape(*stacked.shape[:-1], *shape)


def scalar_function(compiled) -> Callable:
    """The value part of a compiled derivation, on `{user symbol: array}` (matched by name)."""
    names = [str(a) for a in compiled.args]

    def value(values: Mapping[Symbol, np.ndarray]) -> np.ndarray:
        by_name = {s.name: v for s, v in values.items() if s.name in names}
        with np.errstate(all="ignore"):
            return np.asarray(compiled(by_name)[0], dtype=float)

    return value


def gradient_function(compiled, wrt_entries, grad, symbols) -> Callable:
    """`values -> [array per entry]`: symdl's compiled gradient, or the caller's `grad`."""
    if grad is None:
        names = {str(a) for a in compiled.args}

        def own(values):
            by_name = {s.name: v for s, v in values.items() if s.name in names}
            shape = np.shape(next(iter(values.values())))
            with np.errstate(all="ignore"):
                grads = compiled(by_name)[1]
            if isinstance(grads, list | tuple):
                return [np.broadcast_to(g, shape) for g in grads]
            grads = np.asarray(grads, dtype=float)
            if grads.ndim == len(shape):
                return [np.broadcast_to(grads, shape)]
            return [np.broadcast_to(g, shape) for g in grads.reshape((-1, *shape))]

        return own
    entries = claimed_entries(grad, wrt_entries, matrix_shape(wrt_entries))
    extra = set().union(*(e.free_symbols for e in entries)) - set(symbols)
    if extra:
        raise ValueError(f"grad: uses {', '.join(sorted(map(str, extra)))}, which f does not have")
    return lambdified(symbols, entries)


def intermediate_scale(program, symbols: Sequence[Symbol]) -> Callable:
    """`values -> max |input or step value|` per point: the scale of f's rounding errors.

    A loss near 0 computed as a difference of terms near 5 carries errors of eps * 5, not
    eps * |loss|; the steps of the program show those terms.
    """
    steps = []
    for step in program.steps:
        args = sorted(step.rhs.free_symbols, key=str)
        fn = sympy.lambdify(args, step.rhs, modules=["scipy", "numpy"], printer=SymdlNumPyPrinter)
        steps.append((step.name.name, [a.name for a in args], fn))

    def scale(values: Mapping[Symbol, np.ndarray]) -> np.ndarray:
        if holds_written_out_matrix(program):
            arrays = {s: np.asarray(v, dtype=float) for s, v in values.items()}
            shape = np.broadcast_shapes(*(a.shape for a in arrays.values())) if arrays else ()
            if shape != ():
                return np.array(
                    [
                        np.max(scale({s: np.broadcast_to(a, shape)[i] for s, a in arrays.items()}))
                        for i in np.ndindex(*shape)
                    ]
                ).reshape(shape)
        env = {s.name: np.asarray(v, dtype=float) for s, v in values.items()}
        shape = np.broadcast_shapes(*(v.shape for v in env.values())) if env else ()
        biggest = np.zeros(shape)
        with np.errstate(all="ignore"):
            for v in env.values():
                biggest = np.fmax(biggest, np.abs(v))
            for name, args, fn in steps:
                env[name] = np.asarray(fn(*(env[a] for a in args)), dtype=float)
                size = np.abs(env[name])  # a matrix at a single point: its largest entry
                biggest = np.fmax(biggest, size if size.ndim <= len(shape) else np.max(size))
        return biggest

    return scale


class _ComplexStepPrinter(SciPyPrinter):
    """NumPy code that takes complex input; each branch of a piecewise function is chosen by the
    real part (Martins, Sturdza and Alonso 2003), which is the function's analytic continuation
    away from its kinks."""

    def _real(self, expr) -> str:
        return f"{self._module_format('numpy.real')}({self._print(expr)})"

    def _print_Abs(self, expr):
        x = self._print(expr.args[0])
        return f"{self._module_format('numpy.where')}({self._real(expr.args[0])} >= 0, {x}, -({x}))"

    def _print_Max(self, expr, pick=">="):
        code = self._print(expr.args[0])
        for arg in expr.args[1:]:
            where = self._module_format("numpy.where")
            code = f"{where}({self._module_format('numpy.real')}({code}) {pick} {self._real(arg)}, {code}, {self._print(arg)})"
        return code

    def _print_Min(self, expr):
        return self._print_Max(expr, pick="<=")

    def _print_Heaviside(self, expr):
        at_zero = self._print(expr.pargs[1]) if len(expr.pargs) > 1 else "0.5"
        return f"{self._module_format('numpy.heaviside')}({self._real(expr.args[0])}, {at_zero})"

    def _print_sign(self, expr):
        return f"{self._module_format('numpy.sign')}({self._real(expr.args[0])})"

    def _print_Relational(self, expr):
        ops = {
            "==": "equal",
            "!=": "not_equal",
            "<": "less",
            "<=": "less_equal",
            ">": "greater",
            ">=": "greater_equal",
        }
        return f"{self._module_format('numpy.' + ops[expr.rel_op])}({self._real(expr.lhs)}, {self._real(expr.rhs)})"


_NOT_ANALYTIC = (
    sympy.re,
    sympy.im,
    sympy.conjugate,
    sympy.arg,
    sympy.floor,
    sympy.ceiling,
    sympy.frac,
    sympy.Mod,
)


def complex_function(f: Basic, symbols: Sequence[Symbol]) -> tuple[Callable, str]:
    """`f` on complex arrays, for complex-step differentiation, and a note on how.

    Raises:
        ValueError: `f` contains a function with no analytic continuation (re, floor, ...).
    """
    form = elementary(f)
    bad = [n for n in nodes([form]) if isinstance(n, _NOT_ANALYTIC)]
    if bad:
        raise ValueError(
            f"complex step cannot differentiate {bad[0]} (no analytic continuation); "
            "use method='central' or 'richardson'"
        )
    piecewise = [n for n in nodes([f]) if _switches(n)]
    fn = sympy.lambdify(
        list(symbols), form, modules=["scipy", "numpy"], printer=_ComplexStepPrinter
    )

    def value(values: Mapping[Symbol, np.ndarray]) -> np.ndarray:
        args = [np.asarray(values[s], dtype=complex) for s in symbols]
        shape = np.broadcast_shapes(*(a.shape for a in args)) if args else ()
        with np.errstate(all="ignore"):
            return np.broadcast_to(np.asarray(fn(*args), dtype=complex), shape)

    note = "complex step, h = 1e-20 times max(1, |x|)"
    if piecewise:
        shown = ", ".join(str(n)[:40] for n in piecewise[:3])
        note += (
            f"; piecewise parts ({shown}) take the branch of the real part, valid away from kinks"
        )
    return value, note
