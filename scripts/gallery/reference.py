r"""Checks of a derivation against a reference symdl did not derive: a published formula (through
`sd.verify`), `sympy.diff` of the function written out entry by entry at small sizes, or a
property computed directly (a bound, an eigenvector, an optimizer's step).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import sympy
from sympy import Basic, MatrixBase, MatrixSymbol, Symbol

from symdl.checking.verify import verify
from symdl.compile.codegen import SymdlNumPyPrinter
from symdl.core.calculus import grad
from symdl.core.explicit import entries, evaluate, expand
from symdl.ops import elementary
from symdl.render.latex import Equation, latex


@dataclass(frozen=True)
class Outcome:
    """The result of a check: `ok`, and what was found (a verdict's method, the largest error)."""

    ok: bool
    detail: str

    def __bool__(self) -> bool:
        return self.ok


def substitute(expr: Basic, where: Mapping[Basic, Basic]) -> Basic:
    """`expr` with each symbol of `where` replaced by its definition, until none is left
    (definitions may use symbols defined before them, as in $\\Delta^{(1)} = W^T \\Delta^{(2)}$).

    >>> x, z, a = sympy.symbols("x z a")
    >>> substitute(a + 1, {z: 2 * x, a: z**2})
    4*x**2 + 1
    """
    for _ in range(len(where) + 1):
        if not any(expr.has(s) for s in where):
            return expr
        expr = expr.xreplace(dict(where))
    raise ValueError(f"substitute: the definitions of {sorted(map(str, where))} are circular")


@dataclass(frozen=True)
class Claim:
    """A published formula `lhs = rhs` for the derivative of `f` with respect to `wrt`.

    `rhs` may use names (such as $\\Delta^{(2)}$ or $\\hat{X}$) that `where` defines; the
    check is `sd.verify(f, wrt, rhs with every name substituted)`.
    """

    lhs: str
    rhs: Basic
    f: Basic
    wrt: Basic
    source: str
    where: Mapping[Basic, Basic] = field(default_factory=dict)

    method = "sd.verify"

    @property
    def equation(self) -> Equation:
        return Equation(self.lhs, (latex(self.rhs),))

    @property
    def against(self) -> str:
        return f"of ${self.lhs}$ against {self.source}"

    def run(self) -> Outcome:
        verdict = verify(self.f, self.wrt, substitute(self.rhs, self.where))
        if verdict.agrees:  # evidence, not a proof: the page says so
            return Outcome(True, f"{verdict.method} (numeric agreement, not a proof)")
        return Outcome(bool(verdict), verdict.method if verdict else verdict.explain())


@dataclass(frozen=True)
class ExplicitDiff:
    """symdl's gradient of `f` (or `claimed`) equals `sympy.diff` of `f` written out entry by
    entry at the explicit `sizes`, each symdl op replaced by its elementary definition; compared
    at random points (`fixed` gives some symbols values, e.g. one-hot targets)."""

    f: Basic
    wrt: tuple
    sizes: Mapping[Symbol, int] = field(default_factory=dict)
    claimed: tuple | None = None
    fixed: Mapping[Basic, object] = field(default_factory=dict)
    points: int = 3
    seed: int = 0
    rtol: float = 1e-8

    method = "sympy.diff"

    @property
    def against(self) -> str:
        what = "the published formula" if self.claimed is not None else "symdl's gradient"
        sizes = ", ".join(f"${sympy.latex(d)} = {v}$" for d, v in self.sizes.items())
        written = f"written out entry by entry at {sizes}" if sizes else "written out"
        return f"of the function {written}, against {what} at {self.points} random points"

    def run(self) -> Outcome:
        sized = self.f.xreplace(self.sizes)
        matrices = sorted(sized.atoms(MatrixSymbol), key=str)
        table = {M: entries(M) for M in matrices}
        scalar = elementary(_scalar(expand(sized, table)))
        leaves = sorted(scalar.free_symbols - {s for M in matrices for s in table[M]}, key=str)
        inputs = [s for M in matrices for s in table[M]] + leaves
        ours = self.claimed if self.claimed is not None else grad(self.f, list(self.wrt))
        rng = np.random.default_rng(self.seed)
        worst = 0.0
        for w, mine in zip(self.wrt, ours, strict=True):
            cells = list(table[w.xreplace(self.sizes)]) if isinstance(w, MatrixSymbol) else [w]
            derivatives = [sympy.diff(scalar, c) for c in cells]
            reference = sympy.lambdify(inputs, derivatives, printer=SymdlNumPyPrinter, cse=True)
            for _ in range(self.points):
                values = self._point(matrices, leaves, rng)
                numbers = [float(x) for M in matrices for x in np.ravel(values[M])]
                expected = np.array(reference(*numbers, *(values[s] for s in leaves)), dtype=float)
                got = np.ravel(evaluate(mine.xreplace(self.sizes), values))
                error = float(np.max(np.abs(got - expected) / (1 + np.abs(expected))))
                worst = max(worst, error)
        return Outcome(worst <= self.rtol, f"largest relative error {worst:.1e}")

    def _point(self, matrices, leaves, rng) -> dict:
        fixed = {k.xreplace(self.sizes): v for k, v in self.fixed.items()}
        values: dict = {}
        for M in matrices:
            values[M] = fixed.get(M, rng.uniform(-1.0, 1.0, size=tuple(int(d) for d in M.shape)))
        for s in leaves:
            low = 0.5 if s.is_positive else -1.0
            values[s] = float(fixed.get(s, rng.uniform(low, low + 1.5)))
        return values


def _scalar(value):
    return value[0, 0] if isinstance(value, MatrixBase) else value


@dataclass(frozen=True)
class Property:
    """A fact computed directly, without symdl's derivative: `test()` returns (ok, detail)."""

    method: str
    against: str
    test: Callable[[], tuple[bool, str]]

    def run(self) -> Outcome:
        ok, detail = self.test()
        return Outcome(bool(ok), detail)


Check = Claim | ExplicitDiff | Property


def run_checks(checks: Sequence[Check]) -> list[tuple[Check, Outcome]]:
    """Each check with its outcome, in order."""
    return [(check, check.run()) for check in checks]


def describe(checks: Sequence[Check]) -> list[tuple[str, str]]:
    """(method, what it checks) per check, to be read as one phrase; claims in a row from one
    source share a line: ("sd.verify", "of $a$, $b$ and $c$ against Nielsen (2015)")."""
    lines: list[tuple[str, str]] = []
    run: list[Claim] = []

    def flush():
        if run:
            names = [f"${c.lhs}$" for c in run]
            listed = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
            lines.append((Claim.method, f"of {listed} against {run[0].source}"))
            run.clear()

    for check in checks:
        if isinstance(check, Claim):
            if run and run[0].source != check.source:
                flush()
            run.append(check)
        else:
            flush()
            lines.append((check.method, check.against))
    flush()
    return lines
