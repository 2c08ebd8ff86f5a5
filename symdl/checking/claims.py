"""A gradient, claimed or true, entry by entry: the entries of the variables, a claim's
entries in the same order (or why its shape is wrong), and MatrixSymbols written out as
matrices of entry symbols at small sizes."""

from __future__ import annotations

from collections.abc import Mapping

import sympy
from sympy import Basic, MatrixBase, Symbol
from sympy.matrices.expressions import MatrixExpr
from sympy.matrices.expressions.matexpr import MatrixElement

from symdl.core.explicit import expand


def entry_name(m: sympy.MatrixSymbol, i: int, j: int) -> str:
    """The name of the symbol standing for entry (i, j) of `m`: ``X_{0,1}``."""
    return f"{m.name}_{{{i},{j}}}"


def explicit(f, wrt, sizes: Mapping | None = None):
    """`f`, `wrt` and a function writing any object the same way, with every MatrixSymbol
    written out as a Matrix of real symbols (``X`` becomes the entries ``X_{0,0}``, ...);
    the function's `sizes` maps each symbolic dimension to the size it was given.

    Symbolic dimensions get distinct small sizes (2, 3, 4, ... unless `sizes` says), so that a
    forgotten transpose shows as a wrong shape or a wrong entry. Without MatrixSymbols,
    everything is returned as it is.
    """
    parts = [p for p in _flatten(f) + _flatten(wrt) if isinstance(p, Basic)]
    matrices = {m for p in parts for m in p.atoms(sympy.MatrixSymbol)}
    matrices |= {p for p in parts if isinstance(p, sympy.MatrixSymbol)}
    if not matrices:

        def unchanged(obj):
            return obj

        unchanged.sizes = {}
        return f, wrt, unchanged
    dims = sorted({d for m in matrices for d in m.shape if not d.is_number}, key=str)
    size = {d: 2 + k for k, d in enumerate(dims)} | dict(sizes or {})
    table = {}
    for m in sorted(matrices, key=str):
        sized = m.xreplace(size)
        rows, cols = (int(d) for d in sized.shape)
        table[sized] = sympy.ImmutableMatrix(
            rows, cols, lambda i, j, m=m: Symbol(entry_name(m, i, j), real=True)
        )

    def entry(e):
        return table[e.parent][e.i, e.j]

    def write(obj):
        if isinstance(obj, list | tuple):
            return type(obj)(write(x) for x in obj)
        if not isinstance(obj, Basic):
            return obj
        out = sympy.sympify(obj.xreplace(size))  # the size N alone becomes a Python int
        # computed node by node (`expand`): SymPy's doit leaves a product holding a OneMatrix,
        # or a HadamardPower, unevaluated, and then its entries become index sums
        if isinstance(out, MatrixExpr):
            out = expand(out, table)
            out = out.as_explicit() if isinstance(out, MatrixExpr) else out
            if isinstance(out, MatrixBase) and out.has(sympy.Sum):  # (1^T w) 1: a 1x1 factor
                out = out.applyfunc(lambda e: e.doit())
            return out
        out = out.doit()  # (a^T X b)[0, 0] is a Sum over indices: write out its terms
        out = out.replace(lambda e: isinstance(e, MatrixElement) and e.parent in table, entry)
        return expand(out, table).doit()

    write.sizes = size
    f_out = write(f)
    if isinstance(f_out, MatrixBase) and f_out.shape == (1, 1):
        f_out = f_out[0, 0]
    return f_out, write(wrt), write


def _flatten(obj) -> list:
    if isinstance(obj, MatrixBase):
        return list(obj)
    if isinstance(obj, list | tuple):
        return [x for o in obj for x in _flatten(o)]
    return [obj]


def wrt_entries_of(wrt) -> list[tuple[Symbol, tuple[int, ...]]]:
    """Each entry of `wrt` with its index: () for a Symbol, (k,) in a list, (i, j) in a Matrix."""
    if isinstance(wrt, MatrixBase):
        return [(wrt[i, j], (i, j)) for i in range(wrt.rows) for j in range(wrt.cols)]
    if isinstance(wrt, list | tuple):
        return [(w, (k,)) for k, w in enumerate(wrt)]
    return [(wrt, ())]


