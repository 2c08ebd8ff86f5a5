"""Rewrites of a compiled matrix program that save array passes and memory: row and column
sums through the steps they read, spread factors folded together, each array deleted after its
last read. An assignment is anything with `.target` and `.rhs` (codegen's Assignment)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import sympy
from sympy import Basic, HadamardProduct, MatAdd, MatrixSymbol, OneMatrix

from symdl.core.matrices import hadamard, matadd, matmul
from symdl.core.sums import spread_of, sums_through_steps
from symdl.ops.blocks import pad_rows, vstack

Assignment = Any  # codegen's Assignment(target, rhs)


def fused_sums(assignments: list[Assignment]) -> list[Assignment]:
    """Each row or column sum rewritten through the steps it reads where that costs no more
    array passes (symdl.core.sums): batch norm's adjoints of σ and γ then sum one product
    Ḡ ∘ C between them, as the textbook's fused backward does."""
    steps = {a.target: a.rhs for a in assignments if isinstance(a.target, MatrixSymbol)}
    return [replace(a, rhs=sums_through_steps(a.rhs, steps)) for a in assignments]


def folded_spreads(assignments: list[Assignment], kept: set) -> list[Assignment]:
    """A step that is one array times spread columns (x̂ = C ∘ s 1ᵀ), read by a product that
    spreads columns too, written into it with the columns multiplied first: γ 1ᵀ ∘ x̂ becomes
    C ∘ (γ ∘ s) 1ᵀ, one array pass instead of two (rows 1 r alike). A step no longer read,
    and not in `kept` (returned), is dropped."""
    scaled = {a.target: a.rhs for a in assignments if _scaled_array(a.rhs)}
    if not scaled:
        return assignments
    memo: dict = {}

    def fold(node):
        if node not in memo:
            if node.is_Atom or isinstance(node, MatrixSymbol):
                memo[node] = node
            else:
                args = [fold(a) for a in node.args]
                new = node.func(*args) if args != list(node.args) else node
                memo[node] = _folded(new, scaled) if isinstance(new, HadamardProduct) else new
        return memo[node]

    folded = [replace(a, rhs=fold(a.rhs)) for a in assignments]
    return _without_unread(folded, kept)


def stacked_pads(assignments: list[Assignment]) -> list[Assignment]:
    """Zero-padded blocks summed where they tile rows 0..n between them (the adjoint of a
    matrix taken apart by rows: heads, gates, outputs) written as one stack of the blocks, one
    array instead of a padded array per block and their sum."""
    memo: dict = {}

    def stack(node):
        if node not in memo:
            if node.is_Atom or isinstance(node, MatrixSymbol):
                memo[node] = node
            else:
                args = [stack(a) for a in node.args]
                new = node.func(*args) if args != list(node.args) else node
                memo[node] = _tiled(new) if isinstance(new, MatAdd) else new
        return memo[node]

    return [replace(a, rhs=stack(a.rhs)) for a in assignments]


def inlined_row_products(assignments: list[Assignment], kept: set) -> list[Assignment]:
    """A step P = A ∘ B (or A^{∘2}) that one row sum (P 1, or a mean over the batch) reads and
    nothing else, written into that sum: the printer then takes one dot product per row, and
    no full-size P is made (batch norm's variance, mean(C ∘ C))."""
    products = {
        a.target: a.rhs
        for a in assignments
        if a.target not in kept
        and isinstance(a.target, MatrixSymbol)
        and (
            isinstance(a.rhs, HadamardProduct)
            and len(a.rhs.args) == 2
            or isinstance(a.rhs, sympy.HadamardPower)
            and a.rhs.exp == 2
        )
    }
    if not products:
        return assignments
    readers: dict = {}  # product step -> [(reading assignment's index, the node reading it)]
    for i, a in enumerate(assignments):
        for node in sympy.preorder_traversal(a.rhs):
            for arg in node.args:
                if arg in products:
                    readers.setdefault(arg, []).append((i, node))
    swaps: dict[int, dict] = {}
    for target, reads in readers.items():
        if len(reads) == 1 and _is_row_sum_of(reads[0][1], target):
            swaps.setdefault(reads[0][0], {})[target] = products[target]
    if not swaps:
        return assignments
    out = [
        replace(a, rhs=a.rhs.xreplace(swaps[i])) if i in swaps else a
        for i, a in enumerate(assignments)
    ]
    inlined = set().union(*(set(s) for s in swaps.values()))
    return [a for a in out if a.target not in inlined]


