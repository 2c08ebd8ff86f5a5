"""Reverse-mode chain rule over a Program, producing a Derivation.

`backward` visits the steps once, last to first; each step answers with its local partials
(SymPy's `diff`, so every op answers through its own `fdiff`). Adding an op never touches this file.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import sympy
from sympy import Add, Basic, Derivative, Mul, S, Subs, Symbol
from sympy.core.function import ArgumentIndexError

from symdl.core.derivation import AdjointStep, Derivation, adjoint_symbol, seed_value, zero_like
from symdl.core.program import Program, Step
from symdl.core.rules import (
    UnsupportedMatrixOp,
    UnsupportedOp,
    is_matrix_step,
    pullback,
    total,
)


def backward(program: Program, wrt: Sequence[Symbol], output: int = 0) -> Derivation:
    """Reverse-mode chain rule over `program`: one adjoint step per active forward step.

    Args:
        program: the forward steps.
        wrt: the leaves to differentiate with respect to.
        output: which of the program's outputs to differentiate.

    Returns:
        A Derivation holding local partials, adjoint steps and the gradient of each `wrt`.

    Raises:
        UnsupportedOp: a step's operation has no derivative rule (no `fdiff`).
    """
    active = _active(program, wrt)
    seed = program.outputs[output]
    by_rhs = {step.rhs: step.name for step in program.steps}
    locals_: dict[tuple[Symbol, Symbol], Basic] = {}
    vjps: dict[tuple[Symbol, Symbol], Basic] = {}
    terms: dict[Symbol, list[tuple[Symbol, Symbol]]] = defaultdict(list)
    adjoints: list[AdjointStep] = []
    for step in reversed(program.steps):
        if step.name != seed and step.name not in terms:
            continue
        if step.name != seed:
            adjoints.append(AdjointStep.collect(step.name, terms.pop(step.name, [])))
        if is_matrix_step(step.rhs):
            G = seed_value(step.name) if step.name == seed else adjoint_symbol(step.name)
            for v, parts in _matrix_pullback(step, G, active).items():
                vjps[step.name, v] = _named(total(parts), by_rhs)
                terms[v].append((step.name, v))
            continue
        for v, local in _local_partials(step, active).items():
            locals_[step.name, v] = _named(local, by_rhs)
            terms[v].append((step.name, v))
    leaves = [v for v in dict.fromkeys(wrt) if v in terms]
    adjoints += [AdjointStep.collect(v, terms.pop(v)) for v in leaves]
    reached = set(leaves)  # a set: `in` on the list is quadratic in the parameter count
    gradient = {v: adjoint_symbol(v) if v in reached else zero_like(v) for v in wrt}
    return Derivation(program, tuple(wrt), seed, locals_, tuple(adjoints), gradient, vjps=vjps)


def _named(expr: Basic, by_rhs: dict) -> Basic:
    """`expr` with each forward step's right-hand side replaced by the step's name."""
    return expr if expr.is_Atom else expr.xreplace(by_rhs)


def _matrix_pullback(step: Step, G, active: set) -> dict:
    try:
        return pullback(step.rhs, G, step.name, active)
    except UnsupportedMatrixOp as error:
        raise UnsupportedOp(f"step {step.name} = {step.rhs}: {error}") from None


def _active(program: Program, wrt: Sequence[Symbol]) -> set[Symbol]:
    """The leaves in `wrt` and every step that depends on one of them."""
    active = set(wrt)
    for step in program.steps:
        if step.rhs.free_symbols & active:
            active.add(step.name)
    return active


def _local_partials(step: Step, active: set[Symbol]) -> dict[Symbol, Basic]:
    """∂rhs/∂v for each active symbol v in `step.rhs`, term by term for a sum."""
    rhs = step.rhs
    terms = rhs.args if isinstance(rhs, Add) else (rhs,)
    by_symbol: dict[Symbol, list[Basic]] = defaultdict(list)
    for term in terms:
        for v in term.free_symbols & active:
            by_symbol[v].append(term)
    partials = {}
    for v in sorted(by_symbol, key=str):
        local = Add(*(_diff(term, v) for term in by_symbol[v]))
        _require_rule(local, step, v)
        partials[v] = local
    return partials


def _diff(term: Basic, v: Symbol) -> Basic:
    """∂term/∂v; a product with v as a plain factor (w x in a neuron) skips SymPy's machinery."""
    if term == v:
        return S.One
    if isinstance(term, Mul) and term.args.count(v) == 1:
        rest = [a for a in term.args if a != v]
        if not any(v in a.free_symbols for a in rest):
            return Mul(*rest)
    if (
        isinstance(term, sympy.Function)
        and all(a.is_Atom for a in term.args)
        and type(term)._eval_derivative is sympy.Function._eval_derivative
    ):
        # f(v, ...): the sum of f's own fdiff over the arguments that are v; this is what
        # Derivative would compute, without its assumption queries on the whole expression.
        # A function with a derivative of its own (sign, Piecewise) answers through diff.
        return Add(*(_fdiff(term, i) for i, a in enumerate(term.args, start=1) if a == v))
    return term.diff(v)


def _fdiff(f: sympy.Function, argindex: int) -> Basic:
    try:
        return f.fdiff(argindex)
    except ArgumentIndexError:
        return sympy.Function.fdiff(f, argindex)  # what SymPy does: an unevaluated Derivative


def _require_rule(local: Basic, step: Step, v: Symbol) -> None:
    unresolved = local.atoms(Derivative, Subs)
    if unresolved:
        culprit = next(iter(unresolved))
        inner = culprit.expr if isinstance(culprit, Derivative | Subs) else culprit
        op = getattr(getattr(inner, "func", None), "__name__", str(inner))
        raise UnsupportedOp(
            f"step {step.name} = {step.rhs}: no derivative rule for {op!r} with respect to {v} "
            f"(SymPy left {culprit}); give {op} an fdiff method, or build it from symdl.ops"
        )
