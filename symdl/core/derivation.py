"""Derivation: the forward steps, local partials, adjoint steps and gradients of one function.

Every consumer (LaTeX, Markdown, NumPy code, checks) reads a Derivation; none re-derives.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import sympy
from sympy import (
    Basic,
    HadamardProduct,
    Identity,
    MatAdd,
    MatMul,
    Matrix,
    MatrixExpr,
    MatrixSymbol,
    Mul,
    S,
    Symbol,
    Transpose,
    ZeroMatrix,
)
from sympy.matrices.expressions.matexpr import MatrixElement

from symdl.core.matrices import hadamard
from symdl.core.program import Program, Step, TextPrinter
from symdl.core.rules import total
from symdl.core.sums import tidy_sums
from symdl.core.tidy import textbook_form


class Adjoint(Symbol):
    r"""$\bar{v} = \partial L / \partial v$, the adjoint of a step or leaf `v`."""

    def __new__(cls, primal: Symbol):
        obj = super().__new__(cls, f"bar_{primal.name}", real=True)
        obj.primal = primal
        return obj

    def __getnewargs_ex__(self):
        return ((self.primal,), {})

    def _latex(self, printer, exp=None):
        tex = _bar(printer._print(self.primal))
        return rf"{{{tex}}}^{{{exp}}}" if exp is not None else tex


class MatrixAdjoint(MatrixSymbol):
    r"""$\bar{V} = \partial L / \partial V$, the adjoint of a matrix step or leaf `V`."""

    @property
    def primal(self) -> MatrixSymbol:
        return MatrixSymbol(self.name.removeprefix("bar_"), *self.shape)

    def _latex(self, printer, exp=None):
        tex = _bar(printer._print(self.primal))
        return rf"{{{tex}}}^{{{exp}}}" if exp is not None else tex


def _bar(tex: str) -> str:
    """The bar on the base letter: \\bar{z}^{(1)}_{2}, not over the indices; over an accented
    or bold letter whole: \\bar{\\hat{x}}."""
    return re.sub(_BASE, lambda m: rf"\bar{{{m.group(1)}}}", tex, count=1)


_ACCENTS = "hat|tilde|check|breve|vec|dot|ddot|mathbf|mathrm|mathit|boldsymbol|bm"
_BASE = re.compile(rf"^(\\(?:{_ACCENTS})\{{[^{{}}]*\}}|\\?[A-Za-z]+|.)")


def adjoint_symbol(v: Basic) -> Basic:
    """The symbol $\\bar{v}$ that stands for ∂L/∂v (a MatrixSymbol for a matrix `v`)."""
    if isinstance(v, MatrixSymbol):
        return MatrixAdjoint(f"bar_{v.name}", *v.shape)
    return Adjoint(v)


def seed_value(output: Basic) -> Basic:
    """∂L/∂L: 1, or the 1x1 identity for a 1x1 matrix output."""
    return Identity(1) if isinstance(output, MatrixSymbol) else S.One


def zero_like(v: Basic) -> Basic:
    return ZeroMatrix(*v.shape) if isinstance(v, MatrixSymbol) else S.Zero


@dataclass(frozen=True)
class AdjointStep:
    r"""$\bar{v} = \sum_u \bar{u}\,\partial u / \partial v$ over the steps `uses` that read `v`."""

    primal: Symbol
    uses: tuple[Symbol, ...]

    @classmethod
    def collect(cls, primal: Symbol, terms: Sequence[tuple[Symbol, Symbol]]) -> AdjointStep:
        return cls(primal, tuple(u for u, _ in reversed(terms)))

    @property
    def name(self) -> Basic:
        return adjoint_symbol(self.primal)


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

    vjps: Mapping[tuple[Basic, Basic], Basic] = field(default_factory=dict)

    def contribution(self, u: Basic, v: Basic) -> Basic:
        """What step `u` adds to the adjoint of `v`: ū ∂u/∂v, or a matrix rule's product."""
        if (u, v) in self.vjps:
            return self.vjps[u, v]
        return Mul(self.adjoint_of(u), self.locals[u, v])

    def adjoint_rhs(self, step: AdjointStep) -> Basic:
        """The sum over the steps u reading v of ū ∂u/∂v, with the local partials written out."""
        return total([self.contribution(u, step.primal) for u in step.uses])

    def adjoint_of(self, u: Basic) -> Basic:
        """ū, or the seed (1) for the output itself."""
        return seed_value(u) if u == self.output else adjoint_symbol(u)

    @property
    def forward(self) -> tuple[Step, ...]:
        """The forward steps `v = rhs`, in the order they run."""
        return self.program.steps

    @property
    def backward(self) -> tuple[Step, ...]:
        """The adjoint steps `v̄ = Σ ū ∂u/∂v`, from the output back to the leaves."""
        return tuple(Step(a.name, self.adjoint_rhs(a)) for a in self.adjoints)

    @property
    def steps(self) -> tuple[Step, ...]:
        """Forward steps, then adjoint steps, in the order a program would run them."""
        return self.forward + self.backward

    @property
    def gradient_entries(self) -> list[Basic]:
        """The gradient symbol of each entry of `wrt`, in its order (a repeated symbol again)."""
        return [self.gradient_symbols[v] for v in self.wrt]

    @property
    def gradient(self):
        """The gradient in the named intermediates, shaped like `wrt`."""
        rhs = {a.name: self.adjoint_rhs(a) for a in self.adjoints}
        return self._shaped([rhs.get(g, g) for g in self.gradient_entries])

    def closed_form(self, simplify: bool = False):
        """The gradient in the user's symbols, shaped like `wrt`.

        Intermediates are substituted back; shared subexpressions stay shared objects. The
        result is in textbook form (`symdl.core.tidy`): numeric constants cancelled, a scale
        or a matrix shared by the terms of a matrix sum written once, P ∘ P^{∘-1} cancelled.
        `simplify=True` runs `sympy.simplify` on each entry (slow on large expressions).
        """
        values = self.substituted()
        shared: dict = {}  # the entries share subexpressions: each is tidied once
        entries = [
            textbook_form(tidy_sums(_tidy(values.get(g, g))), shared) for g in self.gradient_entries
        ]
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
        from symdl.render.latex import derivation_to_latex

        return derivation_to_latex(self, **options)

    def to_markdown(self, **options) -> str:
        """The derivation as Markdown with `$$` blocks that render on GitHub."""
        from symdl.render.latex import derivation_to_markdown

        return derivation_to_markdown(self, **options)

    def _repr_latex_(self) -> str:
        from symdl.render.latex import derivation_to_latex

        return "$$" + derivation_to_latex(self, environment="aligned") + "$$"

    def compile(self, backend: str = "numpy", **options):
        """One function returning the value and the gradient in one pass (see codegen):
        NumPy by default; backend="jax" a pure JAX function (to_jax), backend="torch" a
        PyTorch function whose backward is this gradient (to_torch)."""
        if backend == "jax":
            from symdl.compile.jax_backend import to_jax

            return to_jax(self, **options)
        if backend == "torch":
            from symdl.compile.torch_backend import to_torch

            return to_torch(self, **options)
        if backend != "numpy":
            raise ValueError(f"compile: backend must be 'numpy', 'jax' or 'torch', not {backend!r}")
        from symdl.compile.codegen import compile_derivation

        return compile_derivation(self, **options)

    def __str__(self) -> str:
        printer = TextPrinter()
        steps = [*self.forward, *self.backward]
        return "\n".join(f"{step.name} = {printer.doprint(step.rhs)}" for step in steps)


_TIDY = (MatMul, MatAdd, Transpose, HadamardProduct)


def _tidy(expr: Basic) -> Basic:
    """Matrix products and sums flattened (nested products, identities, double transposes),
    nothing else evaluated: an entry of a product stays an entry, not an index sum."""
    if not isinstance(expr, MatrixExpr):
        return expr
    memo: dict[Basic, Basic] = {}

    def rebuild(node):
        if node not in memo:
            if node.is_Atom or isinstance(node, MatrixSymbol):
                memo[node] = node
            else:
                args = [rebuild(a) for a in node.args]
                # MatrixElement's func would evaluate the entry into an index sum
                build = MatrixElement if isinstance(node, MatrixElement) else node.func
                new = build(*args) if args != list(node.args) else node
                if isinstance(new, HadamardProduct):
                    new = hadamard(*new.args)
                memo[node] = new.doit(deep=False) if isinstance(new, _TIDY) else new
        return memo[node]

    return rebuild(expr)


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
