"""Fuzz symdl's derivatives: random scalar DAGs (SymPy functions and every declared op over 1-4
symbols, with shared subexpressions) and random small matrix expressions, each compared with an
independent reference: `sympy.diff` of the elementary definitions at 30 digits, for `grad`,
`hessian`, `jacobian`, the compiled `derive(...).compile()` and `check_grad`.

    python scripts/fuzz.py [--cases 10000] [--seed 0] [--show 5]

Prints the number of cases, mismatches (a wrong value), crashes (an exception that is not one
of symdl's own errors, or compiled source that does not compile) and refusals (an error of
symdl's own naming the construct, e.g. UnsupportedOp), with the first few of each. The case
generator takes a `choose(n) -> int in [0, n)`, so tests/test_fuzz.py drives it from Hypothesis
(which shrinks a failing case) and this script from a seeded random.Random.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import sympy

import symdl as sd
from symdl.checking.sampling import elementary
from symdl.ops import declared

Choose = Callable[[int], int]
SYMBOLS = sympy.symbols("x0:4", real=True)
_PARAMETERS = {"alpha", "delta"}

_UNARY = [
    sympy.tanh,
    sympy.exp,
    sympy.sin,
    sympy.cos,
    sympy.atan,
    lambda e: e**2,
    lambda e: e**3,
    lambda e: 1 / (1 + e**2),
    lambda e: sympy.log(1 + e**2),
    lambda e: sympy.sqrt(1 + e**2),
    lambda e: sympy.Abs(e),
    lambda e: sympy.Abs(e) * e,
    lambda e: sympy.Heaviside(e) * e,
    lambda e: sympy.sign(e) * e**2,
    lambda e: sympy.Piecewise((e**2, e > 0), (sympy.sin(e), True)),
    lambda e: sympy.log(sd.sigmoid(e)),
    lambda e: sd.binary_cross_entropy(sd.sigmoid(e), sympy.Rational(1, 3)),
]
_BINARY = [
    lambda a, b: a + b,
    lambda a, b: a * b,
    lambda a, b: a - 2 * b,
    lambda a, b: a / (2 + sympy.cos(b)),
    lambda a, b: sympy.Max(a, b),
    lambda a, b: sympy.Min(a, b) * a,
    lambda a, b: a * sympy.exp(-(b**2)),
    lambda a, b: sympy.atan2(a, 2 + b**2),
]


def _op_node(op, pick: Callable[[], sympy.Expr]) -> sympy.Expr:
    """`op` applied to earlier nodes: its example with each argument replaced."""
    example, intervals = op.example()
    replace = {}
    for s in sorted(example.free_symbols, key=str):
        lo, hi = intervals[s]
        if s.name in _PARAMETERS:
            replace[s] = sympy.Rational(int(4 * (lo + hi) / 2) or 1, 4)
        elif lo >= 0:  # a probability: squashed into (lo, hi)
            replace[s] = lo + (hi - lo) * sd.sigmoid(pick())
        else:
            replace[s] = pick()
    return example.xreplace(replace)


def fuzzed_ops() -> list[type]:
    """symdl's own declared ops, by name: one a user (or a doctest) declared in this process is
    not symdl's to fuzz."""
    ops = (c for c in declared().values() if c.__module__.startswith("symdl."))
    return sorted(ops, key=lambda c: c.__name__)


def dag(
    choose: Choose, symbols: list[sympy.Symbol], max_nodes: int = 6, min_nodes: int = 1
) -> list[sympy.Expr]:
    """The nodes of a random DAG over `symbols`, in order, the symbols first: between
    `min_nodes` and `max_nodes` SymPy functions, binary forms and symdl ops, each applied to
    earlier nodes (so later nodes share earlier ones). tests/core/test_jacobian_hessian.py
    draws its DAGs here too."""
    nodes: list[sympy.Expr] = list(symbols)

    def pick():
        return nodes[choose(len(nodes))]

    ops = fuzzed_ops()
    for _ in range(min_nodes + choose(max_nodes - min_nodes + 1)):
        kind = choose(3)
        if kind == 0:
            node = _UNARY[choose(len(_UNARY))](pick())
        elif kind == 1:
            node = _BINARY[choose(len(_BINARY))](pick(), pick())
        else:
            node = _op_node(ops[choose(len(ops))], pick)
        nodes.append(node)
    return nodes


def scalar_case(choose: Choose, max_nodes: int = 6) -> tuple[sympy.Expr, list[sympy.Symbol]]:
    """A random scalar DAG (later nodes reuse earlier ones) and a wrt list (repeats allowed)."""
    symbols = list(SYMBOLS[: 1 + choose(4)])
    nodes = dag(choose, symbols, max_nodes)
    f = (
        nodes[-1]
        if choose(2)
        else nodes[-1] * nodes[len(symbols) + choose(len(nodes) - len(symbols))]
    )
    wrt = [symbols[choose(len(symbols))] for _ in range(1 + choose(3))]
    return f, wrt


