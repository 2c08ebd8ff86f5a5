"""Gallery entries for recurrent networks: backpropagation through time in an Elman RNN
unrolled over three steps, and one step of a GRU and of an LSTM cell, checked against the
textbook's recursion, gate adjoints written by hand, and sympy.diff."""

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


@entry
def gru_cell() -> Entry:
    d, h = sympy.symbols("d h", integer=True, positive=True)
    x, h0, G = MatrixSymbol("x_{t}", d, N), MatrixSymbol("h_{t-1}", h, N), MatrixSymbol("G", h, N)
    W = {g: MatrixSymbol(f"W_{{{g}}}", h, d) for g in "rzn"}
    U = {g: MatrixSymbol(f"U_{{{g}}}", h, h) for g in "rzn"}
    b = {g: MatrixSymbol(f"b_{{{g}}}", h, 1) for g in "rzn"}
    c = MatrixSymbol("c_{n}", h, 1)
    ones, full = OneMatrix(1, N), OneMatrix(h, N)

    inner = U["n"] * h0 + c * ones

    def candidate(r):  # n_t's pre-activation, the reset gate given
        return W["n"] * x + b["n"] * ones + hadamard(r, inner)

    pre = {g: W[g] * x + U[g] * h0 + b[g] * ones for g in "rz"}
    r, z = (elementwise(sd.sigmoid, pre[g]) for g in "rz")
    pre["n"] = candidate(r)
    n = elementwise(sympy.tanh, pre["n"])
    state = hadamard(full - z, n) + hadamard(z, h0)
    loss = upstream(G, state)
    names = {r: "r_{t}", z: "z_{t}", n: "n_{t}", state: "h_{t}", inner: "u_{t}"}
    names |= {pre[g]: f"a^{{{g}}}_{{t}}" for g in "rzn"}
    params = [U["r"], U["z"], U["n"], W["n"], h0]

    r_, z_, n_, u_ = (MatrixSymbol(f"{v}_{{t}}", h, N) for v in "rznu")
    dn, dz, dr = (MatrixSymbol(f"\\delta^{{{g}}}_{{t}}", h, N) for g in "nzr")
    where = {
        dn: hadamard(G, full - z_, full - hadamard(n_, n_)),
        dz: hadamard(G, h0 - n_, z_, full - z_),
        dr: hadamard(dn, u_, r_, full - r_),
        r_: r,
        z_: z,
        n_: elementwise(sympy.tanh, candidate(r_)),
        u_: inner,
    }
    source = "the GRU of Cho et al. (2014) in PyTorch's form, its adjoints by hand"
    claims = [
        Claim(dL("U_{r}"), dr * h0.T, loss, U["r"], source, where),
        Claim(dL("U_{z}"), dz * h0.T, loss, U["z"], source, where),
        Claim(dL("U_{n}"), hadamard(dn, r_) * h0.T, loss, U["n"], source, where),
        Claim(dL("W_{n}"), dn * x.T, loss, W["n"], source, where),
        Claim(
            dL("h_{t-1}"),
            hadamard(G, z_) + U["z"].T * dz + U["r"].T * dr + U["n"].T * hadamard(dn, r_),
            loss,
            h0,
            source,
            where,
        ),
    ]
    return Entry(
        title="A GRU cell (one step of backpropagation through time)",
        prose=(
            "One step of a gated recurrent unit: reset and update gates $r_t, z_t = \\sigma(\\cdot)$, "
            "candidate $n_t = \\tanh(W_n x_t + b_n + r_t \\circ u_t)$ with "
            "$u_t = U_n h_{t-1} + c_n$, and $h_t = (1 - z_t) \\circ n_t + z_t \\circ h_{t-1}$, "
            "with an upstream gradient $G$ on $h_t$. The state gradient "
            "$\\partial L / \\partial h_{t-1}$ is what the previous step receives: a direct path "
            "$G \\circ z_t$ through the update gate, and one through each gate's $U^T$."
        ),
        derivation=sd.derive(loss, params, names=names),
        parts=(
            part(
                "Gate adjoints by hand (verified)",
                *((v, where[v]) for v in (dn, dz, dr)),
                *(c.equation for c in claims),
            ),
        ),
        checks=(*claims, ExplicitDiff(loss, tuple(params), sizes={d: 1, h: 2, N: 1}, points=2)),
    )


