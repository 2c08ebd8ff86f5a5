"""Verification of hand-written gradients: equal to d f / d wrt, or not, with a counterexample;
symbolically first (cheap canonical forms, a time budget), else at random points on both sides
of every kink, each apparent difference confirmed in 40-digit arithmetic before it is reported."""

from __future__ import annotations

import html
import signal
import threading
import time
from collections.abc import Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import sympy
from sympy import Basic, Symbol

from symdl.checking.claims import (
    ShapeMismatch,
    claimed_entries,
    explicit,
    matrix_shape,
    parse_claim,
    symbols_of,
    wrt_entries_of,
)
from symdl.checking.numeric import gradient_function, lambdified, scalar_function
from symdl.checking.sampling import Sampler, nodes, numeric_point
from symdl.core.calculus import derive
from symdl.ops import elementary
from symdl.parsing.namespace import namespace_of

SYMBOLIC_BUDGET = 1.5  # seconds for the symbolic attempt, then numbers decide
POINTS = 64
_DIGITS = 40
_SCREEN = 1e-9  # float64 disagreement that is looked at in 40 digits
_MAX_SYMBOLIC_NODES = 3000
_MAX_EXPANDED_TERMS = 5000
_MAX_DENOMINATORS = 8  # together() multiplies them all out


@dataclass(frozen=True)
class Counterexample:
    """A point where the claim and the true derivative differ, and by how much."""

    point: Mapping[Symbol, float]
    wrt: Symbol
    index: tuple[int, ...]
    claimed: float
    true: float

    @property
    def entry(self) -> Symbol:
        """The variable whose derivative differs (its position in `wrt` is `index`)."""
        return self.wrt

    def __str__(self) -> str:
        at = ", ".join(f"{s} = {v:.6g}" for s, v in self.point.items())
        entry = f"entry {list(self.index)} (d/d{self.wrt})" if self.index else f"d/d{self.wrt}"
        return f"at {at}: {entry} is {self.true:.10g}, the claim gives {self.claimed:.10g}"


@dataclass(frozen=True)
class Verdict:
    """Whether a claimed derivative equals the true one: truthy iff it does."""

    equal: bool
    method: str
    f: Basic
    wrt: object
    claimed: object
    true: object
    counterexample: Counterexample | None = None
    reason: str = ""
    details: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)

    def __bool__(self) -> bool:
        return self.equal

    def explain(self) -> str:
        """The verdict in words, then the true derivative beside the claim in LaTeX."""
        lines = [self._words()]
        if self.details:
            lines.append(self.details)
        lines += [f"note: {n}" for n in self.notes]
        lines.append("")
        lines.append(f"true:    {_text(self.true)}")
        lines.append(f"claimed: {_text(self.claimed)}")
        lines.append("")
        lines.append(self.to_latex())
        return "\n".join(lines)

    def _words(self) -> str:
        d = f"the derivative of {_text(self.f, 60)} with respect to {_variables(self.wrt)}"
        if self.equal:
            if self.method == "symbolic":
                return f"EQUAL: the claim is {d}; their difference simplifies to 0."
            return f"EQUAL ({self.method}): the claim agrees with {d} at every point tried."
        if self.counterexample is not None:
            return f"DIFFERENT ({self.method}): the claim is not {d}; {self.counterexample}."
        end = "" if self.reason.endswith((".", "?")) else "."
        return f"DIFFERENT: the claim is not {d}: {self.reason}{end}"

    def to_latex(self) -> str:
        """$$\\partial f/\\partial w = <true> \\qquad \\text{claimed: } <claim>$$."""
        relation = "=" if self.equal else r"\neq"
        return (
            rf"$$\frac{{\partial f}}{{\partial {_latex(self.wrt, 200)}}} = {_latex(self.true)}"
            rf" \qquad \text{{claimed: }} {_latex(self.claimed)} \quad ({relation})$$"
        )

    def __str__(self) -> str:
        return self._words()

    def _repr_latex_(self) -> str:
        return self.to_latex()

    def _repr_html_(self) -> str:
        color = "green" if self.equal else "crimson"
        return (
            f'<p style="color:{color}"><b>{html.escape(self._words())}</b></p>'
            f"<p>{html.escape(self.details)}</p><p>{html.escape(self.to_latex())}</p>"
        )


def _variables(wrt) -> str:
    if isinstance(wrt, sympy.MatrixBase):
        return f"the {wrt.rows}x{wrt.cols} matrix of {wrt[0]} .. {wrt[-1]}"
    if isinstance(wrt, list | tuple):
        return "(" + ", ".join(map(str, wrt)) + ")" if len(wrt) <= 6 else f"({wrt[0]} .. {wrt[-1]})"
    return str(wrt)


