r"""The one walk that turns a model into its loss expression: layers applied to tensors in
order, from model inputs to outputs, a loss on each output. A graph model (`nn.Model`) is any
such network; a `Sequential` is the chain from one input through its layers.

Each layer's outputs are named as in a textbook, $Z^{(l)}$ (pre-activation) and $A^{(l)}$; a
layer used twice names its second use $A^{(l,2)}$.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import sympy
from sympy import MatrixSymbol

from symdl.core.program import _Graph, canonical
from symdl.nn.layers import Context, Layer, Shape, ShapeError, _features, walk


class Tensor:
    """A value in a graph model: a model input, or a layer applied to tensors."""

    def __init__(self, shape: Shape, layer: Layer | None = None, parents=(), name=None):
        self.shape, self.layer, self.parents, self.name = tuple(shape), layer, tuple(parents), name

    def applied(self, layer: Layer, inputs: Sequence[Tensor]) -> Tensor:
        """`layer` applied to `inputs` (this tensor first): built on first use; a later use
        must give inputs of the same shapes, and shares the layer's parameters."""
        for t in inputs:
            if not isinstance(t, Tensor):
                raise TypeError(f"{layer.name or layer.kind}: {t!r} is not a graph tensor")
        shapes = [t.shape for t in inputs]
        shape_in = shapes[0] if len(shapes) == 1 else shapes
        label = layer.given_name or type(layer).__name__
        if getattr(layer, "graph_input_shape", None) is None:
            try:
                out = layer.build_many(shapes) if len(shapes) > 1 else layer.build(shapes[0])
            except ValueError as error:
                raise ShapeError(f"{label}: {error}") from None
            layer.graph_input_shape = shape_in
        elif layer.graph_input_shape != shape_in:
            raise ShapeError(
                f"{label}: used again on inputs of shape {shape_in}, but it was built for "
                f"{layer.graph_input_shape}; a shared layer needs inputs of the same shape"
            )
        else:
            out = layer.output_shape
        return Tensor(out, layer, inputs)

    def __repr__(self) -> str:
        what = "Input" if self.layer is None else type(self.layer).__name__
        return f"Tensor({what}, shape={self.shape})"


def Input(shape, name: str | None = None) -> Tensor:  # noqa: N802 (a constructor, as in Keras)
    """A model input: examples of `shape` (features, or (T, F) for sequences)."""
    shape = (int(shape),) if isinstance(shape, int | np.integer) else tuple(map(int, shape))
    return Tensor(shape, name=name)


def chain(input_shape: Shape, layers: Sequence[Layer]) -> tuple[Tensor, list[Tensor]]:
    """An input and `layers` applied one after the other to it (already built, as
    `build_layers` builds them): the network of a Sequential model. Returns (the input, the
    tensors in order; the last is the output)."""
    x = t = Tensor(input_shape)
    tensors = []
    for layer in layers:
        t = Tensor(layer.output_shape, layer, (t,))
        tensors.append(t)
    return x, tensors


def order(outputs: Sequence[Tensor]) -> list[Tensor]:
    """Every tensor the outputs depend on, each after its parents."""
    found, seen = [], set()

    def visit(t):
        if id(t) in seen:
            return
        seen.add(id(t))
        for p in t.parents:
            visit(p)
        found.append(t)

    for t in outputs:
        visit(t)
    return found


def name_layers(layers: Sequence[Layer], what: str) -> None:
    """Names "dense_2" per kind and numbers l = 1, 2, ... in the order `walk` gives (a block
    after its inner layers); a name given by the user is kept."""
    every = list(walk(layers))
    counts: dict[str, int] = {}
    taken = {layer.given_name for layer in every if layer.given_name}
    for index, layer in enumerate(every, start=1):
        layer.index = index
        if layer.given_name:
            layer.name = layer.given_name
            continue
        while True:
            counts[layer.kind] = counts.get(layer.kind, 0) + 1
            candidate = f"{layer.kind}_{counts[layer.kind]}"
            if candidate not in taken:
                break
        layer.name = candidate
        taken.add(candidate)
    names = [layer.name for layer in every]
    if len(set(names)) != len(names):
        raise ValueError(f"{what}: layer names must be distinct, got {names}")