def _is_row_sum_of(node, target) -> bool:
    """Whether `node` sums (or averages) the rows of `target`: target 1, or a mean over axis 1."""
    if isinstance(node, sympy.MatMul):
        return (
            len(node.args) == 2
            and node.args[0] == target
            and isinstance(node.args[1], OneMatrix)
            and node.args[1].shape[1] == 1
        )
    return (
        getattr(node, "axis", None) == 1 and hasattr(node, "as_product") and node.args[0] == target
    )


def _tiled(total):
    """`total` with its padded terms that tile their rows written as one vstack."""
    pads = [t for t in total.args if isinstance(t, pad_rows)]
    if len(pads) < 2 or len({t.args[2] for t in pads}) != 1:
        return total
    pads.sort(key=lambda t: int(t.args[1]))
    row = 0
    for t in pads:
        G, start, _ = t.args
        if int(start) != row:
            return total
        row += int(G.shape[0])
    if row != int(pads[0].args[2]):
        return total
    rest = [t for t in total.args if not isinstance(t, pad_rows)]
    return matadd(vstack(*(t.args[0] for t in pads)), *rest)


def _spread_side(node) -> str | None:
    """Which way a factor spreads: "right" for c u 1ᵀ, "left" for c 1 r, else None."""
    for side in ("right", "left"):
        if spread_of(node, side) is not None:
            return side
    return None


def _scaled_array(rhs) -> bool:
    """A Hadamard product of one matrix symbol and spreads of one orientation."""
    if not isinstance(rhs, HadamardProduct):
        return False
    sides = [_spread_side(f) for f in rhs.args]
    arrays = [f for f, side in zip(rhs.args, sides, strict=True) if side is None]
    return len(arrays) == 1 and isinstance(arrays[0], MatrixSymbol) and len(set(sides)) == 2


def _folded(product, scaled: dict):
    sides = {_spread_side(f) for f in product.args} - {None}
    if len(sides) != 1:
        return product
    (side,) = sides
    factors = []
    for f in product.args:
        inner = scaled.get(f)
        same = inner is not None and {_spread_side(g) for g in inner.args} - {None} == sides
        factors += list(inner.args) if same else [f]
    if len(factors) == len(product.args):
        return product
    spreads = [spread_of(f, side) for f in factors]
    arrays = [f for f, u in zip(factors, spreads, strict=True) if u is None]
    combined = hadamard(*(u for u in spreads if u is not None))
    n = product.shape[1] if side == "right" else product.shape[0]
    spread = (
        matmul(combined, OneMatrix(1, n)) if side == "right" else matmul(OneMatrix(n, 1), combined)
    )
    return hadamard(*arrays, spread)


def _without_unread(assignments: list[Assignment], kept: set) -> list[Assignment]:
    """The assignments without the matrix steps nothing reads (and not in `kept`)."""
    while True:
        read = set().union(*(a.rhs.free_symbols for a in assignments))
        unread = [
            a
            for a in assignments
            if isinstance(a.target, MatrixSymbol) and a.target not in read and a.target not in kept
        ]
        if not unread:
            return assignments
        assignments = [a for a in assignments if a not in unread]


def released_after(body: list[Assignment], outputs: Sequence[Basic]) -> list[tuple]:
    """The assignments of `body`, each with the arrays no later step or output reads: those
    are deleted right after it, as a person writing the step rebinds a name, so that a
    training step's peak memory is the values the backward pass needs, not every temporary
    (fresh pages cost a fault each: 2.4x the faults of the hand-written batch-norm step).
    A step no other step reads (a parameter's gradient) is placed right after the last step
    it reads, so that what it reads can go early too."""
    body = _sinks_placed_early(body)
    kept = set().union(*(sympy.sympify(o).free_symbols for o in outputs))
    last_read: dict = {}
    for i, a in enumerate(body):
        for s in a.rhs.free_symbols:
            last_read[s] = i
    released: list[list] = [[] for _ in body]
    for i, a in enumerate(body):
        if isinstance(a.target, MatrixSymbol) and a.target not in kept:
            released[last_read.get(a.target, i)].append(a.target)
    return list(zip(body, released, strict=True))


def _sinks_placed_early(body: list[Assignment]) -> list[Assignment]:
    """`body` with each step no other step reads moved right after the last step it reads."""
    read = set().union(*(a.rhs.free_symbols for a in body)) if body else set()
    position = {a.target: i for i, a in enumerate(body)}
    after: dict[int, list[Assignment]] = {}
    for a in body:
        if a.target in read:
            continue
        sources = [position[s] for s in a.rhs.free_symbols if s in position]
        after.setdefault(max(sources, default=-1), []).append(a)
    ordered = list(after.get(-1, []))
    for i, a in enumerate(body):
        if a.target in read:
            ordered.append(a)
        ordered += after.get(i, [])
    return ordered