def _text(obj, width: int = 400) -> str:
    text = str(obj.tolist() if isinstance(obj, sympy.MatrixBase) else obj)
    return text if len(text) <= width else text[: width - 3] + "..."


def _latex(obj, width: int = 4000) -> str:
    tex = sympy.latex(obj)
    return tex if len(tex) <= width else r"\text{(" + str(len(tex)) + r" characters of LaTeX)}"


def verify(
    f,
    wrt,
    claimed,
    *,
    at: Mapping | None = None,
    where: Mapping[str, object] | None = None,
    points: int = POINTS,
    seed: int = 0,
) -> Verdict:
    """Decide whether `claimed` equals the derivative of `f` with respect to `wrt`.

    Args:
        f: a scalar SymPy expression.
        wrt: a Symbol, a sequence of Symbols, a Matrix of Symbols or a MatrixSymbol (same
            shapes as `sd.grad`).
        claimed: SymPy objects shaped like `wrt`, or text: Python syntax (``"2*(a - y)*x"``,
            ``"delta*x.T"``) or LaTeX (``r"\\sigma(z)(1-\\sigma(z))"``), parsed without running
            any code; names are the symbols of `f`, families such as ``x0, x1`` as the vector
            ``x``, and symdl's functions.
        at: a point ``{symbol or name: value}`` where alone the claim is made; symbols it leaves
            out are drawn at random.
        where: names a text claim may use besides the symbols of `f`, such as
            ``{"delta": p - y}`` for ``"delta*x.T"``.
        points: how many random points the numerical comparison uses.
        seed: seed of the random points (verdicts are reproducible).

    Returns:
        A Verdict: truthy iff equal; `.method`, `.counterexample`, `.explain()`.

    Raises:
        ParseError: text that is not a formula (a ValueError pointing at the position).

    >>> import sympy, symdl as sd
    >>> z = sympy.Symbol("z")
    >>> bool(sd.verify(sd.sigmoid(z), z, r"\\sigma(z)\\,(1-\\sigma(z))"))
    True
    >>> v = sd.verify(sd.sigmoid(z), z, "sigma(z)*(1 + sigma(z))")
    >>> bool(v), v.method
    (False, 'numeric, 64 points, max error 9.9e-01')
    """
    f_given, wrt_given = f, wrt
    f, wrt, write = explicit(f, wrt)
    if isinstance(claimed, str | list | tuple):
        claimed = parse_claim(claimed, namespace_of(f_given, wrt_given, where=where))
    elif isinstance(claimed, Basic | sympy.MatrixBase):
        claimed = claimed.doit()  # Derivative(x**2, x) claims 2 x
    claimed_given, claimed = claimed, write(claimed)
    wrt_entries = wrt_entries_of(wrt)
    derivation = derive(f, wrt)
    true = derivation.closed_form()
    true_entries = [sympy.sympify(e) for e in _flat(true)]
    in_matrix_notation = _matrix_gradient(f_given, wrt_given) if write.sizes else None
    shown = dict(
        f=f_given,
        wrt=wrt_given,
        claimed=claimed_given if in_matrix_notation is not None else claimed,
        true=true if in_matrix_notation is None else in_matrix_notation,
    )
    try:
        claim = claimed_entries(claimed, wrt_entries, matrix_shape(wrt_entries))
    except ShapeMismatch as mismatch:
        return Verdict(False, "shape", reason=str(mismatch), **shown)
    if not at and _same_matrix_expression(claimed_given, in_matrix_notation):
        return Verdict(True, "symbolic", **shown)
    compiled = derivation.compile()
    symbols = symbols_of(f, wrt_entries, compiled)
    extra = sorted(set().union(*(e.free_symbols for e in claim)) - set(symbols), key=str)
    symbols += [s for s in extra if isinstance(s, Symbol)]
    fixed = numeric_point(at, symbols) if at else {}
    exact = {s: sympy.Rational(v) for s, v in fixed.items()}
    if _symbolically_equal(claim, true_entries, exact):
        method = "symbolic" if not fixed else "symbolic, at the given point"
        if write.sizes:  # proved for these sizes only
            method += ", with " + ", ".join(f"{d} = {v}" for d, v in write.sizes.items())
        return Verdict(True, method, **shown)
    return _numerically(
        f, claim, derivation, compiled, wrt_entries, symbols, fixed, points, seed, shown
    )


