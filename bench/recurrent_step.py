"""Cost of one training step (loss and gradients) of a recurrent layer, of an attention
layer and of scripts/transformer_sort.py's transformer, symdl against PyTorch with the same
weights, one thread, float64, at the sizes of the examples.

    python bench/recurrent_step.py [--repeat 50] [--only attention]

Prints the compile time of each symdl model, the median time per step of each (interleaved
rounds, the process's CPU time) and the ratio symdl / PyTorch (below 1: symdl is faster).
The transformer's losses are checked equal (to 1e-10) before it is timed.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from symdl import nn  # noqa: E402

torch.set_num_threads(1)


def timed(step, repeat):
    times = []
    for _ in range(repeat):
        start = time.process_time()
        step()
        times.append(time.process_time() - start)
    return statistics.median(times)


def case(name, model, torch_module, torch_loss, X, y, repeat, params=None, torch_X=None):
    start = time.process_time()
    compiled = model.compile()
    compile_seconds = time.process_time() - start
    params = model.init(0) if params is None else params
    Xt, yt = torch.tensor(X if torch_X is None else torch_X), torch.tensor(y)

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


class Sorter(torch.nn.Module):
    """scripts/transformer_sort.py's model: embedding, sinusoidal positions, a post-norm
    encoder layer, a dense layer on every token; its loss sums each position's cross-entropy."""

    def __init__(self, symbols, d, heads, hidden, T):
        super().__init__()
        self.embedding = torch.nn.Embedding(symbols, d).double()
        self.register_buffer("positions", torch.tensor(nn.attention.sinusoidal(T, d)))
        self.block = torch.nn.TransformerEncoderLayer(
            d, heads, hidden, dropout=0.0, batch_first=True
        ).double()
        self.out = torch.nn.Linear(d, symbols).double()

    def forward(self, tokens):
        return self.out(self.block(self.embedding(tokens) + self.positions))

    def load(self, params):
        """symdl's parameters (scripts/transformer_sort.py's layer names) into this module."""
        block, t = self.block, lambda name: torch.tensor(params[name])
        with torch.no_grad():
            self.embedding.weight.copy_(t("embedding_1.E").T)
            attention = block.self_attn
            attention.in_proj_weight.copy_(torch.cat([t(f"attention_1.W_{k}") for k in "qkv"]))
            attention.in_proj_bias.copy_(torch.cat([t(f"attention_1.b_{k}") for k in "qkv"]))
            attention.out_proj.weight.copy_(t("attention_1.W_o"))
            attention.out_proj.bias.copy_(t("attention_1.b_o"))
            dense = (block.linear1, block.linear2, self.out)
            for linear, mine in zip(
                dense, ("token_dense_1", "token_dense_2", "token_dense_3"), strict=True
            ):
                linear.weight.copy_(t(f"{mine}.W"))
                linear.bias.copy_(t(f"{mine}.b"))
            for norm, mine in ((block.norm1, "token_norm_1"), (block.norm2, "token_norm_2")):
                norm.weight.copy_(t(f"{mine}.gamma"))
                norm.bias.copy_(t(f"{mine}.beta"))


def position_cross_entropy(module, X, y):
    logits = module(X)
    return sum(torch.nn.functional.cross_entropy(logits[:, t], y[:, t]) for t in range(y.shape[1]))


def transformer_case(repeat):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
    import transformer_sort  # noqa: PLC0415

    T, symbols, d = transformer_sort.T, transformer_sort.SYMBOLS, transformer_sort.DIM
    model, N = transformer_sort.build(), 32
    rng = np.random.default_rng(1)
    params = {k: v + 0.1 * rng.normal(size=v.shape) for k, v in model.init(0).items()}
    tokens = rng.integers(0, symbols, size=(N, T))
    X, y = nn.one_hot(tokens, symbols), np.sort(tokens, axis=1)
    reference = Sorter(symbols, d, 2, 2 * d, T)
    reference.load(params)
    mine = model.compile().loss_and_grads(params, X, y)[0]
    theirs = position_cross_entropy(reference, torch.tensor(tokens), torch.tensor(y)).item()
    if abs(mine - theirs) > 1e-10 * abs(theirs):
        raise SystemExit(f"transformer: symdl's loss {mine} is not PyTorch's {theirs}")
    case(  # PyTorch reads the token ids, symdl their one-hot vectors
        f"transformer_sort T={T} d={d} N={N}",
        model,
        reference,
        position_cross_entropy,
        X,
        y,
        repeat,
        params,
        torch_X=tokens,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--only", choices=["recurrent", "attention"], default=None)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    if args.only != "attention":
        recurrent_cases(rng, args.repeat)
    if args.only != "recurrent":
        attention_case(rng, args.repeat)
        transformer_case(args.repeat)


def recurrent_cases(rng, repeat):
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
            repeat,
        )


def attention_case(rng, repeat):
    N, C = 32, 10
    T, d, heads = 4, 16, 2
    X, y = rng.normal(size=(N, T, d)), rng.integers(0, C, N)
    model = nn.Sequential(nn.SelfAttention(heads), nn.Flatten(), nn.Dense(C), input_shape=(T, d))
    reference = Attend(d, heads, T, C)
    case(
        f"SelfAttention({heads}) T={T} d={d} N={N}",
        model,
        reference,
        cross_entropy,
        X,
        y,
        repeat,
    )


if __name__ == "__main__":
    main()
