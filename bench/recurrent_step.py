"""Cost of one training step (loss and gradients) of a recurrent layer and of an attention
layer, symdl against PyTorch with the same weights, one thread, float64, at the sizes of the
examples.

    python bench/recurrent_step.py [--repeat 50]

Prints the compile time of each symdl model, the median time per step of each (interleaved
rounds) and the ratio symdl / PyTorch (below 1: symdl is faster).
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

from symdl import nn  # noqa: E402

torch.set_num_threads(1)


def timed(step, repeat):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def case(name, model, torch_module, torch_loss, X, y, repeat):
    start = time.perf_counter()
    compiled = model.compile()
    compile_seconds = time.perf_counter() - start
    params = model.init(0)
    Xt, yt = torch.tensor(X), torch.tensor(y)

    def symdl_step():
        compiled.loss_and_grads(params, X, y)

    def torch_step():
        torch_module.zero_grad()
        torch_loss(torch_module, Xt, yt).backward()

    mine, theirs = [], []
    for _ in range(5):  # interleaved rounds: a busy machine slows both alike
        mine.append(timed(symdl_step, repeat // 5))
        theirs.append(timed(torch_step, repeat // 5))
    a, b = statistics.median(mine), statistics.median(theirs)
    print(
        f"{name:<34} compile {compile_seconds:6.1f} s   symdl {a * 1e3:7.3f} ms   "
        f"torch {b * 1e3:7.3f} ms   ratio {a / b:5.2f}"
    )


class Last(torch.nn.Module):
    def __init__(self, recurrent, hidden, classes):
        super().__init__()
        self.recurrent, self.dense = recurrent, torch.nn.Linear(hidden, classes).double()

    def forward(self, x):
        return self.dense(self.recurrent(x)[0][:, -1])


class Attend(torch.nn.Module):
    def __init__(self, d, heads, T, classes):
        super().__init__()
        self.mha = torch.nn.MultiheadAttention(d, heads, batch_first=True).double()
        self.dense = torch.nn.Linear(T * d, classes).double()

    def forward(self, x):
        return self.dense(self.mha(x, x, x, need_weights=False)[0].reshape(len(x), -1))


def cross_entropy(module, X, y):
    return torch.nn.functional.cross_entropy(module(X), y)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=50)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    N, T, F, H, C = 32, 8, 8, 64, 10  # examples/digits_gru.py
    X, y = rng.normal(size=(N, T, F)), rng.integers(0, C, N)
    for cls, module in ((nn.RNN, torch.nn.RNN), (nn.GRU, torch.nn.GRU), (nn.LSTM, torch.nn.LSTM)):
        model = nn.Sequential(cls(H), nn.Dense(C), input_shape=(T, F))
        reference = Last(module(F, H, batch_first=True).double(), H, C)
        case(
            f"{cls.__name__}({H}) T={T} F={F} N={N}",
            model,
            reference,
            cross_entropy,
            X,
            y,
            args.repeat,
        )
    T, d, heads = 4, 16, 2
    X = rng.normal(size=(N, T, d))
    model = nn.Sequential(nn.SelfAttention(heads), nn.Flatten(), nn.Dense(C), input_shape=(T, d))
    reference = Attend(d, heads, T, C)
    case(
        f"SelfAttention({heads}) T={T} d={d} N={N}",
        model,
        reference,
        cross_entropy,
        X,
        y,
        args.repeat,
    )


if __name__ == "__main__":
    main()