def matrix_case(choose: Choose) -> tuple[sympy.Expr, sympy.MatrixSymbol]:
    """A random scalar of small matrices (W 2x3, x 3x1, y 2x1, A 3x3) and the matrix to
    differentiate by."""
    W, x = sympy.MatrixSymbol("W", 2, 3), sympy.MatrixSymbol("x", 3, 1)
    y, A = sympy.MatrixSymbol("y", 2, 1), sympy.MatrixSymbol("A", 3, 3)
    z = W * x
    inner = [z, z - y, W * A * x, z + W * x]
    v = inner[choose(len(inner))]
    scalars = [
        lambda v: v.T * v,
        lambda v: y.T * v,
        lambda v: sympy.Trace(v * v.T),
        lambda v: x.T * A * x + v.T * y,
        lambda v: sd.mse(v, y),
        lambda v: sympy.Trace(W.T * W * A),
    ]
    f = scalars[choose(len(scalars))](v)
    candidates = [m for m in (W, x, A, y) if f.has(m)]
    return f, candidates[choose(len(candidates))]


@dataclass
class Tally:
    cases: int = 0
    mismatches: list[str] = field(default_factory=list)
    crashes: list[str] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)
    compared: int = 0
    unreferenced: int = 0  # values SymPy left as an unevaluated Derivative: not compared


class Mismatch(AssertionError):
    """symdl and the reference disagree."""


def _own(error: BaseException) -> bool:
    """An error of symdl's own with a message: a refusal, not a crash."""
    return type(error).__module__.startswith("symdl") and bool(str(error).strip())


def _points(symbols, choose: Choose, count: int = 2) -> list[dict]:
    rng = random.Random(choose(10_000))
    return [{s: rng.uniform(-2, 2) for s in symbols} for _ in range(count)]


def _exact(expr: sympy.Expr, point: dict, digits: int = 30) -> complex:
    values = {s: sympy.Float(v, digits) for s, v in point.items()}
    return complex(elementary(sympy.sympify(expr)).xreplace(values).evalf(digits))


def _diff(expr: sympy.Expr, w: sympy.Symbol) -> sympy.Expr:
    """`sympy.diff`, with sign(u) written 2*Heaviside(u) - 1 (equal for real u, Heaviside(0)
    being 1/2): SymPy differentiates sign(u) only where it can prove u real, and leaves
    `Derivative(sign(x0/(cos(x1) + 2)), x0)` undone, while Heaviside's DiracDelta it always gives."""
    return sympy.diff(expr.replace(sympy.sign, lambda u: 2 * sympy.Heaviside(u) - 1), w)


def _reference(expr: sympy.Expr, point: dict, tally: Tally) -> float | None:
    """SymPy's value of the reference `expr` at `point`, or None where there is none to compare
    with: outside the domain of a log, too steep, or a derivative SymPy left undone (`sign` of a
    quotient it cannot prove real, say), which cannot be evaluated at a point. Only the reference
    is excused here; an error in symdl's side of a case stays a crash."""
    if expr.has(sympy.Derivative):
        tally.unreferenced += 1
        return None
    exact = _exact(expr, point)
    if abs(exact.imag) > 1e-20 or not math.isfinite(exact.real) or abs(exact.real) > 1e12:
        return None
    return exact.real


def _close(got: float, exact: float, rtol: float) -> bool:
    return abs(got - exact) <= rtol * (1 + abs(exact))


def check_scalar(f: sympy.Expr, wrt: list, choose: Choose, tally: Tally, hessian: bool) -> None:
    """grad, the compiled derivation, check_grad (and the Hessian) of `f` against SymPy."""
    symbols = sorted(f.free_symbols | set(wrt), key=str)
    reference = [_diff(elementary(f), w) for w in wrt]
    gradient = sd.grad(f, wrt)
    if len(gradient) != len(wrt):
        raise Mismatch(f"grad has {len(gradient)} entries for {len(wrt)} wrt")
    compiled = sd.derive(f, wrt).compile()  # runs the generated source: a SyntaxError crashes
    for point in _points(symbols, choose, 1):
        for i, ref in enumerate(reference):
            exact = _reference(ref, point, tally)
            if exact is None:
                continue
            ours = _exact(gradient[i], point, 20)
            if not _close(ours.real, exact, 1e-9):
                raise Mismatch(f"grad[{i}] at {point}: {ours.real} vs SymPy {exact}")
            with np.errstate(all="ignore"):
                _, grads = compiled(**{s.name: v for s, v in point.items()})
            if not _close(float(grads[i]), exact, 1e-6):
                raise Mismatch(f"compiled grad[{i}] at {point}: {grads[i]} vs SymPy {exact}")
            tally.compared += 1
    if hessian:
        unique = list(dict.fromkeys(wrt))
        ours = sd.hessian(f, unique)
        point = _points(symbols, choose, 1)[0]
        for i, a in enumerate(unique):
            for j, b in enumerate(unique):
                exact = _reference(_diff(reference[wrt.index(a)], b), point, tally)
                if exact is None:
                    continue
                got = _exact(ours[i, j], point)
                if not _close(got.real, exact, 1e-8):
                    raise Mismatch(f"hessian[{i},{j}] at {point}: {got.real} vs {exact}")
    if choose(4):
        return  # check_grad (slow: it compiles and samples away from kinks) in one case of four
    try:
        result = sd.check_grad(f, list(dict.fromkeys(wrt)), points=1)
    except ValueError as error:
        if str(error).startswith(("check_grad:", "no point")) or _own(error):
            return  # no point inside the domain: check_grad says so
        raise
    if not result:
        raise Mismatch(f"check_grad fails: {result.summary()}")