def _matrix_gradient(f, wrt):
    """The gradient in matrix notation (a b^T), when symdl's matrix calculus gives one."""
    from symdl.core.calculus import grad

    try:
        result = grad(f, wrt)
    except (TypeError, ValueError, NotImplementedError, AttributeError):
        return None
    return result if isinstance(result, sympy.MatrixExpr) else None


def _same_matrix_expression(claimed, true) -> bool:
    """Whether two matrix expressions are equal as expressions (so for every size)."""
    if true is None or not isinstance(claimed, sympy.MatrixExpr) or claimed.shape != true.shape:
        return False
    try:
        with _time_limit(SYMBOLIC_BUDGET):
            difference = (claimed - true).doit()
            return difference == 0 or isinstance(difference, sympy.ZeroMatrix)
    except (_OutOfTime, TypeError, ValueError, sympy.ShapeError):
        return False


def _flat(obj) -> list:
    if isinstance(obj, sympy.MatrixBase):
        return list(obj)
    if isinstance(obj, list | tuple):
        return list(obj)
    return [obj]


# --------------------------------------------------------------------------- symbolic


class _OutOfTime(BaseException):  # not an Exception: SymPy's `except Exception` must not eat it
    pass


@contextmanager
def _time_limit(seconds: float):
    """Interrupt the block after `seconds` where a timer is available (POSIX, main thread,
    no timer already running); elsewhere the size guards alone bound the work."""
    usable = (
        hasattr(signal, "setitimer")
        and threading.current_thread() is threading.main_thread()
        and signal.getitimer(signal.ITIMER_REAL)[0] == 0
    )
    if not usable:
        yield
        return

    def interrupt(signum, frame):
        raise _OutOfTime

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        try:
            signal.setitimer(signal.ITIMER_REAL, 0)
        finally:
            signal.signal(signal.SIGALRM, previous)


def _symbolically_equal(claim: list[Basic], true: list[Basic], at: Mapping) -> bool:
    deadline = time.monotonic() + SYMBOLIC_BUDGET
    try:
        with _time_limit(SYMBOLIC_BUDGET):
            for c, t in zip(claim, true, strict=True):
                difference = c - t
                if at:
                    difference = difference.xreplace(at)
                if not _is_zero(difference, deadline):
                    return False
        return True
    except _OutOfTime:
        return False


def _is_zero(difference: Basic, deadline: float) -> bool:
    """True when cheap canonical forms bring `difference` to 0 (False means: undecided)."""
    if difference == 0:
        return True
    for form in (difference, elementary(difference)):
        if len(nodes([form])) > _MAX_SYMBOLIC_NODES or time.monotonic() > deadline:
            return False
        if _expanded_terms(form) <= _MAX_EXPANDED_TERMS and sympy.expand(form) == 0:
            return True
        if time.monotonic() > deadline or _denominators(form) > _MAX_DENOMINATORS:
            return False
        numerator = sympy.fraction(sympy.together(form))[0]
        if _expanded_terms(numerator) <= _MAX_EXPANDED_TERMS and sympy.expand(numerator) == 0:
            return True
    return False


def _denominators(expr: Basic) -> int:
    return sum(1 for n in nodes([expr]) if isinstance(n, sympy.Pow) and n.exp.is_negative)


def _expanded_terms(expr: Basic, cap: int = 10**7) -> int:
    """An upper estimate of the number of terms `expand` would produce (guards against blowup)."""
    return _terms(expr, {}, cap)


def _terms(e: Basic, memo: dict, cap: int) -> int:
    stack = [(e, False)]
    while stack:
        node, ready = stack.pop()
        if node in memo:
            continue
        if not ready:
            stack.append((node, True))
            stack.extend((a, False) for a in node.args if a not in memo)
            continue
        counts = [memo[a] for a in node.args]
        if isinstance(node, sympy.Add):
            n = sum(counts)
        elif isinstance(node, sympy.Mul):
            n = 1
            for c in counts:
                n = min(n * c, cap)
        elif isinstance(node, sympy.Pow) and node.exp.is_Integer and node.exp > 0:
            n = min(counts[0] ** min(int(node.exp), 64), cap) if counts[0] > 1 else 1
        else:
            n = 1 + sum(counts) - len(counts)  # a function: its arguments expand inside it
        memo[node] = min(max(n, 1), cap)
    return memo[e]


# --------------------------------------------------------------------------- numeric


