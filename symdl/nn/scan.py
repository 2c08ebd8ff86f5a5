r"""A recurrent layer compiled as a loop over time: one op, `recurrent_scan`, whose NumPy
kernel runs the layer's cell step by step, and whose pullback runs backpropagation through
time backwards over the same steps.

The cell is the layer's own `step` (the equations the unrolled derivation prints), derived
once by symdl's chain rule and compiled once per (layer kind, units): a forward function
$(P_t, s_{t-1}) \mapsto (s_t, \text{saved}_t)$ and its vector-Jacobian product
$(\bar s_t, \text{saved}_t) \mapsto (\bar P_t, \bar s_{t-1}, \bar U)$, where $s$ is the state
($h$, or $h$ and $c$) and $P_t = W x_t + b$ holds every gate's input projection. The projections
of all steps are one product before the loop, and $\bar W = \sum_t \bar P_t x_t^\top$,
$\bar b$ and $\bar X$ one product after it, so the code does not grow with T.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from types import SimpleNamespace

import numpy as np
import sympy
from sympy import Identity, Integer, MatMul, MatrixSymbol, OneMatrix, Trace, Tuple
from sympy.core.symbol import Str

from symdl.compile.codegen import Assignment, CompiledDerivation, _load, _source
from symdl.core.calculus import derive
from symdl.core.matrices import matadd, matmul
from symdl.core.rules import UnsupportedOp
from symdl.ops.base import MatrixOp

# layer kind ("lstm") -> its class, filled by symdl.nn.recurrent as each class is declared
CELLS: dict[str, type] = {}


@dataclass(frozen=True)
class Spec:
    """What a scan needs besides its arrays: the layer's kind and name, T, F, H, and whether
    it returns every step's h or the last."""

    kind: str
    name: str
    steps: int
    features: int
    units: int
    sequences: bool

    def as_tuple(self) -> Tuple:
        return Tuple(
            Str(self.kind),
            Str(self.name),
            *(Integer(v) for v in (self.steps, self.features, self.units, self.sequences)),
        )

    @classmethod
    def of(cls, args: Tuple) -> Spec:
        kind, name, T, F, H, sequences = args
        return cls(kind.name, name.name, int(T), int(F), int(H), bool(int(sequences)))

    @property
    def layer(self) -> type:
        return CELLS[self.kind]

    def code(self) -> str:
        """NumPy source of the spec: the keyword arguments of the kernels."""
        return (
            f"kind={self.kind!r}, steps={self.steps}, features={self.features}, "
            f"units={self.units}, sequences={self.sequences}"
        )


# ---------------------------------------------------------------- the ops


class _ScanOp(MatrixOp):
    # the entrywise form of a scan is the unrolled layer, which tests/nn/test_recurrent_scan.py
    # compares it with (loss and every gradient), and both with PyTorch and finite differences
    has_entrywise_form = False

    @property
    def spec(self) -> Spec:
        return Spec.of(self.args[-1])

    def _call(self, printer, function: str, *args) -> str:
        spec = self.spec
        if getattr(printer, "backend", ""):
            raise UnsupportedOp(
                f"{spec.name} ({spec.layer.__name__}): compiled as a loop over time, which "
                f"the {printer.backend} export does not run; build the layer with unroll=True"
            )
        module = printer._module_format("symdl.nn.scan")
        printed = ", ".join(printer._print(a) for a in args)
        return f"{module}.{function}({printed}, {spec.code()})"


class recurrent_scan(_ScanOp):
    r"""A recurrent layer over a sequence X ((T·F) x N): every step's h stacked ((T·H) x N)
    or the last step's (H x N). Args: X, each gate's W, each gate's b, each gate's U, the
    recurrent biases (GRU's $c_n$), and the Spec."""

    name = "recurrent_scan"

    @property
    def shape(self):
        spec = self.spec
        rows = spec.units * (spec.steps if spec.sequences else 1)
        return (rows, self.args[0].shape[1])

    def vjp(self, index, G, out):
        tape = scan_tape(*self.args)
        shape = Tuple(*self.args[index].shape)
        return scan_part(scan_grads(G, tape, *self.args), Integer(index), shape)

    def numeric_form(self):
        return scan_output(scan_tape(*self.args), self.args[-1])

    def _latex_body(self, printer):
        spec = self.spec
        name = spec.layer.__name__
        return rf"\operatorname{{{name}}}_{{T={spec.steps}}}\left({printer._print(self.args[0])}\right)"