def symbols_of(f: Basic, wrt_entries, compiled) -> list[Symbol]:
    """The user's symbols of `f` (in the compiled function's order), then any other of `wrt`."""
    user = {s.name: s for s in sympy.sympify(f).free_symbols if isinstance(s, Symbol)}
    user |= {w.name: w for w, _ in wrt_entries}
    ordered = [user[a.name] for a in compiled.args]
    return ordered + [w for w in dict.fromkeys(w for w, _ in wrt_entries) if w not in ordered]


def parse_claim(claimed, namespace, shape: tuple | None = None):
    """`claimed` with its text parsed safely: a string, or the strings inside a list or tuple
    (SymPy's sympify would evaluate them as code); `shape` is that of the variable."""
    from symdl.parsing import parse

    if isinstance(claimed, str):
        return parse(claimed, namespace, shape)
    if isinstance(claimed, list | tuple):
        return [parse_claim(c, namespace) for c in claimed]
    return claimed


def claimed_entries(claimed, wrt_entries, shape) -> list[Basic]:
    """`claimed` (SymPy objects) as one expression per entry of the variables.

    `shape` is () for one Symbol, the length for a sequence, (rows, cols) for a Matrix; a
    column, a row or a flat list of the right length stands for a vector.

    Raises:
        ShapeMismatch: the claim's shape is not that of the variables.
    """
    flat = _flat_claim(claimed)
    given = _shape_of(claimed)
    if (
        isinstance(shape, tuple)
        and len(shape) == 2
        and isinstance(given, tuple)
        and len(given) == 2
    ):
        vectors = 1 in shape and 1 in given
        if given != shape and not (vectors and len(flat) == len(wrt_entries)):
            raise ShapeMismatch(given, shape)
    if len(flat) != len(wrt_entries):
        raise ShapeMismatch(given, shape)
    return [sympy.sympify(e, strict=True) for e in flat]  # strict: text is never run


def matrix_shape(wrt_entries):
    """The shape of the variables: (rows, cols) for a Matrix, the length for a list, () else."""
    indices = [index for _, index in wrt_entries]
    if indices and len(indices[0]) == 2:
        return (max(i for i, _ in indices) + 1, max(j for _, j in indices) + 1)
    if indices and len(indices[0]) == 1:
        return len(indices)
    return ()


class ShapeMismatch(ValueError):
    """A claimed gradient whose shape differs from that of the variables."""

    def __init__(self, claimed, expected):
        self.claimed, self.expected = claimed, expected
        hint = ""
        if isinstance(claimed, tuple) and isinstance(expected, tuple) and claimed == expected[::-1]:
            hint = "; is a transpose missing (or extra)?"
        super().__init__(
            f"the claim has shape {_shape_text(claimed)} but the gradient has shape {_shape_text(expected)}{hint}"
        )


def _shape_text(shape) -> str:
    if shape == ():
        return "scalar"
    if isinstance(shape, int):
        return f"{shape} entries"
    return "x".join(map(str, shape))


def _shape_of(obj):
    if isinstance(obj, MatrixBase):
        return obj.shape
    if isinstance(obj, list | tuple):
        return len(obj)
    if isinstance(obj, MatrixExpr):
        return obj.shape
    return ()


def _flat_claim(claimed) -> list:
    if isinstance(claimed, MatrixExpr) and not isinstance(claimed, MatrixBase):
        raise ValueError("the claim is a matrix expression; pass explicit entries or text")
    if isinstance(claimed, MatrixBase):
        return list(claimed)
    if isinstance(claimed, list | tuple):
        out = []
        for c in claimed:
            if isinstance(c, MatrixBase | list | tuple):
                out += _flat_claim(c)
            else:
                out.append(c)
        return out
    return [claimed]