@entry
def lstm_cell() -> Entry:
    d, h = sympy.symbols("d h", integer=True, positive=True)
    x, h0 = MatrixSymbol("x_{t}", d, N), MatrixSymbol("h_{t-1}", h, N)
    c0, G, Gc = MatrixSymbol("c_{t-1}", h, N), MatrixSymbol("G", h, N), MatrixSymbol("G_{c}", h, N)
    W = {g: MatrixSymbol(f"W_{{{g}}}", h, d) for g in "ifgo"}
    U = {g: MatrixSymbol(f"U_{{{g}}}", h, h) for g in "ifgo"}
    b = {g: MatrixSymbol(f"b_{{{g}}}", h, 1) for g in "ifgo"}
    full = OneMatrix(h, N)
    pre = {g: W[g] * x + U[g] * h0 + b[g] * OneMatrix(1, N) for g in "ifgo"}
    gate = {g: elementwise(sympy.tanh if g == "g" else sd.sigmoid, pre[g]) for g in "ifgo"}
    cell = hadamard(gate["f"], c0) + hadamard(gate["i"], gate["g"])
    squashed = elementwise(sympy.tanh, cell)
    state = hadamard(gate["o"], squashed)
    loss = upstream(G, state) + upstream(Gc, cell)
    names = {gate[g]: f"{g}_{{t}}" for g in "ifgo"} | {pre[g]: f"a^{{{g}}}_{{t}}" for g in "ifgo"}
    names |= {cell: "c_{t}", squashed: "k_{t}"}  # h_t = o_t∘k_t merges into G∘o_t∘k_t
    params = [*(U[g] for g in "ifgo"), W["g"], h0, c0]

    i_, f_, g_, o_, c_, k_ = (MatrixSymbol(f"{v}_{{t}}", h, N) for v in "ifgock")
    delta = {v: MatrixSymbol(f"\\delta^{{{v}}}_{{t}}", h, N) for v in "cifgo"}
    where = {
        delta["c"]: hadamard(G, o_, full - hadamard(k_, k_)) + Gc,
        delta["o"]: hadamard(G, k_, o_, full - o_),
        delta["i"]: hadamard(delta["c"], g_, i_, full - i_),
        delta["f"]: hadamard(delta["c"], c0, f_, full - f_),
        delta["g"]: hadamard(delta["c"], i_, full - hadamard(g_, g_)),
        k_: elementwise(sympy.tanh, c_),
        c_: hadamard(f_, c0) + hadamard(i_, g_),
    } | {v: gate[g] for v, g in zip((i_, f_, g_, o_), "ifgo", strict=True)}
    source = "Greff et al. (2017), LSTM: A Search Space Odyssey, without peepholes"
    claims = [
        *(Claim(dL(f"U_{{{g}}}"), delta[g] * h0.T, loss, U[g], source, where) for g in "ifgo"),
        Claim(dL("W_{g}"), delta["g"] * x.T, loss, W["g"], source, where),
        Claim(dL("h_{t-1}"), MatAdd(*(U[g].T * delta[g] for g in "ifgo")), loss, h0, source, where),
        Claim(dL("c_{t-1}"), hadamard(delta["c"], f_), loss, c0, source, where),
    ]
    return Entry(
        title="An LSTM cell (one step of backpropagation through time)",
        prose=(
            "One step of a long short-term memory cell (PyTorch's gates i, f, g, o): "
            "$c_t = f_t \\circ c_{t-1} + i_t \\circ g_t$ and $h_t = o_t \\circ \\tanh(c_t)$, "
            "with upstream gradients $G$ on $h_t$ and $G_c$ on $c_t$ (from the next step). "
            "The cell's error $\\delta^c_t$ reaches $c_{t-1}$ multiplied only by the forget "
            "gate, the path that lets gradients survive many steps."
        ),
        derivation=sd.derive(loss, params, names=names),
        parts=(
            part(
                "Gate adjoints by hand (verified)",
                *((delta[v], where[delta[v]]) for v in "cifgo"),
                *(c.equation for c in claims),
            ),
        ),
        checks=(*claims, ExplicitDiff(loss, tuple(params), sizes={d: 1, h: 2, N: 1}, points=2)),
    )