class scan_tape(_ScanOp):
    """The forward loop: every state and what the cell's backward step reads, per step."""

    name = "scan_tape"

    @property
    def shape(self):
        return (self.spec.units * self.spec.steps, self.args[0].shape[1])

    def _numpycode(self, printer):
        return self._call(printer, "forward", *self.args[:-1])


class scan_output(_ScanOp):
    """The layer's output read from the tape of its forward loop."""

    name = "scan_output"

    @property
    def shape(self):
        spec = self.spec
        rows = spec.units * (spec.steps if spec.sequences else 1)
        return (rows, self.args[0].shape[1])

    def _numpycode(self, printer):
        return self._call(printer, "output", self.args[0])


class scan_grads(_ScanOp):
    """The backward loop (backpropagation through time) from the output's adjoint G: the
    gradients of X and of every weight, read one at a time by `scan_part`."""

    name = "scan_grads"

    @property
    def shape(self):
        return self.args[0].shape

    def _numpycode(self, printer):
        return self._call(printer, "backward", *self.args[:-1])


class scan_part(MatrixOp):
    """Gradient `index` (in the order of the scan's arguments), of `shape`, of a backward
    loop's result (which the compiler may have named by then)."""

    name = "scan_part"

    @property
    def shape(self):
        return tuple(self.args[2])

    def _numpycode(self, printer):
        grads, index, _ = self.args
        return f"{printer._print(grads)}[{int(index)}]"


# ---------------------------------------------------------------- the cell, derived once


@dataclass(frozen=True)
class Cell:
    """One step of a layer, compiled: `forward(*P, *Q, *state, *c, N) -> (*state', *saved)` and
    `backward(*state_bar, *saved, *P, *Q, *state, *c, N) -> (*P_bar, *Q_bar, *state_bar_before,
    *c_bar)`, with P_g = W_g x_t + b_g and Q_g = U_g h_{t-1} per gate, each H x N, and c the
    recurrent biases (GRU's c_n)."""

    gates: tuple[str, ...]
    biases: int
    arity: int  # states: 1 (h) or 2 (h, c)
    forward: Callable
    backward: Callable
    forward_source: str
    backward_source: str


@cache
def cell(kind: str, units: int) -> Cell:
    """The compiled cell of layer kind `kind` with `units` units (derived and compiled once).

    The layer's own step, with each recurrent product $U_g h_{t-1}$ an input $Q_g$: the loop
    computes them in one product of the stacked U, and U's gradient in one product after it.
    """
    layer = CELLS[kind]
    H, N = units, sympy.Symbol("N", integer=True, positive=True)
    gates = tuple(layer.gates)
    P = {g: MatrixSymbol(f"P_{g}", H, N) for g in gates}
    Q = {g: MatrixSymbol(f"Q_{g}", H, N) for g in gates}
    U = {f"U_{g}": MatrixSymbol(f"U_{g}", H, H) for g in gates}
    biases = {f"c_{g}": MatrixSymbol(f"c_{g}", H, 1) for g in layer.recurrent_biases}
    arity = 2 if kind == "lstm" else 1
    states = [MatrixSymbol(s, H, N) for s in ("h", "c")[:arity]]

    def affine(gate, h):  # P = W x_t + b, computed for every step before the loop
        if gate in layer.recurrent_biases:
            return P[gate]
        return matadd(P[gate], matmul(U[f"U_{gate}"], h))

    sympy.core.cache.clear_cache()  # as a model does before it builds (symdl.nn.model)
    context = SimpleNamespace(names={}, index=0)
    state = states[0] if arity == 1 else tuple(states)
    # the class's own step on a bare instance: a step reads only its arguments and the class
    new = layer.step(layer.__new__(layer), affine, state, U | biases, OneMatrix(1, N), 1, context)
    new = list(new) if arity == 2 else [new]
    products = {matmul(U[f"U_{g}"], states[0]): Q[g] for g in gates}
    names = {expr.xreplace(products): label for expr, label in context.names.items()}
    labels = [context.names[s] for s in new]
    new = [s.xreplace(products) for s in new]
    if any(s.has(*U.values()) for s in new):
        raise ValueError(f"{layer.__name__}: its step uses U other than in U h_(t-1)")
    seeds = [MatrixSymbol(f"G_{s}", H, N) for s in ("h", "c")[:arity]]
    # matmul, not G.T * s, which would reorder the sums inside s (then no longer found by
    # their names)
    loss = sympy.Add(*(Trace(matmul(G.T, s)) for G, s in zip(seeds, new, strict=True)))
    inputs = [*P.values(), *Q.values(), *states, *biases.values()]
    # the step's own names (z, the gates, h, c): named subexpressions stay as written, and
    # the new state is a step whose value the loop keeps
    derivation = derive(loss, inputs, names=names)
    steps = {str(step.name): step.name for step in derivation.program.steps}
    outputs = [steps[label] for label in labels]
    compiled = CompiledDerivation(derivation, extra=outputs)
    # a gradient that is zero (h's in an RNN cell, which reads h only through Q) is the
    # number 0, which the loop adds to U^T Q_bar without an array of zeros
    grads = [sympy.S.Zero if g.is_ZeroMatrix else g for g in derivation.gradient_entries]
    body = _without_identities(compiled.body)
    forward_body, backward_body, saved = _split(body, outputs, grads)
    dims = compiled.dimensions
    forward_source = _source(inputs, dims, forward_body, [*outputs, *saved])
    backward_source = _source([*seeds, *saved, *inputs], dims, backward_body, grads)
    return Cell(
        gates,
        len(biases),
        arity,
        _load(forward_source),
        _load(backward_source),
        forward_source,
        backward_source,
    )


