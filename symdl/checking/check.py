"""Numerical gradient checks: central differences, complex step and Richardson extrapolation
of the compiled function, against symdl's gradient or one the caller gives, at points chosen
away from kinks and inside every domain (symdl/checking/sampling.py).
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import sympy
from sympy import Symbol

from symdl.checking.claims import explicit, parse_claim, symbols_of, wrt_entries_of
from symdl.checking.numeric import (
    PointByPoint,
    complex_function,
    gradient_function,
    holds_written_out_matrix,
    intermediate_scale,
    scalar_function,
)
from symdl.checking.sampling import Sampler, numeric_point
from symdl.core.calculus import derive
from symdl.parsing.namespace import namespace_of

METHODS = ("central", "complex", "richardson")
_EPS = np.finfo(float).eps
_DEFAULT_RTOL = {"central": 1e-6, "richardson": 1e-9, "complex": 1e-11}


class GradientMismatch(AssertionError):
    """A gradient disagrees with numerical differentiation (raised by `GradCheck.assert_ok`)."""


@dataclass(frozen=True)
class EntryCheck:
    """One gradient entry at one point: the symbolic and numerical values and their errors."""

    wrt: Symbol
    index: tuple[int, ...]
    point: Mapping[Symbol, float]
    symbolic: float
    numeric: float
    tolerance: float

    @property
    def abs_error(self) -> float:
        return float(abs(self.symbolic - self.numeric))

    @property
    def rel_error(self) -> float:
        """|symbolic - numeric| / max(|symbolic|, |numeric|), 0 when both are 0."""
        scale = max(abs(self.symbolic), abs(self.numeric))
        return self.abs_error / scale if scale > 0 else 0.0

    @property
    def error(self) -> float:
        """The relative error, measured against 1 for entries below 1 in magnitude."""
        return self.abs_error / max(1.0, abs(self.symbolic), abs(self.numeric))

    @property
    def ok(self) -> bool:
        return bool(np.isfinite(self.symbolic)) and self.abs_error <= self.tolerance

    @property
    def badness(self) -> float:
        if not self.ok and not np.isfinite(self.abs_error):
            return np.inf
        return self.abs_error / self.tolerance if self.tolerance > 0 else np.inf

    def label(self) -> str:
        """The variable, with its [row, column] when it is an entry of a matrix."""
        return f"{self.wrt}" + (f" {list(self.index)}" if len(self.index) == 2 else "")


@dataclass(frozen=True)
class GradCheck:
    """The outcome of `check_grad`: truthy when every entry at every point is within tolerance."""

    entries: tuple[EntryCheck, ...]
    points: tuple[Mapping[Symbol, float], ...]
    method: str
    rtol: float
    rejected: tuple[tuple[Mapping[Symbol, float], str], ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)

    def __bool__(self) -> bool:
        return all(e.ok for e in self.entries)

    @property
    def ok(self) -> bool:
        """Whether every entry at every point is within tolerance (the same as `bool`)."""
        return bool(self)

    @property
    def worst(self) -> EntryCheck:
        """The entry furthest outside (or least inside) its tolerance."""
        return max(self.entries, key=lambda e: e.badness)

    @property
    def point(self) -> Mapping[Symbol, float]:
        """The point of the worst entry."""
        return self.worst.point

    @property
    def max_abs_error(self) -> float:
        """The largest |symbolic - numeric| over entries and points."""
        return max(e.abs_error for e in self.entries)

    @property
    def max_rel_error(self) -> float:
        """The largest |symbolic - numeric| / max(|symbolic|, |numeric|)."""
        return max(e.rel_error for e in self.entries)

    @property
    def max_error(self) -> float:
        """The largest relative error, each measured against 1 for entries below 1."""
        return max(e.error for e in self.entries)

    def per_entry(self) -> list[EntryCheck]:
        """For each gradient entry, its check at the point where it is worst."""
        worst: dict[tuple, EntryCheck] = {}
        for e in self.entries:
            key = (e.wrt, e.index)
            if key not in worst or e.badness > worst[key].badness:
                worst[key] = e
        return list(worst.values())

    def summary(self) -> str:
        """One line: holds or FAILS, the method, the worst entry with both values and the point."""
        w = self.worst
        verdict = "holds" if self else "FAILS"
        return (
            f"gradient check {verdict} ({self.method}, {len(self.points)} point"
            f"{'s' * (len(self.points) != 1)}, rtol {self.rtol:g}): worst entry {w.label()}: "
            f"symbolic {_number(w.symbolic)}, numeric {_number(w.numeric)}, abs error {w.abs_error:.2e}, "
            f"rel error {w.rel_error:.2e}, tolerance {w.tolerance:.2e}, at {_point_text(w.point)}"
        )

    def report(self) -> str:
        """A table with one row per gradient entry (at its worst point), then notes."""
        rows = [("entry", "symbolic", "numeric", "abs error", "rel error", "tolerance", "")]
        for e in self.per_entry():
            rows.append(
                (
                    e.label(),
                    _number(e.symbolic),
                    _number(e.numeric),
                    f"{e.abs_error:.2e}",
                    f"{e.rel_error:.2e}",
                    f"{e.tolerance:.2e}",
                    "ok" if e.ok else "MISMATCH",
                )
            )
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = [self.summary(), ""]
        lines += [
            "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
        ]
        lines += [f"note: {n}" for n in self.notes]
        lines += rejections(self.rejected)
        return "\n".join(lines)

    def assert_ok(self) -> GradCheck:
        """Raise GradientMismatch naming the worst entry, both values and the point, unless ok."""
        if not self:
            raise GradientMismatch(self.report())
        return self

    def __str__(self) -> str:
        return self.summary()

    def _repr_html_(self) -> str:
        def row(cells, tag="td"):
            return "<tr>" + "".join(f"<{tag}>{html.escape(c)}</{tag}>" for c in cells) + "</tr>"

        head = row(("entry", "symbolic", "numeric", "abs error", "rel error", ""), "th")
        rows = "".join(
            row(
                (
                    e.label(),
                    _number(e.symbolic),
                    _number(e.numeric),
                    f"{e.abs_error:.2e}",
                    f"{e.rel_error:.2e}",
                    "ok" if e.ok else "MISMATCH",
                )
            )
            for e in self.per_entry()
        )
        return f"<p>{html.escape(self.summary())}</p><table>{head}{rows}</table>"

    def _repr_latex_(self) -> str:
        w = self.worst
        status = r"\checkmark" if self else r"\times"
        return (
            rf"$${status}\ \text{{{self.method}}}:\ \max \frac{{|g - \hat g|}}{{\max(1, |g|)}} = "
            rf"{_latex_number(self.max_error)}\ (\text{{worst: }} {sympy.latex(w.wrt)})$$"
        )


def rejections(rejected) -> list[str]:
    """Rejected points counted by reason, each with its first example."""
    kinds: dict[str, list] = {}
    for point, why in rejected:
        kinds.setdefault(why.split(" (")[0], []).append((point, why))
    return [
        f"{len(cases)} candidate point{'s' * (len(cases) > 1)} rejected, {kind}: e.g. {_point_text(cases[0][0])}"
        + (f" ({cases[0][1].split(' (', 1)[1]}" if " (" in cases[0][1] else "")
        for kind, cases in kinds.items()
    ]


def _number(x: float) -> str:
    return f"{x + 0.0:.10g}"  # + 0.0: no "-0"


def _latex_number(x: float) -> str:
    mantissa, exponent = f"{x:.2e}".split("e")
    return rf"{mantissa} \times 10^{{{int(exponent)}}}"


def _point_text(point: Mapping[Symbol, float]) -> str:
    return "{" + ", ".join(f"{s}: {v:.6g}" for s, v in point.items()) + "}"


def check_grad(
    f,
    wrt,
    grad=None,
    *,
    at: Mapping | None = None,
    method: str = "central",
    points: int = 5,
    rtol: float | None = None,
    atol: float = 0.0,
    seed: int = 0,
) -> GradCheck:
    """Compare a gradient with numerical differentiation of the compiled `f` in float64.

    Args:
        f: a scalar SymPy expression.
        wrt: a Symbol, a sequence of Symbols or MatrixSymbols, a Matrix of Symbols or a
            MatrixSymbol (checked entry by entry).
        grad: the gradient to check, shaped like `wrt` (SymPy objects or text, parsed
            safely); symdl's own reverse-mode gradient by default.
        at: one point ``{symbol or name: value}`` (a Matrix key takes an array); symbols it
            leaves out are drawn at random. By default `points` random points.
        method: "central" (step per entry from the magnitude of the point), "complex"
            (complex step, error near 1e-15; piecewise functions pick each branch by the real
            part, valid away from kinks) or "richardson" (central differences extrapolated
            from steps h, h/2, h/4).
        points: how many random points.
        rtol, atol: an entry passes when |symbolic - numeric| <= atol + rtol * max(|symbolic|,
            |numeric|) + the rounding error of the difference; rtol defaults to 1e-6
            (central), 1e-9 (richardson), 1e-11 (complex).
        seed: seed of the random points (checks are reproducible).

    Returns:
        A GradCheck: truthy when it holds; `.worst`, `.report()`, `.assert_ok()`.

    Raises:
        ValueError: unknown method, or no admissible point (every candidate at a kink or
            outside the domain).

    >>> import sympy, symdl as sd
    >>> x, y = sympy.symbols("x y")
    >>> bool(sd.check_grad(x**2 * y, [x, y]))
    True
    >>> check = sd.check_grad(x**2 * y, [x, y], grad=[2*x*y, x])
    >>> bool(check), check.worst.wrt
    (False, y)
    """
    if method not in METHODS:
        raise ValueError(f"check_grad: method {method!r} is not one of {', '.join(METHODS)}")
    f_given, wrt_given = f, wrt
    f, wrt, write = explicit(f, wrt)
    spread = isinstance(wrt, list | tuple) and any(isinstance(w, sympy.MatrixBase) for w in wrt)
    wrt = _flat(wrt) if spread else wrt
    wrt_entries = wrt_entries_of(wrt)
    derivation = derive(f, wrt)
    compiled = derivation.compile()
    if holds_written_out_matrix(derivation.program):
        compiled = PointByPoint(compiled)
    symbols = symbols_of(f, wrt_entries, compiled)
    value = scalar_function(compiled)
    if isinstance(grad, str | list | tuple):
        grad = parse_claim(grad, namespace_of(f_given, wrt_given))
    grad = _flat(write(grad)) if spread else write(grad)
    gradient = gradient_function(compiled, wrt_entries, grad, symbols)
    notes = ()
    if method == "complex":
        complex_value, note = complex_function(f, symbols)
        notes = (note,)
    fixed = numeric_point(at, symbols) if at else None
    base, rejected = _points(f, symbols, value, gradient, wrt_entries, method, fixed, points, seed)
    offsets = _offsets(base, wrt_entries, method)
    if method == "complex":
        numeric, spread = _complex_step(complex_value, base, wrt_entries, offsets)
    else:
        numeric, spread = _differences(value, base, wrt_entries, offsets, method)
    symbolic = np.stack([np.asarray(g, dtype=float) for g in gradient(base)], axis=1)
    scale = np.maximum(1.0, intermediate_scale(derivation.program, symbols)(base))[:, None]
    rounding = _ROUNDING[method] * _EPS * scale / np.abs(offsets).min(axis=-1)
    rounding += 1000 * _EPS * np.maximum(scale, np.max(np.abs(symbolic), axis=1, keepdims=True))
    rtol = _DEFAULT_RTOL[method] if rtol is None else rtol
    tolerance = atol + rtol * np.maximum(np.abs(symbolic), np.abs(numeric)) + 4 * spread + rounding
    chosen = [{s: float(base[s][p]) for s in symbols} for p in range(symbolic.shape[0])]
    entries = [
        EntryCheck(
            w, index, point, float(symbolic[p, k]), float(numeric[p, k]), float(tolerance[p, k])
        )
        for p, point in enumerate(chosen)
        for k, (w, index) in enumerate(wrt_entries)
    ]
    return GradCheck(tuple(entries), tuple(chosen), method, rtol, tuple(rejected), notes)


def _flat(parts):
    """A sequence of variables (or of their gradients) with each written-out matrix spread
    into its entries, row by row: ``[X, b]`` checks every entry of X, then b."""
    if not isinstance(parts, list | tuple):
        return parts
    return [e for p in parts for e in (list(p) if isinstance(p, sympy.MatrixBase) else [p])]


def _points(f, symbols, value, gradient, wrt_entries, method, fixed, points, seed):
    """Admissible points: off kinks, inside domains, f and its gradient finite, and (for
    differences) every step on the same side of every kink with f finite there."""
    sampler = Sampler([f], symbols, seed=seed)

    def finite(values):
        arrays = [value(values), *gradient(values)]
        if method != "complex":
            shifted = _shifted(values, wrt_entries, _offsets(values, wrt_entries, method))
            arrays.append(value(shifted).reshape(len(arrays[0]), -1))
        return arrays

    def crossing(values):
        if method == "complex":  # an imaginary step crosses nothing
            return [None] * len(next(iter(values.values())))
        shifted = _shifted(values, wrt_entries, _offsets(values, wrt_entries, method))
        return sampler.same_side(values, shifted)

    n = 1 if fixed else points
    base, rejected = sampler.points(n, fixed=fixed, valid=finite, also=crossing)
    if not len(base[symbols[0]]):
        raise ValueError("check_grad: " + _no_point(rejected, fixed))
    return base, rejected


# Rounding error of a difference quotient, in units of eps M / h, M the largest input or
# intermediate value (or 1); the tolerance adds the spread between step sizes (an estimate of
# the numerical error) and 1000 eps times M or the largest entry: both gradients round values of
# the scale M, so an entry far below M carries an absolute, not a relative, rounding error.
_ROUNDING = {"central": 16.0, "richardson": 106.0, "complex": 0.0}


def _offsets(base: dict, wrt_entries, method: str) -> np.ndarray:
    """Steps (n points, m entries, k evaluations): +-h, +-2h for central, +-h, +-h/2, +-h/4 for
    Richardson, i h for complex step; h scales with max(1, |x|)."""
    x = np.stack([base[w] for w, _ in wrt_entries], axis=-1)
    scale = np.maximum(1.0, np.abs(x))[..., None]
    if method == "central":
        return scale * _EPS ** (1 / 3) * np.array([1.0, -1.0, 2.0, -2.0])
    if method == "richardson":
        return scale * 2.0**-9 * np.array([1.0, -1.0, 0.5, -0.5, 0.25, -0.25])
    return scale * 1e-20 * np.array([1j])


def _shifted(base: dict, wrt_entries, offsets: np.ndarray) -> dict:
    """The point `base` copied once per (entry, step), entry k moved by its step."""
    n, m, k = offsets.shape
    dtype = complex if np.iscomplexobj(offsets) else float
    shifted = {
        s: np.broadcast_to(np.asarray(v, dtype=dtype)[:, None, None], (n, m, k))
        for s, v in base.items()
    }
    for j, (w, _) in enumerate(wrt_entries):
        moved = shifted[w].copy() if not shifted[w].flags.writeable else shifted[w]
        moved[:, j, :] = moved[:, j, :] + offsets[:, j, :]
        shifted[w] = moved
    return shifted


def _differences(value, base: dict, wrt_entries, offsets: np.ndarray, method: str):
    """The derivative estimates (n, m) and their spread between step sizes."""
    shifted = _shifted(base, wrt_entries, offsets)
    f = value(shifted)
    x = np.stack([shifted[w][:, j, :] for j, (w, _) in enumerate(wrt_entries)], axis=1)
    levels = [
        (f[..., i] - f[..., i + 1]) / (x[..., i] - x[..., i + 1])  # the steps as represented
        for i in range(0, offsets.shape[-1], 2)
    ]
    if method == "central":
        return levels[0], np.abs(levels[0] - levels[1])
    d1, d2, d4 = levels
    best = (64 * d4 - 20 * d2 + d1) / 45  # two Richardson steps: error O(h^6)
    return best, np.abs(best - (4 * d4 - d2) / 3)


def _complex_step(value, base: dict, wrt_entries, offsets: np.ndarray) -> np.ndarray:
    f = value(_shifted(base, wrt_entries, offsets))
    derivative = f[..., 0].imag / offsets[..., 0].imag
    return derivative, np.zeros_like(derivative)


def _no_point(rejected, fixed) -> str:
    if not rejected:
        return "the function has no symbols to sample"
    where = "the given point is" if fixed else "every random point tried was"
    return f"{where} rejected: {rejected[0][1]}; pass at= a point away from it"
