"""Cost of one training step (forward, backward, SGD update), symdl against hand-written NumPy
and PyTorch, measured in the same run, float64, one thread.

    python bench/train_step.py [--repeat 200]

Prints per-step times (median of repeats), their ratios, the compile time of the 784-128-10
model and the peak memory of one step (tracemalloc: NumPy allocations).
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # one thread, before NumPy loads: stable, comparable timings

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
import tracemalloc  # noqa: E402

import numpy as np  # noqa: E402

from symdl import nn, optim  # noqa: E402

LR = 0.01


def timed(steps: dict, repeat: int, calls: int = 5) -> dict:
    """Median seconds per call of each step, the steps measured in alternation (round after
    round) so that a change in the machine's load touches them all alike."""
    for step in steps.values():
        for _ in range(5):
            step()
    samples: dict = {name: [] for name in steps}
    for _ in range(repeat):
        for name, step in steps.items():
            start = time.perf_counter()
            for _ in range(calls):
                step()
            samples[name].append((time.perf_counter() - start) / calls)
    return {name: statistics.median(times) for name, times in samples.items()}


def peak_bytes(step) -> int:
    step()
    tracemalloc.start()
    step()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


# ----------------------------------------------------------------------------- symdl
def symdl_step(model, X, y, seed=0):
    params = model.init(seed)
    compiled = model.compile()
    sgd = optim.SGD(lr=LR)

    def step():
        _, grads = compiled.loss_and_grads(params, X, y)
        sgd.step(params, grads)

    return step


# ----------------------------------------------------------------------------- NumPy by hand
def numpy_mlp_relu_ce(params, X, y):
    """784-128-10 ReLU MLP, softmax cross-entropy, rows are examples, as a person writes it."""
    W1, b1, W2, b2 = params["W1"], params["b1"], params["W2"], params["b2"]
    N = len(X)
    Y = np.zeros((N, W2.shape[0]))
    Y[np.arange(N), y] = 1.0

    def step():
        Z1 = X @ W1.T + b1
        A1 = np.maximum(Z1, 0.0)
        Z2 = A1 @ W2.T + b2
        shifted = Z2 - Z2.max(axis=1, keepdims=True)
        exp = np.exp(shifted)
        total = exp.sum(axis=1, keepdims=True)
        loss = np.mean(np.log(total[:, 0]) - (shifted * Y).sum(axis=1))
        dZ2 = (exp / total - Y) / N
        dW2 = dZ2.T @ A1
        db2 = dZ2.sum(axis=0)
        dZ1 = (dZ2 @ W2) * (Z1 > 0)
        dW1 = dZ1.T @ X
        db1 = dZ1.sum(axis=0)
        for p, g in ((W1, dW1), (b1, db1), (W2, dW2), (b2, db2)):
            p -= LR * g
        return loss

    return step


def numpy_mlp_tanh_mse(params, X, y):
    """2-16-16-1 tanh MLP with MSE, by hand."""
    W1, b1, W2, b2, W3, b3 = (params[k] for k in ("W1", "b1", "W2", "b2", "W3", "b3"))
    N = len(X)
    Y = y.reshape(N, 1)

    def step():
        A1 = np.tanh(X @ W1.T + b1)
        A2 = np.tanh(A1 @ W2.T + b2)
        out = A2 @ W3.T + b3
        diff = out - Y
        loss = np.mean(diff**2)
        d3 = 2 * diff / N
        dW3, db3 = d3.T @ A2, d3.sum(axis=0)
        d2 = (d3 @ W3) * (1 - A2**2)
        dW2, db2 = d2.T @ A1, d2.sum(axis=0)
        d1 = (d2 @ W2) * (1 - A1**2)
        dW1, db1 = d1.T @ X, d1.sum(axis=0)
        for p, g in ((W1, dW1), (b1, db1), (W2, dW2), (b2, db2), (W3, dW3), (b3, db3)):
            p -= LR * g
        return loss

    return step


def as_plain(params, names):
    """symdl's parameter dict renamed W1, b1, ... for the hand-written and torch steps."""
    return {new: params[old].copy() for new, old in names.items()}


# ----------------------------------------------------------------------------- PyTorch
def torch_step(params, X, y, loss_name, activation):
    import torch

    torch.set_num_threads(1)
    tensors = {
        k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in params.items()
    }
    Xt = torch.tensor(X, dtype=torch.float64)
    yt = (
        torch.tensor(y)
        if loss_name == "ce"
        else torch.tensor(y, dtype=torch.float64).reshape(-1, 1)
    )
    layers = sorted({k[1:] for k in tensors})
    act = torch.relu if activation == "relu" else torch.tanh
    opt = torch.optim.SGD(list(tensors.values()), lr=LR)

    def step():
        h = Xt
        for i, index in enumerate(layers):
            h = h @ tensors[f"W{index}"].T + tensors[f"b{index}"]
            if i < len(layers) - 1:
                h = act(h)
        if loss_name == "ce":
            loss = torch.nn.functional.cross_entropy(h, yt)
        else:
            loss = torch.nn.functional.mse_loss(h, yt)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss

    return step