def forward(
    inputs: Sequence[Tensor],
    tensors: Sequence[Tensor],
    outputs: Sequence[Tensor],
    symbols: Mapping[str, MatrixSymbol],
    train: bool,
    loops: bool = False,
):
    """The matrix expression of each output: `tensors` (in order, each after its parents)
    applied to the model inputs X (or X_1, X_2, ... for several), one example per column.

    Args:
        symbols: every parameter symbol, keyed "layer.name".
        loops: the compiled expression, not the displayed one: a recurrent layer may be one
            op that loops over time (symdl.nn.scan) rather than unrolled.

    Returns:
        (outputs, context, names): a matrix per output, the context the layers declared in
        (extra inputs, state updates, penalties) and textbook names {subexpression: name}.
    """
    N = sympy.Symbol("N", integer=True, positive=True)
    several = len(inputs) > 1
    values = {
        id(t): MatrixSymbol(f"X_{{{i + 1}}}" if several else "X", _features(t.shape), N)
        for i, t in enumerate(inputs)
    }
    context = Context(index=0, batch=N, train=train, loops=loops)
    names: dict = {}
    uses: dict = {}

    def run(layer: Layer, A, suffix: str = ""):
        context.index = layer.index
        prefix = layer.name + "."
        params = {k[len(prefix) :]: v for k, v in symbols.items() if k.startswith(prefix)}
        Z, out = layer.forward(A, params, context)
        _name(Z, out, A, f"{layer.index}{suffix}", names)
        return out

    def apply(layers, A):  # a block's inner layers, in order
        for layer in layers:
            A = run(layer, A)
        return A

    context.apply = apply
    for t in tensors:
        if t.layer is None:
            continue
        uses[t.layer] = uses.get(t.layer, 0) + 1
        args = [values[id(p)] for p in t.parents]
        A = args[0] if len(args) == 1 else tuple(args)
        values[id(t)] = run(t.layer, A, "" if uses[t.layer] == 1 else f",{uses[t.layer]}")
    for expr, name in context.names.items():
        names.setdefault(expr, name)
    return [values[id(t)] for t in outputs], context, names


def _name(Z, out, A, label: str, names: dict) -> None:
    """Z^{(l)} for a layer's pre-activation and A^{(l)} for its output, where each is a new
    expression (not the input passed on, not a symbol)."""
    if Z is not None and not _same(Z, A) and not isinstance(Z, MatrixSymbol):
        names.setdefault(Z, f"Z^{{({label})}}")
    if not _same(out, Z) and not _same(out, A) and not isinstance(out, MatrixSymbol):
        names.setdefault(out, f"A^{{({label})}}")


def _same(expr, other) -> bool:
    if expr is other:
        return True
    if other is None or isinstance(other, tuple):  # no pre-activation; a merge's inputs
        return False
    return expr == other


def loss_of(outputs: Sequence, losses: Sequence, weights: Sequence, context: Context, names):
    """The training loss: each output's loss against its targets Y (Y_1, Y_2, ... for
    several), weighted, plus the layers' penalties (a shared layer's once).

    Returns:
        (loss, names): the scalar loss, and `names` kept to the subexpressions the loss
        still holds (a layer output that a later sum absorbed, x + y + z flattened, has none).
    """
    several = len(outputs) > 1
    terms = []
    for i, (loss, weight, Z) in enumerate(zip(losses, weights, outputs, strict=True)):
        Y = MatrixSymbol(f"Y_{{{i + 1}}}" if several else "Y", Z.shape[0], Z.shape[1])
        term = loss.expression(Z, Y)
        terms.append(term if weight == 1 else sympy.Mul(weight, term))
    penalties = list(dict.fromkeys(context.penalties))
    if several:  # not flattened: each output's loss stays one term
        total = sympy.Add(*terms, *penalties, evaluate=False)
    else:
        total = terms[0]
        for penalty in penalties:
            total = total + penalty
    memo: dict = {}  # the names are parts of the loss: each is then a lookup
    present = _Graph([canonical(total, memo)])
    return total, {k: v for k, v in names.items() if canonical(k, memo) in present}
