"""The likely mistake in a wrong claimed gradient, named only when it is checked: the true
derivative is altered the way a classic mistake alters it (a term dropped or added, a factor
dropped such as sigma' or 1/N, a transpose forgotten or extra, the whole times a constant) and
the altered form must agree with the claim at every point the verdict compared (8 at least);
else nothing is said."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

import numpy as np
import sympy
from sympy import Basic
from sympy.matrices.expressions import MatrixExpr
from sympy.matrices.expressions.matexpr import MatrixElement

from symdl.checking.sampling import lambdified, nodes
from symdl.ops.activations import sigmoid

BUDGET = 2.0  # CPU seconds for the search of a diagnosis
_MAX_CANDIDATES = 120
_MAX_NODES = 300  # a derivative (or an entry of one) larger than this is not altered
_MAX_ARGS = 10  # an Add or Mul with more arguments is not searched pair by pair
_MAX_ENTRIES_SEARCHED = 4  # entries of an explicit gradient searched one by one
_AGREE = 1e-8  # relative difference under which an altered derivative agrees with the claim
_MIN_POINTS = 8  # points a diagnosis must agree at
_REAL = 1e-6  # float64 difference of claim and derivative that a diagnosis explains


@dataclass(frozen=True)
class Evidence:
    """What the verdict compared: entries x points arrays of the claim and the derivative at
    the points `base` ({symbol: array}), and the forms the diagnosis alters."""

    base: Mapping
    symbols: list
    claimed: np.ndarray
    true: np.ndarray
    true_entries: list[Basic]
    claim_entries: list[Basic]
    shape: object  # () | length | (rows, cols) of the variable
    names: list[str]  # the variable of each entry
    true_matrix: MatrixExpr | None = None  # the derivative in matrix notation, if known
    claim_matrix: MatrixExpr | None = None
    write: Callable | None = None  # MatrixSymbols -> explicit entries


def diagnose(evidence: Evidence) -> str:
    """The mistake, named (``"a missing term: ..."``), or "" when none is found and checked."""
    e = evidence
    with np.errstate(all="ignore"):
        error = _error(e.claimed, e.true)
    if not np.nanmax(np.where(np.isfinite(error), error, 0.0), initial=0.0) > _REAL:
        return ""  # a difference float64 does not see: nothing to compare alterations with
    if e.claimed.shape[-1] < _MIN_POINTS:
        return ""  # at= one point: agreement there would not check an alteration
    deadline = time.process_time() + BUDGET
    for finder in (_whole_transpose, _claim_transposed, _in_matrix_notation, _entry_by_entry):
        try:
            found = finder(e, deadline)
        except (TypeError, ValueError, AttributeError, RecursionError, sympy.ShapeError):
            found = ""  # SymPy refused an alteration midway: no diagnosis of this kind
        if found:
            return found
    return constant_factor(e.claimed, e.true)


def _error(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(a - b) / np.maximum(1.0, np.maximum(np.abs(a), np.abs(b)))


def _agrees(values: np.ndarray, claimed: np.ndarray) -> bool:
    with np.errstate(all="ignore"):
        values = np.asarray(values, dtype=float)
        if values.shape != claimed.shape:
            values = np.broadcast_to(values, claimed.shape)
        return bool(np.all(_error(values, claimed) <= _AGREE))


def _whole_transpose(e: Evidence, deadline: float) -> str:
    if not (isinstance(e.shape, tuple) and len(e.shape) == 2 and e.shape[0] == e.shape[1] > 1):
        return ""
    rows, cols = e.shape
    n = e.true.shape[-1]
    transposed = e.true.reshape(rows, cols, n).transpose(1, 0, 2).reshape(rows * cols, n)
    if _agrees(transposed, e.claimed):
        return "a transpose: the claim is the transpose of the derivative"
    return ""


def _in_matrix_notation(e: Evidence, deadline: float) -> str:
    """Alterations of the derivative in matrix notation, each written out and compared."""
    if e.true_matrix is None or e.write is None:
        return ""
    true = _compact(e.true_matrix)
    if true is None:
        return ""

    def written_out(altered):
        return _values(e, _entries(e.write(altered)))

    return _first_agreeing(_alterations(true, e.claim_matrix), written_out, e.claimed, deadline)


def _first_agreeing(alterations, evaluate, claimed, deadline: float) -> str:
    """The description of the first alteration whose values (`evaluate`) agree with the
    claim's at every point, trying at most _MAX_CANDIDATES until `deadline`; else ""."""
    tried = 0
    for description, altered in alterations:
        if altered is None or not getattr(altered, "free_symbols", True):
            continue  # a constant (Heaviside(-40) of relu(x - 40) without x) explains nothing
        if time.process_time() > deadline or tried >= _MAX_CANDIDATES:
            return ""
        tried += 1
        try:
            values = evaluate(altered)
        except Exception:  # an alteration SymPy cannot write out or evaluate: not this one
            continue
        if values is not None and len(values) == len(claimed):
            if all(_agrees(v, c) for v, c in zip(values, claimed, strict=True)):
                return description
    return ""


