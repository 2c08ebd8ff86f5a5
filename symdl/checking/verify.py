"""Verification of hand-written gradients: equal to d f / d wrt, or not, with a counterexample;
symbolically first (cheap canonical forms, a time budget), else at random points on both sides
of every kink, each apparent difference confirmed in 40-digit arithmetic before it is reported."""

from __future__ import annotations

import html
import time
from collections.abc import Mapping
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
from symdl.checking.diagnosis import Evidence, diagnose
from symdl.checking.numeric import gradient_function, lambdified, scalar_function
from symdl.checking.sampling import (
    Sampler,
    _OutOfTime,
    _switches,
    _time_limit,
    nodes,
    numeric_point,
)
from symdl.core.calculus import derive
from symdl.core.program import with_matrix_sums
from symdl.ops import elementary
from symdl.parsing.errors import ShapeMisfit
from symdl.parsing.namespace import namespace_of

SYMBOLIC_BUDGET = 1.5  # CPU seconds for the symbolic attempt, then numbers decide
POINTS = 64
_DIGITS = 60
_EXACT_TOLERANCE = 1e-40  # relative difference in 60 digits that is a real one
_EXACT_POINTS = 12  # points compared in high precision whatever float64 says
_EXACT_ENTRIES = 64
_SCREEN = 1e-9  # float64 disagreement that is looked at in 40 digits
_PLAIN = 1e-3  # a disagreement this large is shown at the point nearest 0 that has one
_MAX_SYMBOLIC_NODES = 3000
_MAX_EXPANDED_TERMS = 5000
_MAX_DENOMINATORS = 8  # together() multiplies them all out
_POINT_SHOWN = 6  # a counterexample at more values than this names the entry first


@dataclass(frozen=True)
class Counterexample:
    """A point where the claim and the true derivative differ, and by how much."""

    point: Mapping[Symbol, float]
    wrt: Symbol
    index: tuple[int, ...]
    claimed: float
    true: float
    difference: float | None = None  # claimed - true in high precision, when computed so

    @property
    def entry(self) -> Symbol:
        """The variable whose derivative differs (its position in `wrt` is `index`)."""
        return self.wrt

    def __str__(self) -> str:
        entry = f"entry {list(self.index)} (d/d{self.wrt})" if self.index else f"d/d{self.wrt}"
        values = f"{entry} is {self.true:.10g}, the claim gives {self.claimed:.10g}"
        if self.difference is not None and f"{self.true:.10g}" == f"{self.claimed:.10g}":
            values += f" (claim - true = {self.difference:.3g})"
        shown = list(self.point.items())
        if len(shown) <= _POINT_SHOWN:
            at = ", ".join(f"{s} = {v:.6g}" for s, v in shown)
            return f"at {at}: {values}"
        # many values (an 8x8 matrix): the entry and its two values first, the point short
        first = ", ".join(f"{s} = {v:.6g}" for s, v in shown[:3])
        return f"{values}, at a point of {len(shown)} values ({first}, ...; all in .point)"