def _without_identities(body):
    """`body` with the identity the probe tr(Gᵀ s) seeds (s̄ = G I) multiplied out: an N x N
    product per step otherwise."""
    constant: dict = {}
    out = []
    for a in body:
        rhs = a.rhs.xreplace(constant) if constant else a.rhs
        rhs = rhs.replace(_holds_identity, lambda e: e.doit(deep=False))
        if rhs.is_number or isinstance(rhs, Identity) or _holds_identity(rhs, alone=True):
            constant[a.target] = rhs
            continue
        out.append(Assignment(a.target, rhs))
    return out


def _holds_identity(node, alone=False) -> bool:
    """A product with an identity factor (and another matrix factor, unless `alone`)."""
    if not isinstance(node, MatMul):
        return False
    factors = [f for f in node.args if isinstance(f, sympy.MatrixExpr)]
    identities = [f for f in factors if isinstance(f, Identity) or _holds_identity(f, True)]
    return bool(identities) and (len(identities) == len(factors)) == alone


def _split(body, forward_outputs, gradients):
    """The steps the forward outputs need, the further steps the gradients need (in order),
    and the forward values the backward steps read (what the loop saves per step)."""
    defined = {a.target: a for a in body}

    def needed(exprs) -> set:
        found, stack = set(), [s for e in exprs for s in sympy.sympify(e).free_symbols]
        while stack:
            s = stack.pop()
            if s in defined and s not in found:
                found.add(s)
                stack.extend(defined[s].rhs.free_symbols)
        return found

    forward = needed(forward_outputs)
    backward = needed(gradients) - forward
    backward_body = [a for a in body if a.target in backward]
    read = set().union(*(a.rhs.free_symbols for a in backward_body), set())
    read |= set().union(*(sympy.sympify(g).free_symbols for g in gradients))
    saved = [a.target for a in body if a.target in forward and a.target in read]
    return [a for a in body if a.target in forward], backward_body, saved


# ---------------------------------------------------------------- the NumPy kernels


@dataclass
class Tape:
    """What the forward loop keeps, per step: the input and recurrent projections of every
    gate, the state before the step (then the last state), and the cell's saved values. Each
    array is H x N or gates·H x N, as in the unrolled code: no array grows with T (a large
    fresh array costs a page fault per 4 KB, more than the products here)."""

    projections: list  # W x_t + b
    recurrent: list  # U h_(t-1)
    states: list
    saved: list


def _weights(params, gates: int):
    """(W stacked over the gates, b stacked, U stacked, the recurrent biases)."""
    W = np.concatenate(params[:gates])
    b = np.concatenate(params[gates : 2 * gates])
    U = np.concatenate(params[2 * gates : 3 * gates])
    return W, b, U, params[3 * gates :]