def _claim_transposed(e: Evidence, deadline: float) -> str:
    """The claim with one square matrix transposed, compared with the derivative."""
    if e.claim_matrix is None or e.write is None:
        return ""
    for m in sorted(e.claim_matrix.atoms(sympy.MatrixSymbol), key=str):
        if m.shape[0] != m.shape[1] or time.process_time() > deadline:
            continue
        for old, new in ((m.T, m), (m, m.T)) if e.claim_matrix.has(m.T) else ((m, m.T),):
            try:
                values = _values(e, _entries(e.write(e.claim_matrix.xreplace({old: new}))))
            except Exception:  # SymPy cannot write it out or evaluate it: not this one
                continue
            if values is not None and len(values) == len(e.true):
                if all(_agrees(v, t) for v, t in zip(values, e.true, strict=True)):
                    return (
                        f"a transpose: the claim has {_short(old)} where the derivative has"
                        f" {_short(new)}"
                    )
    return ""


def _compact(true: MatrixExpr):
    """The derivative in matrix notation with transposes pushed to the symbols (so that
    `V^T z` reads so, not `(z^T V)^T`), or None when it is written entry by entry or large."""
    try:
        true = true.doit()
    except (TypeError, ValueError, sympy.ShapeError):
        pass
    parts = nodes([true])
    if len(parts) > _MAX_NODES or any(isinstance(n, MatrixElement) for n in parts):
        return None
    return true


def _entry_by_entry(e: Evidence, deadline: float) -> str:
    """For a few entries: each wrong one explained by one alteration of its own expression."""
    with np.errstate(all="ignore"):
        wrong = [k for k in range(len(e.claimed)) if not _agrees(e.true[k], e.claimed[k])]
    if not wrong or len(wrong) > _MAX_ENTRIES_SEARCHED:
        return ""
    found = []
    for k in wrong:
        description = _first_agreeing(
            _alterations(e.true_entries[k], e.claim_entries[k]),
            lambda altered: _values(e, [altered]),
            [e.claimed[k]],
            deadline,
        )
        if not description:
            return ""
        found.append((k, description))
    if len(e.claimed) == 1:
        return found[0][1]
    return "; ".join(f"d/d{e.names[k]}: {d}" for k, d in found)


def _entries(obj) -> list:
    if isinstance(obj, sympy.MatrixBase):
        return list(obj)
    return [obj]


def _values(e: Evidence, entries: list) -> list[np.ndarray] | None:
    free = set().union(*(sympy.sympify(x).free_symbols for x in entries))
    if not free <= set(e.symbols):
        return None
    n = e.claimed.shape[-1]
    out = []
    for v in lambdified(e.symbols, entries)(e.base):
        v = np.asarray(v)
        if np.iscomplexobj(v):
            v = np.where(v.imag == 0, v.real, np.nan)
        out.append(np.broadcast_to(np.asarray(v, dtype=float), (n,)))
    return out


# --------------------------------------------------------------------------- alterations