@dataclass(frozen=True)
class Verdict:
    """Whether a claimed derivative equals the true one, in one of three outcomes.

    ``EQUAL``: proved (`.equal` is True and the verdict is truthy). ``AGREES``: equal at every
    point tried but not proved (`.agrees` is True, the verdict is falsy: an ``assert`` of it
    fails). ``DIFFERENT``: wrong at `.counterexample`, or of the wrong shape (`.reason`);
    `.diagnosis` names the mistake when one is checked ("a missing term: ...", "a transpose:
    ...", "a missing 1/N: ..."), else it is "" (`.details` starts with it too).
    """

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
    agrees: bool = False
    diagnosis: str = ""

    def __bool__(self) -> bool:
        return self.equal

    @property
    def status(self) -> str:
        """``"EQUAL"`` (proved), ``"AGREES"`` (numeric evidence only) or ``"DIFFERENT"``."""
        return "EQUAL" if self.equal else "AGREES" if self.agrees else "DIFFERENT"

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
            return f"EQUAL ({self.method}): the claim is {d}; their difference is 0."
        if self.agrees:
            return (
                f"AGREES (numeric only: {self.method}): the claim agrees with {d} at every point"
                " tried, which is not a proof."
            )
        if self.counterexample is not None:
            return f"DIFFERENT ({self.method}): the claim is not {d}; {self.counterexample}."
        end = "" if self.reason.endswith((".", "?")) else "."
        return f"DIFFERENT: the claim is not {d}: {self.reason}{end}"

    def to_latex(self) -> str:
        """$$\\partial f/\\partial w = <true> \\qquad \\text{claimed: } <claim>$$."""
        relation = "=" if self.equal else r"\approx" if self.agrees else r"\neq"
        return (
            rf"$$\frac{{\partial f}}{{\partial {_latex(self.wrt, 200)}}} = {_latex(self.true)}"
            rf" \qquad \text{{claimed: }} {_latex(self.claimed)} \quad ({relation})$$"
        )

    def __str__(self) -> str:
        return self._words()

    def _repr_latex_(self) -> str:
        return self.to_latex()

    def _repr_html_(self) -> str:
        color = "green" if self.equal else "darkorange" if self.agrees else "crimson"
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
        A Verdict: `.status` EQUAL (proved, the only truthy outcome), AGREES (equal at every
        point tried, not proved) or DIFFERENT; `.method`, `.counterexample`, `.explain()`.

    Raises:
        ParseError: text that is not a formula (a ValueError pointing at the position). Text
            that reads as a formula but whose matrices cannot fit together (``"2 w w"`` for a
            vector w) is not an error: its verdict is DIFFERENT, `.method` ``"shape"``, and
            `.reason` names the shapes, so claims can be verified in a loop.

    >>> import sympy, symdl as sd
    >>> z = sympy.Symbol("z")
    >>> bool(sd.verify(sd.sigmoid(z), z, r"\\sigma(z)\\,(1-\\sigma(z))"))
    True
    >>> v = sd.verify(sd.sigmoid(z), z, "sigma(z)*(1 + sigma(z))")
    >>> bool(v), v.method
    (False, 'numeric, 64 points, max error 1.0e+00')
    """
    f_given, wrt_given = f, wrt
    f, wrt, write = explicit(f, wrt)
    misfit = None
    if isinstance(claimed, str | list | tuple):
        shape = getattr(wrt_given, "shape", None)
        try:
            claimed = parse_claim(claimed, namespace_of(f_given, wrt_given, where=where), shape)
        except ShapeMisfit as error:  # read, but its matrices do not fit: a wrong claim
            misfit = error
    elif isinstance(claimed, Basic | sympy.MatrixBase):
        claimed = claimed.doit()  # Derivative(x**2, x) claims 2 x
    claimed_given, claimed = claimed, write(claimed)
    wrt_entries = wrt_entries_of(wrt)
    derivation = derive(f, wrt)
    true = derivation.closed_form()
    true_entries = [sympy.sympify(e) for e in _flat(true)]
    in_matrix_notation = _matrix_gradient(f_given, wrt_given) if write.sizes else None
    shown = dict(
        f=with_matrix_sums(f_given),
        wrt=wrt_given,
        claimed=claimed_given if in_matrix_notation is not None else claimed,
        true=true if in_matrix_notation is None else in_matrix_notation,
    )
    if misfit is not None:
        reason = f"the claim's matrices do not fit together: {misfit.reason}"
        return Verdict(False, "shape", reason=reason + _at(misfit), **shown)
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
    pieces = _piecewise_proof(claim, true_entries, exact)
    if pieces is not None:
        method = f"symbolic, on each of {pieces} pieces split at the kinks"
        if fixed:
            method += ", at the given point"
        if write.sizes:
            method += ", with " + ", ".join(f"{d} = {v}" for d, v in write.sizes.items())
        return Verdict(True, method, **shown)
    forms = dict(
        true_entries=true_entries,
        shape=matrix_shape(wrt_entries),
        names=[str(w) for w, _ in wrt_entries],
        claim_matrix=claimed_given if isinstance(claimed_given, sympy.MatrixExpr) else None,
    )
    if _has_matrix_symbols(f_given, wrt_given):  # the diagnosis alters the matrix notation
        forms.update(write=write, true_matrix=in_matrix_notation)
        if in_matrix_notation is None:
            forms["true_matrix"] = _matrix_gradient(f_given, wrt_given)
    return _numerically(
        f, claim, derivation, compiled, wrt_entries, symbols, fixed, points, seed, shown, forms
    )


def _at(error) -> str:
    """Where in the claim's text a parse error is, as `` (at character 4: ...)``."""
    if error.position is None or not error.text:
        return ""
    return f" (at character {error.position}: {error.text[error.position : error.position + 20]!r})"


