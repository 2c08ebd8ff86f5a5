"""Derivation: the forward steps, local partials, adjoint steps and gradients of one function.

Every consumer (LaTeX, Markdown, NumPy code, checks) reads a Derivation; none re-derives.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import sympy
from sympy import Add, Basic, Matrix, Mul, S, Symbol

from symdl.program import Program, Step


class Adjoint(Symbol):
    r"""$\bar{v} = \partial L / \partial v$, the adjoint of a step or leaf `v`."""

    def __new__(cls, primal: Symbol):
        obj = super().__new__(cls, f"bar_{primal.name}", real=True)
        obj.primal = primal
        return obj

    def __getnewargs_ex__(self):
        return ((self.primal,), {})

    def _latex(self, printer, exp=None):
        # the bar goes on the base letter: \bar{z}^{(1)}_{2}, not over the indices
        tex = re.sub(r"^(\\?[A-Za-z]+|.)", r"\\bar{\1}", printer._print(self.primal), count=1)
        return rf"{{{tex}}}^{{{exp}}}" if exp is not None else tex


def adjoint_symbol(v: Symbol) -> Adjoint:
    """The symbol $\\bar{v}$ that stands for ∂L/∂v."""
    return Adjoint(v)


@dataclass(frozen=True)
class AdjointStep:
    r"""$\bar{v} = \sum_u \bar{u}\,\partial u / \partial v$ over the steps `uses` that read `v`."""

    primal: Symbol
    uses: tuple[Symbol, ...]

    @classmethod
    def collect(cls, primal: Symbol, terms: Sequence[tuple[Symbol, Symbol]]) -> AdjointStep:
        return cls(primal, tuple(u for u, _ in reversed(terms)))

    @property
    def name(self) -> Adjoint:
        return Adjoint(self.primal)


@dataclass(frozen=True)
class Derivation:
    """The reverse-mode derivation of `program`'s output `output` with respect to `wrt`."""

    program: Program
    wrt: tuple[Symbol, ...]
    output: Symbol
    locals: Mapping[tuple[Symbol, Symbol], Basic]
    adjoints: tuple[AdjointStep, ...]
    gradient_symbols: Mapping[Symbol, Basic]
    shape: Callable[[list], object] = list
    restore: Mapping[Symbol, Symbol] = field(default_factory=dict)

    def adjoint_rhs(self, step: AdjointStep) -> Basic:
        """$\\sum_u \\bar{u}\\,\\partial u/\\partial v$ with the local partials written out."""
        return Add(*(Mul(self.adjoint_of(u), self.locals[u, step.primal]) for u in step.uses))

    def adjoint_of(self, u: Symbol) -> Basic:
        """$\bar{u}$, or 1 for the output itself."""
        return S.One if u == self.output else Adjoint(u)

    @property
    def forward(self) -> tuple[Step, ...]:
        return self.program.steps

    @property
    def backward(self) -> tuple[Step, ...]:
        return tuple(Step(a.name, self.adjoint_rhs(a)) for a in self.adjoints)

    @property
    def steps(self) -> tuple[Step, ...]:
        """Forward steps, then adjoint steps, in the order a program would run them."""
        return self.forward + self.backward

    @property
    def gradient(self):
        """The gradient in the named intermediates, shaped like `wrt`."""
        rhs = {a.name: self.adjoint_rhs(a) for a in self.adjoints}
        return self._shaped([rhs.get(g, g) for g in self.gradient_symbols.values()])

    def closed_form(self, simplify: bool = False):
        """The gradient in the user's symbols, shaped like `wrt`.

        Intermediates are substituted back; shared subexpressions stay shared objects.
        `simplify=True` runs `sympy.simplify` on each entry (slow on large expressions).
        """
        values = self.substituted()
        entries = [values.get(g, g) for g in self.gradient_symbols.values()]
        if simplify:
            entries = [sympy.simplify(e) for e in entries]
        return self.shape(entries)

    def substituted(self) -> dict[Symbol, Basic]:
        """Every forward and adjoint symbol mapped to its expression in the user's symbols."""
        values = self.program.expressions(self.restore)
        for step in self.adjoints:
            values[step.name] = self.adjoint_rhs(step).xreplace(values)
        return values

    def _shaped(self, entries: list):
        return self.shape([e.xreplace(self.restore) if self.restore else e for e in entries])

    def to_latex(self, **options) -> str:
        """The derivation as a LaTeX `align` environment: forward, adjoints, gradients."""
        from symdl.latex import derivation_to_latex

        return derivation_to_latex(self, **options)

    def to_markdown(self, **options) -> str:
        """The derivation as Markdown with `$$` blocks that render on GitHub."""
        from symdl.latex import derivation_to_markdown

        return derivation_to_markdown(self, **options)

    def _repr_latex_(self) -> str:
        from symdl.latex import derivation_to_latex

        return "$$" + derivation_to_latex(self, environment="aligned") + "$$"

    def compile(self, **options):
        """One NumPy function returning the value and the gradient in one pass (see codegen)."""
        from symdl.codegen import compile_derivation

        return compile_derivation(self, **options)

    def __str__(self) -> str:
        lines = [str(step) for step in self.forward]
        lines += [f"{step.name} = {step.rhs}" for step in self.backward]
        return "\n".join(lines)


def shape_like(wrt) -> Callable[[list], object]:
    """A function putting a flat list of entries back in the shape of `wrt`."""
    if isinstance(wrt, Matrix | sympy.ImmutableMatrix):
        rows, cols = wrt.shape
        return lambda entries: Matrix(rows, cols, entries)
    if isinstance(wrt, Basic):
        return lambda entries: entries[0]
    if isinstance(wrt, tuple):
        return tuple
    return list