def check_matrix(f, wrt, choose: Choose, tally: Tally) -> None:
    """sd.grad in matrix notation against the derivative of the explicit entries."""
    gradient = sd.grad(f, wrt)
    if gradient.shape != wrt.shape:
        raise Mismatch(f"grad by {wrt} has shape {gradient.shape}, not {wrt.shape}")
    matrices = {m for m in f.atoms(sympy.MatrixSymbol)} | {wrt}
    entries = {
        m[i, j]: sympy.Symbol(f"{m.name}_{i}{j}", real=True)
        for m in matrices
        for i in range(m.shape[0])
        for j in range(m.shape[1])
    }
    explicit = _explicit(f).xreplace(entries)
    ours = sympy.Matrix(gradient.as_explicit()).xreplace(entries)
    point = _points(sorted(entries.values(), key=str), choose, 1)[0]
    for i in range(wrt.shape[0]):
        for j in range(wrt.shape[1]):
            exact = _reference(_diff(explicit, entries[wrt[i, j]]), point, tally)
            if exact is None:
                continue
            got = _exact(ours[i, j], point)
            if not _close(got.real, exact, 1e-9):
                raise Mismatch(f"grad by {wrt}[{i},{j}] at {point}: {got.real} vs {exact}")
            tally.compared += 1


def _explicit(f) -> sympy.Expr:
    """The scalar `f` of matrices written out entry by entry (the reference's input)."""
    if isinstance(f, sympy.Trace):
        return sympy.Matrix(f.arg.as_explicit()).trace()
    if hasattr(f, "explicit"):  # a matrix loss: its scalar form on the entries
        return f.explicit(*(sympy.Matrix(a.as_explicit()) for a in f.args))
    return sympy.Matrix(f.as_explicit())[0, 0]


def run_case(choose: Choose, tally: Tally) -> None:
    """One case, its outcome added to `tally` (a mismatch or crash is recorded, not raised)."""
    tally.cases += 1
    kind = choose(5)
    what = f"case {tally.cases}, generating or printing it"  # until the case is built
    try:
        if kind == 0:
            f, wrt = matrix_case(choose)
            what = f"case {tally.cases}, matrix: {f} by {wrt}"
            check_matrix(f, wrt, choose, tally)
        else:
            f, wrt = scalar_case(choose)
            what = f"case {tally.cases}, scalar: {f} by {wrt}"
            check_scalar(f, wrt, choose, tally, hessian=kind == 1 and choose(3) == 0)
    except Mismatch as error:
        tally.mismatches.append(f"{what}\n    {error}")
    except Exception as error:
        if _own(error) and not isinstance(error, SyntaxError):
            tally.refusals.append(f"{what}\n    {type(error).__name__}: {str(error)[:200]}")
        else:
            where = traceback.extract_tb(error.__traceback__)[-1]
            tally.crashes.append(
                f"{what}\n    {type(error).__name__}: "
                f"{str(error)[:200]} ({where.filename.split('/')[-1]}:{where.lineno})"
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--show", type=int, default=5, help="examples shown of each kind")
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    tally = Tally()
    start = time.perf_counter()
    warnings.simplefilter("ignore")
    try:
        for n in range(args.cases):
            run_case(rng.randrange, tally)
            if (n + 1) % 100 == 0:
                print(
                    f"{n + 1} cases, {len(tally.mismatches)} mismatches, "
                    f"{len(tally.crashes)} crashes, {len(tally.refusals)} refusals "
                    f"({time.perf_counter() - start:.0f} s)",
                    flush=True,
                )
    except KeyboardInterrupt:  # Ctrl-C: the figures of the cases finished so far
        tally.cases -= 1
        print(f"interrupted after {tally.cases} cases")
    print(
        f"\n{tally.cases} cases (seed {args.seed}), {tally.compared} values compared, "
        f"in {time.perf_counter() - start:.0f} s:\n"
        f"  mismatches {len(tally.mismatches)}\n  crashes    {len(tally.crashes)}\n"
        f"  refusals   {len(tally.refusals)}\n"
        f"  values with no SymPy reference (a derivative it left undone) {tally.unreferenced}"
    )
    for name, label in (("mismatches", "mismatch"), ("crashes", "crash"), ("refusals", "refusal")):
        for line in getattr(tally, name)[: args.show]:
            print(f"{label}: {line}")
    return 1 if tally.mismatches or tally.crashes else 0


if __name__ == "__main__":
    sys.exit(main())
