"""Points for numerical checks: random, away from kinks, inside every domain, and on both sides
of each branch of a piecewise function (ReLU, max, |x|, Heaviside, Piecewise)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

import numpy as np
import sympy
from sympy import Basic, Dummy, MatrixBase, Symbol

from symdl.checking.claims import entry_name
from symdl.compile.codegen import SymdlNumPyPrinter
from symdl.core.time_limit import time_limit
from symdl.ops import Op, elementary

KINK_MARGIN = 1e-6  # |quantity| below this counts as sitting on the kink
MAGNITUDE = 3  # points reach |x| = 10**MAGNITUDE, not only the neighbourhood of 0
_SOLVE_BUDGET = 0.25  # CPU seconds to solve one kink condition for one symbol
_SOLVED_KINKS = 24  # kink conditions solved at most


class _OutOfTime(BaseException):  # not an Exception: SymPy's `except Exception` must not eat it
    pass


def _time_limit(seconds: float):
    """Raise _OutOfTime in the block after `seconds` (see symdl.core.time_limit)."""
    return time_limit(seconds, _OutOfTime)


def breakpoints(quantity: Basic, symbols: Sequence[Symbol]) -> list[tuple[Symbol, Basic]]:
    """[(s, root)]: where `quantity` = 0, solved for each symbol s of it in terms of the others
    (linear and quadratic ones exactly, others by sympy.solve within a short time budget);
    real roots only, none when solving fails or takes too long."""
    q = elementary(sympy.sympify(quantity))
    found = []
    for s in [s for s in symbols if s in q.free_symbols]:
        try:
            with _time_limit(_SOLVE_BUDGET):
                if q.is_polynomial(s) and sympy.degree(q, s) <= 2:
                    roots = sympy.solve(q, s)
                elif len(nodes([q])) <= 60:
                    roots = sympy.solve(q, s)
                else:
                    roots = []
        except (_OutOfTime, Exception):  # an unsolvable condition is simply not solved
            continue
        for r in roots[:4]:
            if isinstance(r, Basic) and not r.has(sympy.I) and r.free_symbols <= set(symbols):
                found.append((s, r))
    return found


_MAX_REGION_KINKS = 6  # 2**6 sign patterns at most
_BOX = 1e4  # regions are looked for within |x| <= _BOX


def _low_degree(q: Basic, symbols: Sequence[Symbol]) -> bool:
    """Whether `q` is a polynomial of degree at most 2 in each of its symbols (fast to solve)."""
    free = [s for s in symbols if s in q.free_symbols]
    try:
        return bool(free) and all(q.is_polynomial(s) and sympy.degree(q, s) <= 2 for s in free)
    except sympy.PolynomialError:
        return False


def _regions(kinks: Sequence[Basic], symbols: Sequence[Symbol]) -> list[dict[Symbol, float]]:
    """A point well inside each nonempty region that affine kink quantities cut the space into
    (Min(x, y, 500): x > 500 with y > x too), found by a linear program per sign pattern; none
    when a kink is not affine or there are too many."""
    from scipy.optimize import linprog

    affine = []
    for q in kinks:
        free = [s for s in symbols if s in q.free_symbols]
        try:
            poly = sympy.Poly(q, *free)
        except (sympy.PolynomialError, sympy.GeneratorsNeeded):
            return []
        if poly.total_degree() > 1:
            return []
        affine.append(q)
    if not 2 <= len(affine) <= _MAX_REGION_KINKS:
        return []
    used = [s for s in symbols if any(s in q.free_symbols for q in affine)]
    A = np.array([[float(q.coeff(s)) for s in used] for q in affine])
    b = np.array([float(q.xreplace(dict.fromkeys(used, 0))) for q in affine])
    found = []
    for pattern in range(2 ** len(affine)):
        sign = np.array([1.0 if pattern >> k & 1 else -1.0 for k in range(len(affine))])
        # maximise t: sign_k (A_k x + b_k) >= t, |x| <= _BOX, t <= 1
        A_ub = np.hstack([-sign[:, None] * A, np.ones((len(affine), 1))])
        result = linprog(
            np.r_[np.zeros(len(used)), -1.0],
            A_ub=A_ub,
            b_ub=sign * b,
            bounds=[(-_BOX, _BOX)] * len(used) + [(None, 1.0)],
            method="highs",
        )
        if result.status == 0 and -result.fun > 1e-3:
            found.append(dict(zip(used, result.x[:-1], strict=True)))
    return found


def nodes(exprs: Iterable) -> list[Basic]:
    """Every distinct subexpression of `exprs`, each once (a tree walk can be exponential)."""
    seen: dict[Basic, None] = {}
    stack = [e for e in exprs if isinstance(e, Basic)]
    while stack:
        e = stack.pop()
        if e in seen:
            continue
        seen[e] = None
        stack.extend(a for a in e.args if a not in seen)
    return list(seen)


def _own(node: Basic) -> Basic:
    """The elementary definition of op `node` on placeholders, so its arguments stay opaque."""
    dummies = [a if a.is_number else Dummy() for a in node.args]  # softmax's entry index stays
    return node.func(*dummies).definition(), {
        d: a for d, a in zip(dummies, node.args, strict=True) if d is not a
    }


def _switches(node: Basic) -> list[Basic]:
    """Quantities whose sign selects a branch of `node` (relu(x): x; Max(a, b): a - b)."""
    if isinstance(node, Op):
        definition, back = _own(node)
        found = [q for n in nodes([definition]) for q in _switches(n)]
        return [q.xreplace(back) for q in found]
    if isinstance(node, sympy.Heaviside | sympy.sign | sympy.Abs | sympy.DiracDelta):
        return [node.args[0]]
    if isinstance(node, sympy.Max | sympy.Min):
        a = node.args
        differences = [a[i] - a[j] for i in range(len(a)) for j in range(i + 1, len(a))]
        return [-d if d.could_extract_minus_sign() else d for d in differences]
    if isinstance(node, sympy.Piecewise):
        conditions = [c for _, c in node.args if isinstance(c, Basic)]
        return [
            r.lhs - r.rhs
            for c in conditions
            for r in nodes([c])
            if isinstance(r, sympy.core.relational.Relational)
        ]
    return []


_SATURATING = (sympy.exp, sympy.tanh, sympy.erf, sympy.atan, sympy.sinh, sympy.cosh)


def _centres(node: Basic) -> list[Basic]:
    """Quantities around whose zero a smooth function changes regime (sigmoid(x - 300) is flat
    on either side of x = 300, log(1 + exp(x - 600)) bends at 600): places to look, not kinks."""
    if isinstance(node, Op):
        definition, back = _own(node)
        return [q.xreplace(back) for n in nodes([definition]) for q in _centres(n)]
    if isinstance(node, _SATURATING) and node.args[0].free_symbols:
        return [node.args[0]]
    if isinstance(node, sympy.Add):  # e^u + e^v changes from one to the other at u = v
        powers = [
            e.args[0] for a in node.args for e in sympy.Mul.make_args(a) if e.func == sympy.exp
        ]
        pairs = [u - v for i, u in enumerate(powers) for v in powers[i + 1 :]]
        return [q for q in pairs if q.free_symbols]
    return []


def _domains(node: Basic) -> list[tuple[Basic, bool]]:
    """Quantities that must be positive (log, fractional powers) or nonzero (negative powers)."""
    if isinstance(node, Op):
        definition, back = _own(node)
        return [
            (q.xreplace(back), strict) for n in nodes([definition]) for q, strict in _domains(n)
        ]
    if isinstance(node, sympy.log):
        return [(node.args[0], True)]
    if isinstance(node, sympy.Pow) and node.exp.is_number and not node.base.is_number:
        if not node.exp.is_integer:
            return [(node.base, True)]
        if node.exp.is_negative:
            return [(node.base, False)]
    return []


def conditions(exprs: Sequence[Basic]):
    """(kinks, domains) of `exprs`: [(source, quantity)] and [(source, quantity, positive)]."""
    kinks, domains, seen = [], [], set()
    for node in nodes(exprs):
        for q in _switches(node):
            if q.free_symbols and q not in seen and -q not in seen:
                seen.add(q)
                kinks.append((node, q))
        for q, positive in _domains(node):
            if q.free_symbols and (q, positive) not in seen:
                seen.add((q, positive))
                domains.append((node, q, positive))
    return kinks, domains


def lambdified(
    symbols: Sequence[Symbol], exprs: Sequence[Basic], printer=SymdlNumPyPrinter
) -> Callable:
    """`values -> [array per expr]` in NumPy, broadcast over the batch shape of `values`."""
    symbols = list(symbols)
    exprs = [sympy.sympify(e) for e in exprs]
    if not exprs:
        return lambda values: []
    f = sympy.lambdify(
        symbols, exprs, modules=["scipy", "numpy"], printer=printer, cse=len(exprs) > 1
    )

    def evaluate(values: Mapping[Symbol, np.ndarray]) -> list[np.ndarray]:
        args = [values[s] for s in symbols]
        shape = np.broadcast_shapes(*(np.shape(a) for a in args)) if args else ()
        with np.errstate(all="ignore"):
            out = f(*args)
        return [np.broadcast_to(np.asarray(o), shape) for o in out]

    return evaluate


def numeric_point(at: Mapping, symbols: Sequence[Symbol]) -> dict[Symbol, float]:
    """`at` (keys: symbols, their names, Matrices or MatrixSymbols) as {symbol: float}."""
    by_name = {s.name: s for s in symbols}
    point: dict[Symbol, float] = {}
    for key, value in at.items():
        if isinstance(key, MatrixBase | sympy.MatrixSymbol):
            keys = list(sympy.Matrix(key)) if isinstance(key, MatrixBase) else None
            values = np.asarray(value, dtype=float)
            if keys is None:
                keys = [
                    by_name.get(entry_name(key, i, j))
                    for i in range(key.shape[0])
                    for j in range(key.shape[1])
                ]
            if values.size != len(keys):
                raise ValueError(
                    f"at: {key} has {len(keys)} entries but its value has {values.size}"
                )
            pairs = zip(keys, values.ravel(), strict=True)
        else:
            pairs = [(key, value)]
        for k, v in pairs:
            name = k.name if isinstance(k, Symbol) else str(k)
            if name not in by_name:
                raise ValueError(f"at: {k} is not a symbol of the function ({', '.join(by_name)})")
            v = float(v)
            if not np.isfinite(v):
                raise ValueError(f"at: the value of {k} is {v}, not a finite number")
            point[by_name[name]] = v
    return point


def _draw(symbol: Symbol, n: int, rng: np.random.Generator, wide: bool = False) -> np.ndarray:
    """A mixture of scales and signs, so each branch of a piecewise function gets visited."""
    parts = np.stack(
        [
            rng.normal(0.0, 1.0, n),
            rng.uniform(-3.0, 3.0, n),
            rng.uniform(0.0, 1.0, n),
            rng.uniform(-1.0, 0.0, n),
            rng.choice([-1.0, 1.0], n) * rng.uniform(1.0, 4.0, n),
        ]
        + ([rng.choice([-1.0, 1.0], n) * 10.0 ** rng.uniform(0.0, MAGNITUDE, n)] if wide else [])
    )
    x = parts[rng.integers(0, len(parts), n), np.arange(n)]
    if symbol.is_integer:
        x = np.rint(2 * x)
    if symbol.is_positive:
        x = np.abs(x) + (1.0 if symbol.is_integer else 1e-2)
    elif symbol.is_nonnegative:
        x = np.abs(x)
    elif symbol.is_negative:
        x = -np.abs(x) - (1.0 if symbol.is_integer else 1e-2)
    elif symbol.is_nonpositive:
        x = -np.abs(x)
    return x


class Sampler:
    """Random points for the symbols of `exprs`, off their kinks and inside their domains."""

    def __init__(
        self,
        exprs: Sequence[Basic],
        symbols: Sequence[Symbol],
        seed: int = 0,
        wide: bool = False,
        margin: float = KINK_MARGIN,
    ):
        """`wide`: also draw magnitudes up to 10**MAGNITUDE and points either side of each
        solved breakpoint (verify's search for a difference); `margin`: |kink quantity| below
        it counts as on the kink (finite differences need room, an exact comparison does not)."""
        self.symbols = list(symbols)
        self.wide, self.margin = wide, margin
        self.kinks, self.domains = conditions(list(exprs))
        self._kink_values = lambdified(self.symbols, [q for _, q in self.kinks])
        self._domain_values = lambdified(self.symbols, [q for _, q, _ in self.domains])
        self.rng = np.random.default_rng(seed)
        kinks = self.kinks[:_SOLVED_KINKS] if wide else []
        roots = [r for _, q in kinks for r in breakpoints(q, self.symbols)]
        if wide:  # the centres of saturating functions, those that solve at once
            centres = [q for n in nodes(list(exprs)) for q in _centres(n)]
            centres = [q for q in dict.fromkeys(centres) if _low_degree(q, self.symbols)]
            roots += [
                r
                for q in centres[: _SOLVED_KINKS - len(kinks)]
                for r in breakpoints(q, self.symbols)
            ]
        self._roots = [(s, lambdified(self.symbols, [r])) for s, r in roots]
        self._regions = _regions([q for _, q in self.kinks], self.symbols) if wide else []
        self.covering = 0  # the first points returned: one on each side of each kink

    def near_breakpoints(self, fixed: Mapping[Symbol, float] | None) -> dict[Symbol, np.ndarray]:
        """Points just either side of each solved breakpoint, and a little further away."""
        fixed = fixed or {}
        parts = []
        for region in self._regions:  # first (few): a point inside each region of the kinks
            point = self.draw(1, fixed)
            if any(s in fixed for s in region):
                continue
            point.update({s: np.array([v]) for s, v in region.items()})
            parts.append(point)
        for s, root in self._roots:
            if s in fixed:
                continue
            base = self.draw(4, fixed)
            r = np.asarray(root(base)[0], dtype=complex)
            r = np.where(np.abs(r.imag) < 1e-12, r.real, np.nan)
            for step in (1e-3, 0.25):
                for side in (-1.0, 1.0):
                    moved = dict(base)
                    moved[s] = r + side * step * np.maximum(1.0, np.abs(r))
                    parts.append(moved)
        parts = [p for p in parts if np.all(np.isfinite(p[next(iter(p))]))]
        if not parts:
            return {}
        out = {s: np.concatenate([p[s] for p in parts]) for s in self.symbols}
        keep = np.all([np.isfinite(v) for v in out.values()], axis=0)
        return {s: v[keep] for s, v in out.items()}

    def draw(self, n: int, fixed: Mapping[Symbol, float] | None = None) -> dict[Symbol, np.ndarray]:
        fixed = fixed or {}
        return {
            s: np.full(n, fixed[s]) if s in fixed else _draw(s, n, self.rng, self.wide)
            for s in self.symbols
        }

    def screen(self, values: dict[Symbol, np.ndarray]) -> list[str | None]:
        """For each candidate, None when admissible, else why not."""
        n = len(next(iter(values.values()))) if values else 1
        why: list[str | None] = [None] * n
        for (source, q), v in zip(self.kinks, self._kink_values(values), strict=True):
            bad = ~(np.abs(v) > self.margin)
            for i in np.flatnonzero(bad):
                why[i] = (
                    why[i] or f"at the kink of {_short(source)} ({_short(q)} = {v[i] + 0.0:.2g})"
                )
        for (source, q, positive), v in zip(self.domains, self._domain_values(values), strict=True):
            bad = ~(v > 0) if positive else ~(np.abs(v) > 1e-300)
            for i in np.flatnonzero(bad):
                need = "positive" if positive else "nonzero"
                why[i] = (
                    why[i]
                    or f"outside the domain of {_short(source)} ({_short(q)} = {v[i]:.2g}, must be {need})"
                )
        return why

    def same_side(self, base: dict, shifted: dict) -> list[str | None]:
        """Why each base point (axis 0 of `shifted`) has a shifted copy across a kink, or None."""
        n = len(next(iter(base.values())))
        why: list[str | None] = [None] * n
        here = self._kink_values(base)
        there = self._kink_values(shifted)
        for (source, _), a, b in zip(self.kinks, here, there, strict=True):
            b = b.reshape(n, -1)
            crossed = np.any(np.sign(b) != np.sign(a)[:, None], axis=1)
            for i in np.flatnonzero(crossed):
                why[i] = why[i] or f"a finite-difference step crosses the kink of {_short(source)}"
        return why

    def points(
        self,
        n: int,
        fixed: Mapping[Symbol, float] | None = None,
        valid: Callable | None = None,
        also: Callable | None = None,
        cover: bool = False,
    ) -> tuple[dict[Symbol, np.ndarray], list[tuple[dict, str]]]:
        """`n` admissible points (one when `fixed` gives every symbol) and the rejected ones.

        `valid(values)` returns arrays that must be finite there (the function, its gradient);
        `also(values)` further reasons to reject; `cover` picks points on both sides of each kink.
        """
        if fixed and all(s in fixed for s in self.symbols):
            n, batch, rounds = 1, 1, 1
        else:
            batch, rounds = max(4 * n, 64), 10
        accepted: list[dict] = []
        rejected: list[tuple[dict, str]] = []
        drawn = batch
        for round_ in range(rounds):
            values = self.draw(drawn, fixed)
            near = self.near_breakpoints(fixed) if round_ == 0 and rounds > 1 else {}
            if near and len(next(iter(near.values()))):
                values = {s: np.concatenate([near[s], values[s]]) for s in self.symbols}
            batch = len(next(iter(values.values()))) if values else batch
            why = self.screen(values)
            if valid is not None:
                finite = np.all(
                    [
                        np.isfinite(np.asarray(v)).reshape(batch, -1).all(axis=1)
                        for v in valid(values)
                    ],
                    axis=0,
                )
                why = [
                    w or (None if ok else "the function or its gradient is not finite here")
                    for w, ok in zip(why, finite, strict=True)
                ]
            if also is not None:
                why = [w or a for w, a in zip(why, also(values), strict=True)]
            for i, w in enumerate(why):
                point = {s: float(v[i]) for s, v in values.items()}
                (accepted.append(point) if w is None else rejected.append((point, w)))
            if len(accepted) >= (4 * n if cover else n):
                break
        chosen = self._covering(accepted, n) if cover else accepted[:n]
        return {s: np.array([p[s] for p in chosen], dtype=float) for s in self.symbols}, rejected

    def _covering(self, accepted: list[dict], n: int) -> list[dict]:
        if not accepted or not self.kinks:
            self.covering = min(n, 4)
            return accepted[:n]
        values = {s: np.array([p[s] for p in accepted]) for s in self.symbols}
        signs = np.sign(np.array(self._kink_values(values)))  # kinks x candidates
        chosen: list[int] = []
        for k in range(signs.shape[0]):
            for side in (-1.0, 1.0):
                if any(signs[k, i] == side for i in chosen):
                    continue
                hits = np.flatnonzero(signs[k] == side)
                if hits.size:
                    chosen.append(int(hits[0]))
        chosen = list(dict.fromkeys(chosen))
        self.covering = len(chosen)
        rest = [i for i in range(len(accepted)) if i not in set(chosen)]
        return [accepted[i] for i in (chosen + rest)[: max(n, len(chosen))]]

    def coverage(self, values: dict[Symbol, np.ndarray]) -> tuple[int, int]:
        """(kinks seen on both sides at `values`, kinks)."""
        if not self.kinks or not values:
            return 0, len(self.kinks)
        signs = [np.sign(v) for v in self._kink_values(values)]
        return sum(bool(np.any(s > 0) and np.any(s < 0)) for s in signs), len(self.kinks)


def _short(expr, width: int = 60) -> str:
    text = str(expr)
    return text if len(text) <= width else text[: width - 3] + "..."