def _alterations(true, claim) -> Iterator[tuple[str, Basic]]:
    """(what the mistake is, the derivative altered by it): transposes first, then a term or
    a factor left out (of the outermost sums and products first), then one term with the wrong
    sign or a square left out (sigma' written sigma(1 + sigma), tanh' written 1 - tanh), then a
    term of the claim that is extra."""
    yield from _transposes(true)
    every = nodes([true])
    if len(every) > _MAX_NODES:
        return  # a large derivative: the search would not end within its budget
    size = _tree_sizes(true)
    parts = sorted((n for n in every if n.args), key=lambda n: -size[n])  # outermost first
    for node in parts:  # a term of a sum, or a factor of a product, from the outside in
        if isinstance(node, sympy.Add | sympy.MatAdd) and len(node.args) <= _MAX_ARGS:
            for i, term in enumerate(node.args):
                rest = node.func(*(a for j, a in enumerate(node.args) if j != i))
                yield _missing_term(term, node, true), _replaced(true, node, rest)
        yield from _factors(true, node)
    for node in parts:
        yield from _signs_and_squares(true, node)
    if isinstance(claim, sympy.Add | sympy.MatAdd) and len(claim.args) <= _MAX_ARGS:
        for term in claim.args:
            try:
                plus = true + term
            except (TypeError, ValueError, sympy.ShapeError):
                continue
            yield f"an extra term: the claim is the derivative plus {_short(term)}", plus


def _tree_sizes(root: Basic) -> dict:
    """{node: the number of nodes of its tree} for every node under `root`."""
    size: dict = {}
    stack = [(root, False)]
    while stack:
        node, ready = stack.pop()
        if node in size:
            continue
        if ready:
            size[node] = 1 + sum(size[a] for a in node.args)
        else:
            stack.append((node, True))
            stack.extend((a, False) for a in node.args if a not in size)
    return size


def _transposes(true) -> Iterator[tuple[str, Basic]]:
    if not isinstance(true, MatrixExpr):
        return
    for m in sorted(true.atoms(sympy.MatrixSymbol), key=str):
        if m.shape[0] != m.shape[1]:
            continue
        if true.has(m.T):  # the claim may have left a transpose out
            yield (
                f"a transpose: the claim has {m} where the derivative has {m.T}",
                true.xreplace({m.T: m}),
            )
        yield (
            f"a transpose: the claim has {m.T} where the derivative has {m}",
            true.xreplace({m: m.T}),
        )


def _missing_term(term, node, whole) -> str:
    where = "" if node == whole else f" (in {_short(node)})"
    return f"a missing term: the claim is the derivative without {_short(term)}{where}"


def _factors(true, node) -> Iterator[tuple[str, Basic]]:
    """The derivative with one factor of `node` (or two, for a Mul) left out."""
    if isinstance(node, sympy.Mul):
        factors = [a for a in node.args if not a.is_number]
        if len(node.args) > _MAX_ARGS or not factors:
            return
        choices = [[a] for a in factors]
        choices += [[a, b] for i, a in enumerate(factors) for b in factors[i + 1 :]]
        for dropped in choices:
            rest = sympy.Mul(*(a for a in node.args if a not in dropped))
            yield _dropped_from(dropped, node), _replaced(true, node, rest)
    elif isinstance(node, sympy.HadamardProduct) and len(node.args) <= _MAX_ARGS:
        for i, a in enumerate(node.args):
            rest = [b for j, b in enumerate(node.args) if j != i]
            kept = rest[0] if len(rest) == 1 else sympy.HadamardProduct(*rest)
            yield _missing_factor(a, hadamard=True), _replaced(true, node, kept)
    elif isinstance(node, sympy.MatMul) and len(node.args) <= _MAX_ARGS:
        for i, a in enumerate(node.args):
            if isinstance(a, MatrixExpr) or a.is_number:
                continue
            rest = sympy.MatMul(*(b for j, b in enumerate(node.args) if j != i))
            yield _missing_factor(a), _replaced(true, node, rest)


def _signs_and_squares(true, node) -> Iterator[tuple[str, Basic]]:
    """The derivative with one term of `node` (a sum) of the other sign, or `node` (a square)
    without its square; the derivative of an activation written wrong is named as such."""
    if isinstance(node, sympy.Add | sympy.MatAdd) and len(node.args) <= _MAX_ARGS:
        for i, term in enumerate(node.args):
            flipped = node.func(*(-a if j == i else a for j, a in enumerate(node.args)))
            yield _wrong_sign(term, node, flipped, true), _replaced(true, node, flipped)
    elif isinstance(node, sympy.Pow) and node.exp == 2:
        yield _missing_square(node, true), _replaced(true, node, node.base)


