"""Would a compiled recurrent step that loops over time be faster than symdl's unrolled one?
Hand-written NumPy backpropagation through time with a Python loop over t (the code a looped
step would run at best: the gates stacked into one product per step, the input projections
and the input weights' gradient one product over every step) against symdl's compiled unrolled
step, the same loss (a dense layer on h_T, cross-entropy), one thread, float64.

    python bench/recurrent_loop.py [--repeat 50] [--steps 8 32]

Checks first that the loop's loss and gradients equal symdl's (1e-10), then prints the median
time per step of each and the ratio loop / unrolled (below 1: the loop is faster).
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
from scipy.special import expit, log_softmax, softmax  # noqa: E402

from symdl import nn  # noqa: E402


def _dense_cross_entropy(h, V, c, Y):
    """Loss, the adjoint of h, and the dense layer's gradients (columns are examples)."""
    Z = V @ h + c[:, None]
    N = h.shape[1]
    loss = -np.sum(Y * log_softmax(Z, axis=0)) / N
    G = (softmax(Z, axis=0) - Y) / N
    return loss, V.T @ G, G @ h.T, G.sum(axis=1)


def rnn_loop(p, X, Y, name="rnn_1"):
    """X: (T, F, N). h_t = tanh(W x_t + U h_{t-1} + b), loss on dense(h_T)."""
    W, U, b = p[f"{name}.W_h"], p[f"{name}.U_h"], p[f"{name}.b_h"]
    T, F, N = X.shape
    projected = (W @ X.transpose(1, 0, 2).reshape(F, T * N)).reshape(-1, T, N)
    hs = [np.zeros((W.shape[0], N))]
    for t in range(T):
        hs.append(np.tanh(projected[:, t] + U @ hs[-1] + b[:, None]))
    loss, dh, dV, dc = _dense_cross_entropy(hs[-1], p["dense_1.W"], p["dense_1.b"], Y)
    dZ = np.empty_like(projected)
    dU = np.zeros_like(U)
    for t in range(T - 1, -1, -1):
        dz = dh * (1 - hs[t + 1] ** 2)
        dZ[:, t] = dz
        dh = U.T @ dz
    H = W.shape[0]
    dU = dZ[:, 1:].reshape(H, -1) @ np.stack(hs[1:-1], axis=1).reshape(H, -1).T
    dW = dZ.reshape(H, -1) @ X.transpose(1, 0, 2).reshape(F, T * N).T
    grads = {f"{name}.W_h": dW, f"{name}.U_h": dU, f"{name}.b_h": dZ.sum(axis=(1, 2))}
    return loss, grads | {"dense_1.W": dV, "dense_1.b": dc}


def lstm_loop(p, X, Y, name="lstm_1"):
    """PyTorch's LSTM (gates i, f, g, o stacked into one product per step), loss on
    dense(h_T)."""
    gates = "ifgo"
    W = np.concatenate([p[f"{name}.W_{g}"] for g in gates])
    U = np.concatenate([p[f"{name}.U_{g}"] for g in gates])
    b = np.concatenate([p[f"{name}.b_{g}"] for g in gates])
    T, F, N = X.shape
    H = U.shape[1]
    inputs = X.transpose(1, 0, 2).reshape(F, T * N)
    projected = (W @ inputs + np.repeat(b, 1)[:, None]).reshape(4 * H, T, N)
    h, c = np.zeros((H, N)), np.zeros((H, N))
    hs, cs, acts = [h], [c], []
    for t in range(T):
        z = projected[:, t] + U @ h
        i, f, o = expit(z[:H]), expit(z[H : 2 * H]), expit(z[3 * H :])
        g = np.tanh(z[2 * H : 3 * H])
        c = f * c + i * g
        h = o * np.tanh(c)
        hs.append(h)
        cs.append(c)
        acts.append((i, f, g, o))
    loss, dh, dV, dbias = _dense_cross_entropy(h, p["dense_1.W"], p["dense_1.b"], Y)
    dc = np.zeros((H, N))
    dZ = np.empty((4 * H, T, N))
    for t in range(T - 1, -1, -1):
        i, f, g, o = acts[t]
        tc = np.tanh(cs[t + 1])
        dc = dc + dh * o * (1 - tc**2)
        dZ[:H, t] = dc * g * i * (1 - i)
        dZ[H : 2 * H, t] = dc * cs[t] * f * (1 - f)
        dZ[2 * H : 3 * H, t] = dc * i * (1 - g**2)
        dZ[3 * H :, t] = dh * tc * o * (1 - o)
        dc = dc * f
        dh = U.T @ dZ[:, t]
    dW = dZ.reshape(4 * H, -1) @ inputs.T
    dU = dZ[:, 1:].reshape(4 * H, -1) @ np.stack(hs[1:-1], axis=1).reshape(H, -1).T
    db = dZ.sum(axis=(1, 2))
    grads = {}
    for k, gate in enumerate(gates):
        rows = slice(k * H, (k + 1) * H)
        grads |= {f"{name}.W_{gate}": dW[rows], f"{name}.U_{gate}": dU[rows]}
        grads[f"{name}.b_{gate}"] = db[rows]
    return loss, grads | {"dense_1.W": dV, "dense_1.b": dbias}


def timed(step, repeat):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def compare(name, layer, loop, T, repeat, rng):
    N, F, H, C = 32, 8, 64, 10  # examples/digits_gru.py
    model = nn.Sequential(layer(H), nn.Dense(C), input_shape=(T, F))
    start = time.perf_counter()
    compiled = model.compile()
    compile_seconds = time.perf_counter() - start
    params = model.init(0)
    X, y = rng.normal(size=(N, T, F)), rng.integers(0, C, N)
    Xt, Y = np.ascontiguousarray(X.transpose(1, 2, 0)), np.eye(C)[y].T
    loss, grads = compiled.loss_and_grads(params, X, y)
    loop_loss, loop_grads = loop(params, Xt, Y)
    assert abs(loop_loss - loss) <= 1e-10 * abs(loss), (loop_loss, loss)
    for key, g in grads.items():
        np.testing.assert_allclose(loop_grads[key], g, rtol=1e-10, atol=1e-12, err_msg=key)
    mine, theirs = [], []
    for _ in range(5):  # interleaved rounds: a busy machine slows both alike
        mine.append(timed(lambda: compiled.loss_and_grads(params, X, y), repeat // 5))
        theirs.append(timed(lambda: loop(params, Xt, Y), repeat // 5))
    a, b = statistics.median(mine), statistics.median(theirs)
    print(
        f"{name}({H}) T={T:<3} F={F} N={N}   compile {compile_seconds:6.1f} s   "
        f"unrolled {a * 1e3:7.3f} ms   loop {b * 1e3:7.3f} ms   loop/unrolled {b / a:5.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--steps", type=int, nargs="+", default=[8, 32])
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    for T in args.steps:
        compare("RNN", nn.RNN, rnn_loop, T, args.repeat, rng)
        compare("LSTM", nn.LSTM, lstm_loop, T, args.repeat, rng)


if __name__ == "__main__":
    main()
