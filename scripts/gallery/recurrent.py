"""Gallery entries for recurrent networks: backpropagation through time in an Elman RNN,
unrolled over three steps, checked against the textbook's recursion and sympy.diff."""

from __future__ import annotations

import sympy
from sympy import MatAdd, MatrixSymbol, OneMatrix

import symdl as sd
from gallery.entry import Entry, N, dL, entry, part, upstream
from gallery.reference import Claim, ExplicitDiff
from symdl.core.matrices import elementwise, hadamard

STEPS = 3


@entry
def rnn_backprop_through_time() -> Entry:
    d, h = sympy.symbols("d h", integer=True, positive=True)
    W, U, b = MatrixSymbol("W", h, d), MatrixSymbol("U", h, h), MatrixSymbol("b", h, 1)
    x = {t: MatrixSymbol(f"x_{{{t}}}", d, N) for t in range(1, STEPS + 1)}
    G = MatrixSymbol("G", h, N)
    state = {0: MatrixSymbol("h_{0}", h, N)}
    names = {}
    for t in range(1, STEPS + 1):
        z = W * x[t] + U * state[t - 1] + b * OneMatrix(1, N)
        state[t] = elementwise(sympy.tanh, z)
        names |= {z: f"z_{{{t}}}", state[t]: f"h_{{{t}}}"}
    loss = upstream(G, state[STEPS])
    params = [W, U, b, state[0]]

    h_ = {0: state[0]} | {t: MatrixSymbol(f"h_{{{t}}}", h, N) for t in range(1, STEPS + 1)}
    delta = {t: MatrixSymbol(f"\\delta_{{{t}}}", h, N) for t in range(1, STEPS + 1)}
    where = {}
    for t in range(STEPS, 0, -1):
        above = G if t == STEPS else U.T * delta[t + 1]
        where[delta[t]] = hadamard(above, OneMatrix(h, N) - hadamard(h_[t], h_[t]))
    for t in range(1, STEPS + 1):
        z = W * x[t] + U * h_[t - 1] + b * OneMatrix(1, N)
        where[h_[t]] = elementwise(sympy.tanh, z)
    steps = range(1, STEPS + 1)
    source = "Goodfellow, Bengio and Courville (2016), Sec. 10.2.2"
    claims = [
        Claim(dL("U"), MatAdd(*(delta[t] * h_[t - 1].T for t in steps)), loss, U, source, where),
        Claim(dL("W"), MatAdd(*(delta[t] * x[t].T for t in steps)), loss, W, source, where),
        Claim(
            dL("b"), MatAdd(*(delta[t] for t in steps)) * OneMatrix(N, 1), loss, b, source, where
        ),
        Claim(dL("h_{0}"), U.T * delta[1], loss, state[0], source, where),
    ]
    return Entry(
        title="Backpropagation through time (Elman RNN)",
        prose=(
            "An Elman network $h_t = \\tanh(W x_t + U h_{t-1} + b)$ unrolled over $T = 3$ steps, "
            "with an upstream gradient $G$ on the last state. The error "
            "$\\delta_t = \\partial L / \\partial z_t$ flows back through $U^T$ and "
            "$\\tanh' = 1 - h_t^2$, and each weight used at every step gathers one term per "
            "step, $\\partial L / \\partial U = \\sum_t \\delta_t h_{t-1}^T$."
        ),
        derivation=sd.derive(loss, params, names=names),
        parts=(
            part(
                "Textbook recursion (verified)",
                *((delta[t], where[delta[t]]) for t in range(STEPS, 0, -1)),
                *(c.equation for c in claims),
            ),
        ),
        checks=(*claims, ExplicitDiff(loss, tuple(params), sizes={d: 2, h: 2, N: 2})),
    )
