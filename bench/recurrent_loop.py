"""Does a compiled recurrent step that loops over time beat symdl's unrolled one? symdl's
two compiled steps of the same model (`unroll=True`: the code unrolled over the T steps;
`unroll=False`: one op whose kernel loops over t, symdl.nn.scan), hand-written NumPy
backpropagation through time (RNN and LSTM: the gates stacked into one product per step) and
PyTorch's nn.RNN/GRU/LSTM with autograd, the same loss (a dense layer on h_T, cross-entropy),
one thread, float64, N = 32, F = 8, 64 units (examples/digits_gru.py).

    python bench/recurrent_loop.py [--repeat 50] [--steps 8 32] [--layers RNN GRU LSTM]

Checks first that the looped step's loss and gradients equal the unrolled step's (1e-10), and
the hand loop's, then prints each compile time and the median time per step (process CPU
clock, interleaved rounds), and the ratios looped / unrolled and looped / PyTorch.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from scipy.special import expit, log_softmax, softmax  # noqa: E402

from symdl import nn  # noqa: E402

torch.set_num_threads(1)
N, F, H, C = 32, 8, 64, 10  # examples/digits_gru.py


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
        start = time.process_time()
        step()
        times.append(time.process_time() - start)
    return statistics.median(times)


def compiled(layer, T, unroll):
    model = nn.Sequential(layer(H, unroll=unroll), nn.Dense(C), input_shape=(T, F))
    start = time.process_time()
    step = model.compile()
    return model, step, time.process_time() - start


class Last(torch.nn.Module):
    def __init__(self, recurrent):
        super().__init__()
        self.recurrent, self.dense = recurrent, torch.nn.Linear(H, C).double()

    def forward(self, x):
        return self.dense(self.recurrent(x)[0][:, -1])


def torch_model(layer, params):
    """PyTorch's layer with symdl's weights (gates stacked, the summed bias in bias_ih)."""
    kind, gates = layer.kind, layer.gates
    module = {"rnn": torch.nn.RNN, "gru": torch.nn.GRU, "lstm": torch.nn.LSTM}[kind]
    reference = Last(module(F, H, batch_first=True).double())
    name = f"{kind}_1"

    def stacked(letter):
        return torch.tensor(np.concatenate([params[f"{name}.{letter}_{g}"] for g in gates]))

    hidden = np.zeros(len(gates) * H)
    if kind == "gru":
        hidden[2 * H :] = params[f"{name}.c_n"]
    r = reference.recurrent
    with torch.no_grad():
        r.weight_ih_l0.copy_(stacked("W"))
        r.weight_hh_l0.copy_(stacked("U"))
        r.bias_ih_l0.copy_(stacked("b"))
        r.bias_hh_l0.copy_(torch.tensor(hidden))
        reference.dense.weight.copy_(torch.tensor(params["dense_1.W"]))
        reference.dense.bias.copy_(torch.tensor(params["dense_1.b"]))
    return reference


def compare(layer, loop, T, repeat, rng):
    model, looped, looped_seconds = compiled(layer, T, unroll=False)
    _, unrolled, unrolled_seconds = compiled(layer, T, unroll=True)
    params = model.init(0)
    X, y = rng.normal(size=(N, T, F)), rng.integers(0, C, N)
    loss, grads = unrolled.loss_and_grads(params, X, y)
    mine, mine_grads = looped.loss_and_grads(params, X, y)
    assert abs(mine - loss) <= 1e-10 * abs(loss), (mine, loss)
    for key, g in grads.items():
        np.testing.assert_allclose(mine_grads[key], g, rtol=1e-10, atol=1e-12, err_msg=key)
    steps = {
        "looped": lambda: looped.loss_and_grads(params, X, y),
        "unrolled": lambda: unrolled.loss_and_grads(params, X, y),
    }
    if loop is not None:
        Xt, Y = np.ascontiguousarray(X.transpose(1, 2, 0)), np.eye(C)[y].T
        loop_loss, loop_grads = loop(params, Xt, Y)
        assert abs(loop_loss - loss) <= 1e-10 * abs(loss), (loop_loss, loss)
        steps["hand loop"] = lambda: loop(params, Xt, Y)
    reference, Xtorch, ytorch = torch_model(layer, params), torch.tensor(X), torch.tensor(y)

    def torch_step():
        reference.zero_grad()
        torch.nn.functional.cross_entropy(reference(Xtorch), ytorch).backward()

    steps["torch"] = torch_step
    times = {key: [] for key in steps}
    for _ in range(5):  # interleaved rounds: a busy machine slows all alike
        for key, step in steps.items():
            times[key].append(timed(step, max(1, repeat // 5)))
    t = {key: statistics.median(v) * 1e3 for key, v in times.items()}
    hand = f"{t['hand loop']:7.3f} ms" if "hand loop" in t else "      -   "
    print(
        f"| {layer.__name__} | {T} | {unrolled_seconds:.1f} s | {looped_seconds:.2f} s | "
        f"{t['unrolled']:.3f} ms | {t['looped']:.3f} ms | {hand} | {t['torch']:.3f} ms | "
        f"{t['looped'] / t['unrolled']:.2f} | {t['looped'] / t['torch']:.2f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--steps", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--layers", nargs="+", default=["RNN", "GRU", "LSTM"])
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    loops = {"RNN": rnn_loop, "GRU": None, "LSTM": lstm_loop}
    print(
        "| layer | T | compile unrolled | compile looped | unrolled step | looped step | "
        "hand loop | PyTorch | looped / unrolled | looped / PyTorch |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for T in args.steps:
        for name in args.layers:
            compare(getattr(nn, name), loops[name], T, args.repeat, rng)


if __name__ == "__main__":
    main()
