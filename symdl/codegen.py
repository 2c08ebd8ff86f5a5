"""Compile a Derivation to one NumPy function that returns the value and the gradient.

The forward steps, then the adjoint steps, go through common-subexpression elimination and
are printed by SymPy's NumPy printer, which asks each op for its own `_numpycode`.
"""

from __future__ import annotations

import keyword
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import sympy
from sympy import Basic, Symbol
from sympy.printing.numpy import SciPyPrinter

from symdl.derivation import Derivation


class SymdlNumPyPrinter(SciPyPrinter):
    """NumPy (and SciPy) printer whose output broadcasts over a batch and follows symdl's kink convention."""

    def _print_Heaviside(self, expr):
        arg = self._print(expr.args[0])
        at_zero = self._print(expr.pargs[1]) if len(expr.pargs) > 1 else "0.5"
        return f"{self._module_format('numpy.heaviside')}({arg}, {at_zero})"

    def _print_Max(self, expr):
        return self._nested("numpy.maximum", expr.args)

    def _print_Min(self, expr):
        return self._nested("numpy.minimum", expr.args)

    def _nested(self, func, args):
        code = self._print(args[0])
        for arg in args[1:]:
            code = f"{self._module_format(func)}({code}, {self._print(arg)})"
        return code


def numeric_form(expr: Basic) -> Basic:
    """`expr` with each op that says how it is best computed (`numeric_form`) rewritten so."""
    swaps = {f: f.numeric_form() for f in expr.atoms(sympy.Function) if hasattr(f, "numeric_form")}
    return expr.xreplace(swaps) if swaps else expr


def python_names(symbols: Sequence[Symbol], reserved: set[str]) -> dict[Symbol, str]:
    """A distinct, valid, non-keyword Python identifier for each symbol (names are never code)."""
    names: dict[Symbol, str] = {}
    used = set(reserved)
    for s in symbols:
        base = re.sub(r"\W", "_", s.name) or "_"
        base = re.sub(r"_+", "_", base)
        if base[0].isdigit() or keyword.iskeyword(base) or base in reserved:
            base = "_" + base
        name, i = base, 1
        while name in used:
            i += 1
            name = f"{base}_{i}"
        used.add(name)
        names[s] = name
    return names


@dataclass(frozen=True)
class Assignment:
    target: Symbol
    rhs: Basic


def schedule(assignments: list[Assignment]) -> list[Assignment]:
    """Order assignments so each runs after the assignments it reads (stable otherwise)."""
    defined_by = {a.target: a for a in assignments}
    done: set[Symbol] = set()
    ordered: list[Assignment] = []
    for root in assignments:
        stack = [(root, False)]
        while stack:
            a, expanded = stack.pop()
            if a.target in done:
                continue
            if expanded:
                done.add(a.target)
                ordered.append(a)
                continue
            stack.append((a, True))
            for s in sorted(a.rhs.free_symbols, key=str, reverse=True):
                if s in defined_by and s not in done:
                    stack.append((defined_by[s], False))
    return ordered


def eliminate_common(assignments: list[Assignment]) -> list[Assignment]:
    """Common-subexpression elimination across all assignments, then a valid order."""
    temps = sympy.numbered_symbols("_t", real=True)
    replacements, reduced = sympy.cse([a.rhs for a in assignments], symbols=temps, order="none")
    out = [Assignment(t, e) for t, e in replacements]
    out += [Assignment(a.target, e) for a, e in zip(assignments, reduced, strict=True)]
    return schedule(out)


def op_count(assignments: Sequence[Assignment]) -> int:
    """Arithmetic and function operations in `assignments` (SymPy's count_ops)."""
    return sum(sympy.count_ops(a.rhs) for a in assignments)


class CompiledDerivation:
    """`f(*values)` or `f(**by_name)` or `f({symbol: value})` -> (value, gradient).

    Inputs may be NumPy arrays; everything broadcasts elementwise, so a batch of inputs gives
    a batch of values and per-example gradients (each shaped like the broadcast inputs).
    """

    def __init__(self, derivation: Derivation, cse: bool = True):
        self.derivation = derivation
        self.args = derivation.program.leaves
        forward = [Assignment(s.name, numeric_form(s.rhs)) for s in derivation.forward]
        backward = [Assignment(s.name, numeric_form(s.rhs)) for s in derivation.backward]
        self.forward_op_count = op_count(forward)
        body = eliminate_common(forward + backward) if cse else forward + backward
        self.op_count = op_count(body)
        outputs = [derivation.output, *derivation.gradient_symbols.values()]
        self.source = _source(self.args, body, outputs)
        namespace: dict = {}
        exec(compile(self.source, "<symdl generated>", "exec"), namespace)  # noqa: S102 - our own generated source
        self._function = namespace["value_and_grad"]

    def __call__(self, *values, **by_name):
        values = self._arguments(values, by_name)
        value, *grads = self._function(*values)
        shape = np.broadcast_shapes(*(np.shape(v) for v in values), np.shape(value))
        grads = [np.broadcast_to(np.asarray(g, dtype=float), shape) for g in grads]
        return np.broadcast_to(np.asarray(value, dtype=float), shape)[()], self._shaped(grads)

    def _shaped(self, grads):
        wrt_shape = self.derivation.shape
        if wrt_shape in (list, tuple):
            return wrt_shape(g[()] for g in grads)
        result = wrt_shape(list(range(len(grads))))
        if isinstance(result, sympy.MatrixBase):
            return np.stack(grads).reshape(result.shape + grads[0].shape)
        return grads[0][()]

    def _arguments(self, values, by_name):
        if len(values) == 1 and isinstance(values[0], Mapping):
            by_name = {str(k): v for k, v in values[0].items()} | by_name
            values = ()
        if values and by_name:
            raise TypeError("pass the inputs either by position or by name, not both")
        if values:
            if len(values) != len(self.args):
                names = ", ".join(map(str, self.args))
                raise TypeError(f"expected {len(self.args)} inputs ({names}), got {len(values)}")
            return [np.asarray(v, dtype=float) for v in values]
        missing = [str(s) for s in self.args if str(s) not in by_name]
        extra = set(by_name) - {str(s) for s in self.args}
        if missing or extra:
            raise TypeError(f"inputs: missing {missing}, unexpected {sorted(extra)}")
        return [np.asarray(by_name[str(s)], dtype=float) for s in self.args]


def _source(args: Sequence[Symbol], body: list[Assignment], outputs: list[Basic]) -> str:
    symbols = list(args) + [a.target for a in body]
    names = python_names(symbols, reserved={"numpy", "scipy", "value_and_grad"})
    printer = SymdlNumPyPrinter({"fully_qualified_modules": True, "inline": True})
    rename = {s: Symbol(n) for s, n in names.items()}
    lines = [f"def value_and_grad({', '.join(names[a] for a in args)}):"]
    for a in body:
        lines.append(f"    {names[a.target]} = {printer.doprint(a.rhs.xreplace(rename))}")
    returned = ", ".join(printer.doprint(sympy.sympify(o).xreplace(rename)) for o in outputs)
    lines.append(f"    return ({returned},)")
    header = [
        "import numpy",
        *(f"import {m}" for m in sorted(printer.module_imports) if m != "numpy"),
    ]
    return "\n".join(header + ["", ""] + lines) + "\n"


def compile_derivation(derivation: Derivation, cse: bool = True) -> CompiledDerivation:
    """Compile `derivation` to NumPy (see CompiledDerivation)."""
    return CompiledDerivation(derivation, cse=cse)
