"""Cost of one training step of a graph model (`nn.Model`) against the same layers as a
Sequential and against hand-written NumPy, measured in the same run, one thread.

    python bench/graph_step.py [--repeat 100] [--dtype float32|float64|both] [--clock cpu|wall]

The two symdl models have the same layers, names and parameters and compile to the same
step; what differs is the model object the compiled step was made from. The rows are
bench/train_step.py's MLPs (784-128-10 ReLU with cross-entropy, 2-16-16-1 tanh with MSE).
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # one thread, before NumPy loads: stable, comparable timings

import argparse  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
from train_step import (  # noqa: E402
    CLOCK,
    as_plain,
    numpy_mlp_relu_ce,
    numpy_mlp_tanh_mse,
    symdl_step,
    timed,
)

from symdl import nn  # noqa: E402


def as_graph(width: int, layers: list, loss: str) -> nn.Model:
    """The layers applied one after the other to an Input: a Sequential written as a graph."""
    x = h = nn.Input(width)
    for layer in layers:
        h = layer(h)
    return nn.Model(x, h, loss=loss)


def mlp_784(dtype):
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(128, 784)).astype(dtype), rng.integers(0, 10, size=128)

    def layers():
        return [nn.Dense(128, "relu"), nn.Dense(10)]

    names = {"W1": "dense_1.W", "b1": "dense_1.b", "W2": "dense_2.W", "b2": "dense_2.b"}
    sequential = nn.Sequential(*layers(), input_shape=784)
    return (
        "784-128-10 ReLU, CE, batch 128",
        sequential,
        as_graph(784, layers(), "cross_entropy"),
        X,
        y,
        numpy_mlp_relu_ce,
        names,
    )


def mlp_tanh(dtype):
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(64, 2)).astype(dtype), rng.normal(size=64).astype(dtype)

    def layers():
        return [nn.Dense(16, "tanh"), nn.Dense(16, "tanh"), nn.Dense(1)]

    names = {f"{p}{i}": f"dense_{i}.{p}" for i in (1, 2, 3) for p in "Wb"}
    sequential = nn.Sequential(*layers(), loss="mse", input_shape=2)
    return (
        "2-16-16-1 tanh, MSE, batch 64",
        sequential,
        as_graph(2, layers(), "mse"),
        X,
        y,
        numpy_mlp_tanh_mse,
        names,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=100, help="rounds of 5 steps each")
    parser.add_argument("--dtype", choices=("float64", "float32", "both"), default="float64")
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu")
    args = parser.parse_args()
    CLOCK[0] = time.process_time if args.clock == "cpu" else time.perf_counter
    print(f"clock: {'process CPU time' if args.clock == 'cpu' else 'wall time'}")
    dtypes = ("float64", "float32") if args.dtype == "both" else (args.dtype,)
    rows = []
    for dtype in map(np.dtype, dtypes):
        for make in (mlp_784, mlp_tanh):
            title, sequential, graph, X, y, hand, names = make(dtype)
            steps = {
                "Sequential": symdl_step(sequential, X, y),
                "graph Model": symdl_step(graph, X, y),
                "NumPy by hand": hand(as_plain(sequential.init(0, dtype=dtype), names), X, y),
            }
            times = timed(steps, args.repeat)
            print(f"\n{title}, {dtype}")
            for name, value in times.items():
                print(f"  {name:<14} {value * 1e6:>9.1f} us per step")
            rows.append((title, str(dtype), times))
    print(
        "\n| model | dtype | Sequential | graph Model | NumPy by hand | graph / Sequential | Sequential / by hand |"
    )
    print("|---|---|---:|---:|---:|---:|---:|")
    for title, dtype, t in rows:
        seq, graph, hand = t["Sequential"], t["graph Model"], t["NumPy by hand"]
        print(
            f"| {title} | {dtype} | {seq * 1e6:.0f} µs | {graph * 1e6:.0f} µs | {hand * 1e6:.0f} µs "
            f"| {graph / seq:.2f}x | {seq / hand:.2f}x |"
        )


if __name__ == "__main__":
    main()