def _matrix_gradient(f, wrt):
    """The gradient in matrix notation (a b^T), when symdl's matrix calculus gives one."""
    from symdl.core.calculus import grad

    try:
        result = grad(f, wrt)
    except (TypeError, ValueError, NotImplementedError, AttributeError):
        return None
    return result if isinstance(result, sympy.MatrixExpr) else None


def _has_matrix_symbols(*objs) -> bool:
    return any(isinstance(o, Basic) and bool(o.atoms(sympy.MatrixSymbol)) for o in objs) or any(
        isinstance(o, sympy.MatrixSymbol) for o in objs
    )


def _same_matrix_expression(claimed, true) -> bool:
    """Whether two matrix expressions are equal as expressions (so for every size)."""
    if true is None or not isinstance(claimed, sympy.MatrixExpr) or claimed.shape != true.shape:
        return False
    try:
        with _time_limit(SYMBOLIC_BUDGET):
            difference = (claimed - true).doit()
            if not (difference == 0 or isinstance(difference, sympy.ZeroMatrix)):
                difference = difference.expand().doit()  # (A + A^T) x against A x + A^T x
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


def _symbolically_equal(claim: list[Basic], true: list[Basic], at: Mapping) -> bool:
    deadline = time.process_time() + SYMBOLIC_BUDGET
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
    for form in _forms(difference):
        if len(nodes([form])) > _MAX_SYMBOLIC_NODES or time.process_time() > deadline:
            return False
        if _expanded_terms(form) <= _MAX_EXPANDED_TERMS and sympy.expand(form) == 0:
            return True
        if time.process_time() > deadline or _denominators(form) > _MAX_DENOMINATORS:
            return False
        numerator = sympy.fraction(sympy.together(form))[0]
        if _expanded_terms(numerator) <= _MAX_EXPANDED_TERMS and sympy.expand(numerator) == 0:
            return True
    return False


def _forms(difference: Basic):
    """The difference as given, with symdl's ops elementary, and with hyperbolic and
    trigonometric functions as exponentials (1/cosh(x)**2 = 1 - tanh(x)**2)."""
    yield difference
    plain = elementary(difference)
    yield plain
    if plain.has(*_EXPONENTIAL):
        yield plain.rewrite(sympy.exp)


_EXPONENTIAL = (sympy.tanh, sympy.cosh, sympy.sinh, sympy.sech, sympy.coth, sympy.csch)


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


# --------------------------------------------------------------------------- piecewise


class _Undecided(Exception):
    pass


_MAX_KINKS_PER_ENTRY = 8  # 2**8 pieces at most


def _piecewise_proof(claim: list[Basic], true: list[Basic], at: Mapping) -> int | None:
    """The largest number of pieces some entry was split into when, on every piece of the split
    by the signs of its kink quantities, the difference of every entry simplifies to 0; None
    when that is not shown (the claim may still be right)."""
    deadline = time.process_time() + SYMBOLIC_BUDGET
    most = 0
    try:
        with _time_limit(SYMBOLIC_BUDGET):
            for c, t in zip(claim, true, strict=True):
                difference = elementary(sympy.sympify(c - t))
                if at:
                    difference = difference.xreplace(at)
                pieces = _zero_on_every_piece(difference, deadline)
                if not pieces:
                    return None
                most = max(most, pieces)
    except (_OutOfTime, _Undecided, RecursionError):
        return None
    return most if most > 1 else None


_KINKED = (
    sympy.Heaviside,
    sympy.DiracDelta,
    sympy.sign,
    sympy.Abs,
    sympy.Max,
    sympy.Min,
    sympy.Piecewise,
)