def torch_cnn_step(params, X, y):
    """The digits CNN of examples/digits_cnn.py (without dropout) in PyTorch."""
    import torch

    F = torch.nn.functional
    torch.set_num_threads(1)
    t = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in params.items()}
    Xt, yt = torch.tensor(X, dtype=torch.float64), torch.tensor(y)
    opt = torch.optim.SGD(list(t.values()), lr=LR)

    def step():
        h = F.max_pool2d(F.relu(F.conv2d(Xt, t["conv2d_1.K"], t["conv2d_1.b"], padding=1)), 2)
        h = F.relu(h.flatten(1) @ t["dense_1.W"].T + t["dense_1.b"])
        loss = F.cross_entropy(h @ t["dense_2.W"].T + t["dense_2.b"], yt)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss

    return step


def report(title, seconds: dict, targets: dict) -> None:
    """Times per step, and symdl's time over each reference's with the issue's target."""
    print(f"\n{title}")
    for name, value in seconds.items():
        print(f"  {name:<16} {value * 1e6:>9.1f} us per step")
    for name, (bound, text) in targets.items():
        if name in seconds:
            ratio = seconds["symdl"] / seconds[name]
            if bound is None:
                print(f"  symdl / {name:<16} {ratio:5.2f}x   (no target)")
                continue
            verdict = "met" if bound(ratio) else "NOT met"
            print(f"  symdl / {name:<16} {ratio:5.2f}x   (target {text}: {verdict})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=100, help="rounds of 5 steps each")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    try:
        import torch  # noqa: F401

        have_torch = True
    except ImportError:
        have_torch = False
        print("PyTorch is not installed: its columns are skipped (pip install torch==2.13.0)")

    # 784-128-10 ReLU MLP, softmax cross-entropy, batch 128
    start = time.perf_counter()
    big = nn.Sequential(nn.Dense(128, "relu"), nn.Dense(10), input_shape=784)
    big.compile()
    compile_seconds = time.perf_counter() - start
    X = rng.normal(size=(128, 784))
    y = rng.integers(0, 10, size=128)
    names = {"W1": "dense_1.W", "b1": "dense_1.b", "W2": "dense_2.W", "b2": "dense_2.b"}
    steps = {
        "symdl": symdl_step(big, X, y),
        "NumPy by hand": numpy_mlp_relu_ce(as_plain(big.init(0), names), X, y),
    }
    if have_torch:
        steps["PyTorch CPU"] = torch_step(as_plain(big.init(0), names), X, y, "ce", "relu")
    report(
        "784-128-10 ReLU MLP, softmax cross-entropy, batch 128 (forward, backward, SGD update)",
        timed(steps, args.repeat),
        {
            "NumPy by hand": (lambda r: r <= 1.2, "<= 1.2x"),
            "PyTorch CPU": (lambda r: r <= 1.3, "<= 1.3x"),
        },
    )
    print(f"  compile time of the model: {compile_seconds:.2f} s (target < 2 s)")
    sym_peak = peak_bytes(symdl_step(big, X, y))
    hand_peak = peak_bytes(numpy_mlp_relu_ce(as_plain(big.init(0), names), X, y))
    print(
        f"  peak memory of one step (NumPy allocations, tracemalloc): symdl "
        f"{sym_peak / 2**20:.2f} MiB, by hand {hand_peak / 2**20:.2f} MiB"
    )

    # 2-16-16-1 tanh MLP, MSE, batch 64
    small = nn.Sequential(
        nn.Dense(16, "tanh"), nn.Dense(16, "tanh"), nn.Dense(1), loss="mse", input_shape=2
    )
    X = rng.normal(size=(64, 2))
    y = rng.normal(size=64)
    names = {f"{p}{i}": f"dense_{i}.{p}" for i in (1, 2, 3) for p in "Wb"}
    steps = {
        "symdl": symdl_step(small, X, y),
        "NumPy by hand": numpy_mlp_tanh_mse(as_plain(small.init(0), names), X, y),
    }
    if have_torch:
        steps["PyTorch CPU"] = torch_step(as_plain(small.init(0), names), X, y, "mse", "tanh")
    report(
        "2-16-16-1 tanh MLP, MSE, batch 64 (per-op overhead dominates)",
        timed(steps, args.repeat * 5),
        {
            "NumPy by hand": (None, ""),
            "PyTorch CPU": (lambda r: r <= 1 / 3, "<= 0.33x, i.e. at least 3x faster"),
        },
    )
    convolutional(args.repeat, have_torch, rng)


def convolutional(repeat: int, have_torch: bool, rng) -> None:
    """The digits CNN: conv 3x3 x32 "same", ReLU, max-pool 2, dense 128 ReLU, dense 10."""
    cnn = nn.Sequential(
        nn.Conv2d(32, 3, padding="same", activation="relu"),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Dense(128, "relu"),
        nn.Dense(10),
        input_shape=(1, 8, 8),
    )
    X, y = rng.normal(size=(32, 1, 8, 8)), rng.integers(0, 10, size=32)
    steps = {"symdl": symdl_step(cnn, X, y)}
    if have_torch:
        steps["PyTorch CPU"] = torch_cnn_step(cnn.init(0), X, y)
    report(
        "digits CNN (1x8x8, conv 3x3 x32, max-pool 2, 512-128-10), batch 32",
        timed(steps, repeat),
        {"PyTorch CPU": (None, "")},
    )


if __name__ == "__main__":
    main()