def _numerically(f, claim, derivation, compiled, wrt_entries, symbols, fixed, points, seed, shown):
    """The verdict of the claim against the compiled gradient at random points (or `fixed`)."""
    value = scalar_function(compiled)
    true_fn = gradient_function(compiled, wrt_entries, None, symbols)
    sampler = Sampler([f, *claim], symbols, seed=seed)
    base, rejected = sampler.points(
        points, fixed=fixed or None, valid=lambda v: [value(v), *true_fn(v)], cover=True
    )
    n = len(base[symbols[0]]) if symbols else 0
    if n == 0:
        why = rejected[0][1] if rejected else "the function has no symbols"
        raise ValueError(f"verify: no point where f and its gradient are finite ({why})")
    claimed = np.stack([_real(c) for c in _claim_function(symbols, claim)(base)])
    true = np.stack([np.asarray(t, dtype=float) for t in true_fn(base)])
    with np.errstate(all="ignore"):
        error = np.abs(claimed - true) / np.maximum(1.0, np.maximum(np.abs(claimed), np.abs(true)))
    error = np.where(np.isfinite(claimed), error, np.inf)
    points_of = [{s: float(base[s][p]) for s in symbols} for p in range(n)]
    counterexample = _confirmed(error, claimed, true, points_of, derivation, claim, wrt_entries)
    finite = error[np.isfinite(error)]
    worst = float(finite.max()) if finite.size else float("inf")
    where = "the given point" if fixed and n == 1 and len(fixed) == len(symbols) else f"{n} points"
    covered, kinks = sampler.coverage(base)
    details = f"Compared at {where} (seed {seed})"
    details += f", on both sides of {covered} of {kinks} branch conditions." if kinks else "."
    notes = (f"{len(rejected)} random points rejected, e.g. {rejected[0][1]}",) if rejected else ()
    return Verdict(
        counterexample is None,
        f"numeric, {where}, max error {worst:.1e}",
        counterexample=counterexample,
        details=details,
        notes=notes,
        **shown,
    )


def _claim_function(symbols, claim):
    try:
        return lambdified(symbols, claim)
    except Exception as error:  # a printer refusing an object: name it, as for any bad input
        raise ValueError(
            f"claimed: cannot evaluate {str(claim)[:80]} numerically ({str(error)[:120]}); "
            "give the derivative in closed form"
        ) from None


def _real(values) -> np.ndarray:
    """Float values; a complex value with an imaginary part (sqrt(-1)) is nan, not its real part."""
    values = np.asarray(values)
    if np.iscomplexobj(values):
        values = np.where(values.imag == 0, values.real, np.nan)
    return values.astype(float)


def _confirmed(error, claimed, true, points, derivation, claim, wrt_entries):
    """The worst float64 disagreement that 40-digit arithmetic confirms, as a Counterexample."""
    suspects = np.argwhere(error > _SCREEN)
    order = np.argsort(-error[tuple(suspects.T)]) if suspects.size else []
    for k, p in (suspects[i] for i in list(order)[:8]):
        precise = _precise(derivation, claim[k], k, points[p])
        if precise is None:  # could not evaluate precisely: trust float64 when far apart
            if error[k, p] > 1e-6:
                return _counterexample(wrt_entries, k, points[p], claimed[k, p], true[k, p])
            continue
        c, t = precise
        if not (np.isfinite(c) and abs(c - t) <= 1e-20 * max(1.0, abs(c), abs(t))):
            return _counterexample(wrt_entries, k, points[p], c, t)
    return None


def _counterexample(wrt_entries, k, point, claimed, true) -> Counterexample:
    w, index = wrt_entries[k]
    return Counterexample(point, w, index, float(claimed), float(true))


def _precise(derivation, claim: Basic, k: int, point: Mapping[Symbol, float]):
    """(claimed, true) for entry `k` at `point` in 40 digits, or None when that fails."""
    try:
        by_name = {s.name: sympy.Float(v, _DIGITS) for s, v in point.items()}
        env: dict[Basic, Basic] = {leaf: by_name[leaf.name] for leaf in derivation.program.leaves}
        for step in derivation.steps:
            env[step.name] = step.rhs.xreplace(env).evalf(_DIGITS)
        g = derivation.gradient_entries[k]
        true = complex(sympy.sympify(g).xreplace(env).evalf(_DIGITS))
        values = {s: by_name[s.name] for s in claim.free_symbols if s.name in by_name}
        claimed = complex(claim.xreplace(values).evalf(_DIGITS))
    except (TypeError, ValueError, ArithmeticError, KeyError, RecursionError):
        return None
    if abs(true.imag) > 1e-30 or abs(claimed.imag) > 1e-30:
        return None
    return claimed.real, true.real