def _zero_on_every_piece(difference: Basic, deadline: float, table=None, depth: int = 0):
    """The number of pieces, split by the sign of one kink quantity at a time (innermost kink
    functions first, so that a quantity is free of kinks when it is split on), on each of which
    `difference` simplifies to 0; None when some piece does not."""
    table = table or {}
    if time.process_time() > deadline:
        return None
    inner = [
        n
        for n in nodes([difference])
        if isinstance(n, _KINKED) and not any(isinstance(m, _KINKED) for m in nodes(n.args))
    ]
    if not inner:
        return 1 if _is_zero(difference, deadline) else None
    for n in inner:
        for q in _switches(n):
            try:
                _sign_of(q, table)
            except _Undecided:
                if depth >= _MAX_KINKS_PER_ENTRY or not q.free_symbols:
                    return None
                pieces = 0
                for side in (1, -1):
                    found = _zero_on_every_piece(
                        difference, deadline, {**table, sympy.expand(q): side}, depth + 1
                    )
                    if found is None:
                        return None
                    pieces += found
                return pieces
    try:
        resolved = difference.xreplace({n: _branch(n, table, {}) for n in inner})
    except _Infeasible:
        return 0  # no point has these signs
    return _zero_on_every_piece(resolved, deadline, table, depth)


class _Infeasible(Exception):
    pass


def _sign_of(quantity: Basic, table: Mapping[Basic, int]) -> int:
    """The sign of `quantity` on the piece `table` ({expanded kink quantity: sign})."""
    q = sympy.expand(quantity)
    if q in table:
        return table[q]
    if -q in table:
        return -table[-q]
    if q.is_number and q.is_comparable:
        return int(sympy.sign(q))
    raise _Undecided(str(q))


def _branch(e: Basic, table: Mapping[Basic, int], memo: dict) -> Basic:
    """`e` on one piece: every kink function replaced by the branch its signs select (the
    outermost first, so that a kink quantity is matched as it was found)."""
    if e in memo:
        return memo[e]
    if isinstance(e, sympy.Heaviside):
        out = sympy.Integer(1 if _sign_of(e.args[0], table) > 0 else 0)
    elif isinstance(e, sympy.DiracDelta):
        _sign_of(e.args[0], table)  # away from its point: 0
        out = sympy.Integer(0)
    elif isinstance(e, sympy.sign):
        out = sympy.Integer(_sign_of(e.args[0], table))
    elif isinstance(e, sympy.Abs):
        out = _sign_of(e.args[0], table) * _branch(e.args[0], table, memo)
    elif isinstance(e, sympy.Max | sympy.Min):
        want = 1 if isinstance(e, sympy.Max) else -1
        for a in e.args:
            if all(b is a or _sign_of(a - b, table) * want >= 0 for b in e.args):
                out = _branch(a, table, memo)
                break
        else:
            raise _Infeasible
    elif isinstance(e, sympy.Piecewise):
        for value, condition in e.args:
            truth = _truth(condition, table)
            if truth:
                out = _branch(value, table, memo)
                break
        else:
            raise _Undecided(str(e))
    elif e.args and not isinstance(e, sympy.core.relational.Relational):
        out = e.func(*(_branch(a, table, memo) for a in e.args))
    else:
        out = e
    memo[e] = out
    return out


def _truth(condition, table) -> bool:
    if condition in (True, sympy.true):
        return True
    if condition in (False, sympy.false):
        return False
    relations = {
        r: _holds(r, _sign_of(r.lhs - r.rhs, table))
        for r in nodes([condition])
        if isinstance(r, sympy.core.relational.Relational)
    }
    value = condition.xreplace({r: sympy.true if v else sympy.false for r, v in relations.items()})
    if value not in (sympy.true, sympy.false):
        raise _Undecided(str(condition))
    return value == sympy.true


def _holds(relation, sign: int) -> bool:
    """Whether `lhs REL rhs` holds where lhs - rhs has `sign` (never 0 off the kinks)."""
    if sign == 0:
        raise _Undecided(str(relation))
    op = relation.rel_op
    if op in (">", ">="):
        return sign > 0
    if op in ("<", "<="):
        return sign < 0
    if op == "==":
        return False
    if op == "!=":
        return True
    raise _Undecided(str(relation))