def _blocks(M, gates: int, H: int) -> list:
    return [M[k * H : (k + 1) * H] for k in range(gates)] if gates > 1 else [M]


def _stacked(blocks):
    return blocks[0] if len(blocks) == 1 else np.concatenate(blocks)


def forward(X, *params, kind, steps, features, units, sequences) -> Tape:
    """Run the layer over the sequence X ((T·F) x N) from the zero state."""
    c = cell(kind, units)
    gates, H, N = len(c.gates), units, X.shape[1]
    W, b, U, biases = _weights(params, gates)
    xs = X.reshape(steps, features, N)
    state = [np.zeros((H, N), dtype=np.result_type(X, W)) for _ in range(c.arity)]
    tape = Tape([], [], [state], [])
    for t in range(steps):
        P = W @ xs[t]
        P += b
        Q = U @ state[0] if t else np.zeros((U.shape[0], N), P.dtype)  # h_0 = 0
        out = c.forward(*_blocks(P, gates, H), *_blocks(Q, gates, H), *state, *biases, N)
        state = list(out[: c.arity])
        tape.projections.append(P)
        tape.recurrent.append(Q)
        tape.states.append(state)
        tape.saved.append(out[c.arity :])
    return tape


def output(tape: Tape, *, kind, steps, features, units, sequences) -> np.ndarray:
    """The layer's output: every h stacked, or the last."""
    if sequences:
        return np.concatenate([s[0] for s in tape.states[1:]])
    return tape.states[-1][0]


class Gradients:
    """The backward loop's gradients in the order of the scan's arguments; X's (index 0) is
    computed only if read (a first layer's input needs none)."""

    def __init__(self, W, projections_bar, rest):
        self._W, self._bar, self._rest = W, projections_bar, rest

    def __getitem__(self, index: int):
        if index == 0:
            return np.concatenate([self._W.T @ bar for bar in self._bar])
        return self._rest[index - 1]


def backward(G, tape: Tape, X, *params, kind, steps, features, units, sequences) -> Gradients:
    """Backpropagation through time from the output's adjoint G: each weight's gradient
    gathered step by step, as the unrolled code sums them."""
    c = cell(kind, units)
    gates, H, N = len(c.gates), units, X.shape[1]
    W, b, U, biases = _weights(params, gates)
    xs = X.reshape(steps, features, N)
    dtype = tape.states[0][0].dtype
    state_bar = [np.zeros((H, N), dtype=dtype) for _ in range(c.arity)]
    if not sequences:
        state_bar[0] = G
    W_bar, U_bar = np.zeros(W.shape, dtype), np.zeros(U.shape, dtype)
    P_sum = np.zeros((gates * H, N), dtype)
    P_bars = [None] * steps
    biases_bar = [None] * len(biases)
    for t in range(steps - 1, -1, -1):
        if sequences:
            state_bar[0] = state_bar[0] + G[t * H : (t + 1) * H]
        P = _blocks(tape.projections[t], gates, H)
        Q = _blocks(tape.recurrent[t], gates, H)
        out = c.backward(*state_bar, *tape.saved[t], *P, *Q, *tape.states[t], *biases, N)
        P_bar, Q_bar = _stacked(out[:gates]), _stacked(out[gates : 2 * gates])
        P_bars[t] = P_bar
        W_bar += P_bar @ xs[t].T
        P_sum += P_bar
        if t > 0:  # h_0 = 0 adds nothing to U's gradient
            U_bar += Q_bar @ tape.states[t][0].T
        state_bar = list(out[2 * gates : 2 * gates + c.arity])
        if t:  # h_0's gradient is not needed
            state_bar[0] = state_bar[0] + U.T @ Q_bar
        for k, g in enumerate(out[2 * gates + c.arity :]):
            biases_bar[k] = g if biases_bar[k] is None else biases_bar[k] + g
    b_bar = P_sum.sum(axis=1, keepdims=True)
    rest = [*_blocks(W_bar, gates, H), *_blocks(b_bar, gates, H), *_blocks(U_bar, gates, H)]
    return Gradients(W, P_bars, [*rest, *biases_bar])
