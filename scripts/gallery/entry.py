"""An entry of the gallery (what it shows, how symdl derives it, how it is checked), the
registry entries join by being defined, and the notation the entries share."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import sympy
from sympy import MatrixSymbol, OneMatrix, Symbol

import symdl as sd
from gallery.reference import Check, Property
from symdl.core.derivation import Derivation
from symdl.core.matrices import hadamard
from symdl.render.latex import (
    Block,
    Equation,
    derivation_blocks,
    latex,
    render_latex,
    render_markdown,
)

N = Symbol("N", integer=True, positive=True)  # the batch: one example per column


@dataclass(frozen=True)
class Entry:
    """One derivation of the gallery: what it shows, how symdl derives it, how it is checked.

    `derivation` (if any) is laid out as forward pass, adjoints and gradients; `parts` are the
    hand-written equations after it (the published form, an update rule, a bound); `checks`
    compare with references symdl did not derive.
    """

    title: str
    prose: str
    parts: tuple[Block, ...]
    checks: tuple[Check, ...]
    derivation: Derivation | None = None
    notation: str = "bar"
    slug: str = ""

    def blocks(self) -> list[Block]:
        derived = derivation_blocks(self.derivation, self.notation) if self.derivation else []
        return [*derived, *self.parts]

    def to_latex(self, environment: str = "align") -> str:
        """Every equation of the entry as one ``align*`` (or ``aligned``) environment."""
        return render_latex(self.blocks(), environment)

    def to_markdown(self, level: int = 2) -> str:
        """The equations as Markdown: a heading per part, ``$$`` blocks GitHub renders."""
        return render_markdown(self.blocks(), level=level)


GALLERY: list[Callable[[], Entry]] = []


def entry(build: Callable[[], Entry]) -> Callable[[], Entry]:
    """Add `build` to the gallery; its name, with hyphens, is the entry's file name."""
    slug = build.__name__.replace("_", "-")

    def built() -> Entry:
        return dataclasses.replace(build(), slug=slug)

    built.__name__ = built.slug = slug
    built.module = build.__module__.rpartition(".")[2]
    built.__doc__ = build.__doc__
    GALLERY.append(built)
    return built


def entries() -> list[Entry]:
    """Every entry of the gallery, built, in gallery order."""
    return [build() for build in GALLERY]


def part(title: str, *equations: Equation | Sequence) -> Block:
    """A titled block of equations: Equations, or ``(lhs, side, ...)`` of SymPy objects or LaTeX."""
    return Block(title, tuple(_as_equation(e) for e in equations))


def _as_equation(e) -> Equation:
    if isinstance(e, Equation):
        return e
    lhs, *sides = (x if isinstance(x, str) else latex(x) for x in e)
    return Equation(lhs, tuple(sides))


def dL(v: str, output: str = "L") -> str:
    r"""$\partial L / \partial v$ in LaTeX."""
    return rf"\frac{{\partial {output}}}{{\partial {v}}}"


def upstream(G: MatrixSymbol, Y) -> sympy.Expr:
    r"""$L = \mathbf{1}^T (G \circ Y) \mathbf{1}$: a loss whose gradient with respect to the
    layer output $Y$ is any upstream gradient $G$, so a layer's backward pass shows alone."""
    return OneMatrix(1, Y.shape[0]) * hadamard(G, Y) * OneMatrix(Y.shape[1], 1)


def in_order(expr: sympy.Expr) -> str:
    """LaTeX of a scalar expression with its terms in the order written (SymPy sorts them)."""
    return sympy.latex(expr, order="none")


def grad_check(f, wrt) -> Property:
    """A check of symdl's gradient of `f` against Richardson-extrapolated differences."""

    def test():
        check = sd.check_grad(f, wrt, method="richardson")
        return bool(check), f"largest error {check.max_error:.1e}"

    return Property("sd.check_grad", "against Richardson-extrapolated central differences", test)