# --------------------------------------------------------------------------- numeric


def _numerically(
    f, claim, derivation, compiled, wrt_entries, symbols, fixed, points, seed, shown, forms
):
    """The verdict of the claim against the compiled gradient at random points (or `fixed`):
    DIFFERENT at a point where high-precision arithmetic confirms a difference, else AGREES."""
    value = scalar_function(compiled)
    true_fn = gradient_function(compiled, wrt_entries, None, symbols)
    sampler = Sampler(
        [f, *claim, *derivation.gradient_entries], symbols, seed=seed, wide=True, margin=0.0
    )
    base, rejected = sampler.points(
        points, fixed=fixed or None, valid=lambda v: [value(v), *true_fn(v)], cover=True
    )
    n = len(base[symbols[0]]) if symbols else 0
    if n == 0:
        why = rejected[0][1] if rejected else "the function has no symbols"
        raise ValueError(f"verify: no point where f and its gradient are finite ({why})")
    claim = [_off_the_point(c) for c in claim]
    claimed = np.stack([_real(c) for c in _claim_function(symbols, claim)(base)])
    true = np.stack([np.asarray(t, dtype=float) for t in true_fn(base)])
    with np.errstate(all="ignore"):
        error = np.abs(claimed - true) / np.maximum(1.0, np.maximum(np.abs(claimed), np.abs(true)))
    error = np.where(np.isfinite(claimed), error, np.inf)
    points_of = [{s: float(base[s][p]) for s in symbols} for p in range(n)]
    counterexample = _confirmed(error, claimed, true, points_of, derivation, claim, wrt_entries)
    if counterexample is None:
        counterexample = _exactly(points_of[: sampler.covering], derivation, claim, wrt_entries)
    finite = error[np.isfinite(error)]
    worst = float(finite.max()) if finite.size else float("inf")
    where = "the given point" if fixed and n == 1 and len(fixed) == len(symbols) else f"{n} points"
    covered, kinks = sampler.coverage(base)
    details = f"Compared at {where} (seed {seed})"
    details += f", on both sides of {covered} of {kinks} branch conditions." if kinks else "."
    diagnosis = ""
    if counterexample is not None:
        evidence = Evidence(base, symbols, claimed, true, claim_entries=claim, **forms)
        diagnosis = diagnose(evidence)
    if diagnosis:
        details = f"Diagnosis: {diagnosis}. {details}"
    if counterexample is None:
        details += (
            " Not a proof: a difference confined to a region no point visited (a threshold"
            " beyond the points' range, a term below 1e-40 of the values) is not seen."
        )
    notes = (f"{len(rejected)} random points rejected, e.g. {rejected[0][1]}",) if rejected else ()
    return Verdict(
        False,
        f"numeric, {where}, max error {worst:.1e}",
        counterexample=counterexample,
        details=details,
        notes=notes,
        agrees=counterexample is None,
        diagnosis=diagnosis,
        **shown,
    )


def _off_the_point(claim: Basic) -> Basic:
    """`claim` with DiracDelta(q) as 0: the points are never on q = 0."""
    if not isinstance(claim, Basic) or not claim.has(sympy.DiracDelta):
        return claim
    return claim.replace(lambda e: isinstance(e, sympy.DiracDelta), lambda e: sympy.S.Zero)


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
    """The worst float64 disagreement that high-precision arithmetic confirms, as a
    Counterexample."""
    suspects = np.argwhere(error > _SCREEN)
    # the plainest point (nearest 0) where the claim is plainly wrong (_PLAIN); else the
    # largest errors first, to a factor of 10, and among those the plainest point
    size = np.array([max(map(_plainness, p.values()), default=0.0) for p in points])
    found = error[tuple(suspects.T)] if suspects.size else np.zeros(0)
    decade = np.where(found > _PLAIN, 0.0, np.floor(np.log10(np.minimum(found, 1e300))))
    order = np.lexsort((size[suspects[:, 1]], -decade)) if suspects.size else []
    for k, p in (suspects[i] for i in list(order)[:8]):
        precise = _precise(derivation, claim, [int(k)], points[p])
        if precise is None:  # could not evaluate precisely: trust float64 when far apart
            if error[k, p] > 1e-6:
                return _counterexample(wrt_entries, k, points[p], claimed[k, p], true[k, p])
            continue
        ((c, t),) = precise
        if _differ(c, t):
            return _worst_entry(
                error, claimed, true, points, derivation, claim, wrt_entries, p
            ) or (_counterexample(wrt_entries, k, points[p], c, t))
    return None