def _activation_derivative(node) -> tuple[str, Basic] | None:
    """("sigma'", u) for the factor 1 - sigmoid(u), ("tanh'", u) for 1 - tanh(u)**2, else None."""
    if not (isinstance(node, sympy.Add) and len(node.args) == 2 and sympy.S.One in node.args):
        return None
    other = -(node - 1)
    if isinstance(other, sigmoid):
        return "σ'", other.args[0]
    if isinstance(other, sympy.Pow) and other.exp == 2 and isinstance(other.base, sympy.tanh):
        return "tanh'", other.base.args[0]
    return None


def _wrong_sign(term, node, flipped, whole) -> str:
    known = _activation_derivative(node)
    if known is not None and known[0] == "σ'":
        s = f"sigmoid({_short(known[1], 30)})"
        return f"σ' written wrong: the claim has {s}*({flipped}) where σ' = {s}*(1 - {s})"
    if known is not None:
        return f"tanh' written wrong: the claim has {_short(flipped)} where tanh' = {node}"
    where = "" if node == whole else f" (in {_short(node)})"
    return f"a wrong sign: the claim has the term {_short(-term)} where the derivative has {_short(term)}{where}"


def _missing_square(node, whole) -> str:
    for parent in nodes([whole]):
        known = (
            _activation_derivative(parent) if node in parent.args or -node in parent.args else None
        )
        if known is not None and known[0] == "tanh'":
            written = parent.xreplace({node: node.base})
            return f"tanh' written wrong: the claim has {written} where tanh' = {parent}"
    return f"a missing square: the claim has {_short(node.base)} where the derivative has {_short(node)}"


def _dropped_from(dropped: list, product) -> str:
    """What leaving `dropped` out of `product` is: half of sigma' = sigma*(1 - sigma) left out is
    named as sigma' written wrong, anything else as a missing factor."""
    for factor in product.args:
        known = _activation_derivative(factor)
        if known is None or known[0] != "σ'":
            continue
        s = sigmoid(known[1])
        if s in product.args and len(dropped) == 1 and dropped[0] in (s, factor):
            kept = factor if dropped[0] == s else s
            return f"σ' written wrong: the claim has {kept} where σ' = {s}*({factor})"
    return _missing_factor(sympy.Mul(*dropped))


def _missing_factor(factor, hadamard: bool = False) -> str:
    if isinstance(factor, sympy.Pow) and factor.exp == -1 and factor.base.is_Symbol:
        n = factor.base
        return f"a missing 1/{n}: the claim is {n} times the derivative"
    how = "the entrywise factor" if hadamard else "the factor"
    return f"a missing factor: the claim is the derivative without {how} {_short(factor)}"


def _replaced(whole, node, by):
    """`whole` with `node` as `by`, or None when SymPy refuses the result (a scalar left in
    a sum of matrices)."""
    try:
        return whole.xreplace({node: by})
    except (TypeError, ValueError, sympy.ShapeError):
        return None


def _short(obj, width: int = 60) -> str:
    text = str(obj)
    return text if len(text) <= width else text[: width - 3] + "..."


# --------------------------------------------------------------------------- constant factor


def constant_factor(claimed: np.ndarray, true: np.ndarray) -> str:
    """ "the claim is 2x the derivative" (or "has the wrong sign") when claimed/true is one
    number at every point and entry where the derivative is not tiny; else ""."""
    with np.errstate(all="ignore"):
        usable = np.isfinite(claimed) & np.isfinite(true) & (np.abs(true) > 1e-6)
        if usable.sum() < 3 or not np.all(np.isfinite(claimed)):
            return ""
        ratio = claimed[usable] / true[usable]
    c = float(np.median(ratio))
    if abs(c) < 1e-12 or np.isclose(c, 1.0) or not np.allclose(ratio, c, rtol=1e-9, atol=0):
        return ""  # 1x: equal where the derivative is not ~0, wrong where it is: no factor
    if np.allclose(c, -1.0):
        return "the claim has the wrong sign (it is -1x the derivative)"
    fraction = sympy.nsimplify(c, rational=True, tolerance=1e-9)
    return f"the claim is {fraction}x the derivative (a constant factor)"