def _plainness(v: float) -> float:
    """How hard `v` is to read in a counterexample: 1 from 0.1 to 1, |v| above, one more per
    decade below 0.1 (0 itself is plain)."""
    v = abs(v)
    return 1.0 if v == 0 else max(v, 1.0) + max(0.0, np.log10(0.1 / v))


def _worst_entry(error, claimed, true, points, derivation, claim, wrt_entries, p):
    """At point `p`, the entry where the claim differs most (in float64, a claim that is not
    finite first), confirmed in high precision; None when that fails."""
    with np.errstate(all="ignore"):
        gap = np.abs(claimed[:, p] - true[:, p])
    k = int(np.argmax(np.where(np.isfinite(gap), gap, np.inf)))
    precise = _precise(derivation, claim, [k], points[p])
    if precise is None:
        return None
    ((c, t),) = precise
    return _counterexample(wrt_entries, k, points[p], c, t) if _differ(c, t) else None


def _exactly(points, derivation, claim, wrt_entries, most: int = _EXACT_POINTS):
    """A Counterexample among `points` (those on each side of each kink first) where every
    entry is compared in high precision, however small the float64 difference: a claim off by
    1e-15, or by sigmoid(30) - sigmoid(x) beyond a threshold, is wrong."""
    entries = list(range(len(claim)))[:_EXACT_ENTRIES]
    for point in points[:most]:
        precise = _precise(derivation, claim, entries, point)
        if precise is None:
            continue
        for k, (c, t) in zip(entries, precise, strict=True):
            if _differ(c, t):
                return _counterexample(wrt_entries, k, point, c, t)
    return None


def _differ(c, t) -> bool:
    """Whether claimed `c` and true `t` (floats or high-precision Floats) differ for real."""
    if not (sympy.sympify(c).is_finite and sympy.sympify(t).is_finite):
        return bool(sympy.sympify(t).is_finite)
    return bool(abs(c - t) > _EXACT_TOLERANCE * max(1, abs(c), abs(t)))


def _real_number(value: Basic):
    """`value` as a real Float, or None when it is not a number or has an imaginary part."""
    if not value.is_number:
        return None
    re, im = value.as_real_imag()
    if im != 0 and abs(im) > 1e-30:
        return None
    return re


def _counterexample(wrt_entries, k, point, claimed, true) -> Counterexample:
    w, index = wrt_entries[k]
    return Counterexample(point, w, index, float(claimed), float(true), float(claimed - true))


def _precise(derivation, claim: list[Basic], entries: list[int], point: Mapping[Symbol, float]):
    """[(claimed, true)] for `entries` at `point` in high precision, or None when that fails.

    The values are SymPy Floats of that precision, so a difference far below float64's
    resolution survives."""
    try:
        by_name = {s.name: sympy.Float(v, _DIGITS) for s, v in point.items()}
        env: dict[Basic, Basic] = {leaf: by_name[leaf.name] for leaf in derivation.program.leaves}
        for step in derivation.steps:
            env[step.name] = _off_the_point(step.rhs).xreplace(env).evalf(_DIGITS)
        out = []
        for k in entries:
            g = _off_the_point(sympy.sympify(derivation.gradient_entries[k]))
            values = {s: by_name[s.name] for s in claim[k].free_symbols if s.name in by_name}
            pair = [
                _real_number(e.evalf(_DIGITS)) for e in (claim[k].xreplace(values), g.xreplace(env))
            ]
            if None in pair:
                return None
            out.append(tuple(pair))
    except (TypeError, ValueError, ArithmeticError, KeyError, RecursionError):
        return None
    return out
