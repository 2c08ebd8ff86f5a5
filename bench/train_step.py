"""Cost of one training step (forward, backward, SGD update), symdl against hand-written NumPy
and PyTorch, measured in the same run, float64 and float32, one thread.

    python bench/train_step.py [--repeat 100] [--dtype float32|float64|both] [--only BatchNorm]
                               [--clock cpu|wall]

Prints per-step times (median of interleaved rounds), their ratios, the compile time of each
model, the peak memory of one step (tracemalloc: NumPy allocations) and, at the end, the table
of every model and dtype as docs/benchmarks.md shows it. The default clock is the process's
CPU time, which a machine shared with other jobs disturbs far less than the wall clock: every
engine runs on one thread here, so on an idle machine the two agree.
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
from numpy.lib.stride_tricks import sliding_window_view  # noqa: E402

from symdl import nn, optim  # noqa: E402

LR = 0.01
TABLE: list[tuple] = []  # (model, dtype, {name: seconds}, compile seconds)
ONLY = [""]  # --only: a part of the titles of the models to measure
CLOCK = [time.process_time]  # --clock: process CPU time (default) or perf_counter (wall)


def timed(steps: dict, repeat: int, calls: int = 5) -> dict:
    """Median seconds per call of each step, the steps measured in alternation (round after
    round) so that a change in the machine's load touches them all alike. The order is
    shuffled each round: a step run right after another finds the caches full of the other's
    code and data (a PyTorch step's, say), which cost the step always run after PyTorch's
    15-30 µs of its ~55 on the 2-16-16-1 network; shuffled, each step follows each other
    about equally often (a fixed or rotated order keeps the same predecessor)."""
    for step in steps.values():
        for _ in range(5):
            step()
    samples: dict = {name: [] for name in steps}
    order, shuffle = list(steps.items()), np.random.default_rng(0).permutation
    for _ in range(repeat):
        for name, step in (order[i] for i in shuffle(len(order))):
            clock = CLOCK[0]
            start = clock()
            for _ in range(calls):
                step()
            samples[name].append((clock() - start) / calls)
    return {name: statistics.median(times) for name, times in samples.items()}


def peak_bytes(step) -> int:
    step()
    tracemalloc.start()
    step()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


# ----------------------------------------------------------------------------- symdl
def symdl_step(model, X, y, seed=0, compiled=None):
    params = model.init(seed, dtype=X.dtype)
    compiled = compiled or model.compile()
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
    Y = np.zeros((N, W2.shape[0]), dtype=X.dtype)
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
    Y = y.reshape(N, 1).astype(X.dtype)

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


def numpy_cnn(params, X, y):
    """The digits CNN by hand: im2col of every 3x3 window, one GEMM, pooling by a reshape to
    2x2 tiles, channels last inside the step (as a person writing it for speed would)."""
    K, bK, W1, b1, W2, b2 = (params[k] for k in ("K", "bK", "W1", "b1", "W2", "b2"))
    N, F = len(X), K.shape[0]
    Y = np.zeros((N, W2.shape[0]), dtype=X.dtype)
    Y[np.arange(N), y] = 1.0
    xp = np.pad(X, ((0, 0), (0, 0), (1, 1), (1, 1)))
    cols = (
        sliding_window_view(xp, (3, 3), axis=(2, 3)).transpose(0, 2, 3, 1, 4, 5).reshape(N * 64, -1)
    )

    def step():
        Z1 = cols @ K.reshape(F, -1).T + bK  # (N·64, F)
        A1 = np.maximum(Z1, 0.0)
        tiles = A1.reshape(N, 4, 2, 4, 2, F)
        P = tiles.max(axis=(2, 4))  # (N, 4, 4, F)
        flat = P.transpose(0, 3, 1, 2).reshape(N, -1)
        Z2 = flat @ W1.T + b1
        A2 = np.maximum(Z2, 0.0)
        Z3 = A2 @ W2.T + b2
        shifted = Z3 - Z3.max(axis=1, keepdims=True)
        exp = np.exp(shifted)
        total = exp.sum(axis=1, keepdims=True)
        loss = np.mean(np.log(total[:, 0]) - (shifted * Y).sum(axis=1))
        dZ3 = (exp / total - Y) / N
        dW2, db2 = dZ3.T @ A2, dZ3.sum(axis=0)
        dZ2 = (dZ3 @ W2) * (Z2 > 0)
        dW1, db1 = dZ2.T @ flat, dZ2.sum(axis=0)
        dP = (dZ2 @ W1).reshape(N, F, 4, 4).transpose(0, 2, 3, 1)
        routed = (tiles == P[:, :, None, :, None]) * dP[:, :, None, :, None]
        dZ1 = routed.reshape(N * 64, F) * (Z1 > 0)
        dK, dbK = (dZ1.T @ cols).reshape(K.shape), dZ1.sum(axis=0)
        for p, g in ((K, dK), (bK, dbK), (W1, dW1), (b1, db1), (W2, dW2), (b2, db2)):
            p -= LR * g
        return loss

    return step


def numpy_batchnorm_mlp(params, X, y, depth, state):
    """depth x [Dense, BatchNorm, ReLU] + Dense, by hand: the textbook batch-norm backward
    dZ = (1/N) γ σ⁻¹ (N dŶ − Σ dŶ − X̂ Σ dŶ∘X̂), running averages updated as PyTorch does."""
    N, eps, momentum = len(X), 1e-5, 0.1
    Y = np.zeros((N, params[f"W{depth + 1}"].shape[0]), dtype=X.dtype)
    Y[np.arange(N), y] = 1.0

    def step():
        A, saved = X, []
        for i in range(1, depth + 1):
            Z = A @ params[f"W{i}"].T + params[f"b{i}"]
            mean = Z.mean(axis=0)
            centred = Z - mean
            var = (centred * centred).mean(axis=0)
            inv = 1.0 / np.sqrt(var + eps)
            Xh = centred * inv
            out = params[f"gamma{i}"] * Xh + params[f"beta{i}"]
            saved.append((A, Xh, inv, out))
            state[f"mean{i}"] = (1 - momentum) * state[f"mean{i}"] + momentum * mean
            state[f"var{i}"] = (1 - momentum) * state[f"var{i}"] + momentum * var * N / (N - 1)
            A = np.maximum(out, 0.0)
        W, b = params[f"W{depth + 1}"], params[f"b{depth + 1}"]
        Z = A @ W.T + b
        shifted = Z - Z.max(axis=1, keepdims=True)
        exp = np.exp(shifted)
        total = exp.sum(axis=1, keepdims=True)
        loss = np.mean(np.log(total[:, 0]) - (shifted * Y).sum(axis=1))
        dZ = (exp / total - Y) / N
        grads = {f"W{depth + 1}": dZ.T @ A, f"b{depth + 1}": dZ.sum(axis=0)}
        dA = dZ @ W
        for i in range(depth, 0, -1):
            A_in, Xh, inv, out = saved[i - 1]
            dout = dA * (out > 0)
            grads[f"gamma{i}"], grads[f"beta{i}"] = (dout * Xh).sum(axis=0), dout.sum(axis=0)
            dXh = dout * params[f"gamma{i}"]
            dZ = (inv / N) * (N * dXh - dXh.sum(axis=0) - Xh * (dXh * Xh).sum(axis=0))
            grads[f"W{i}"], grads[f"b{i}"] = dZ.T @ A_in, dZ.sum(axis=0)
            if i > 1:
                dA = dZ @ params[f"W{i}"]
        for name, g in grads.items():
            params[name] -= LR * g
        return loss

    return step


def as_plain(params, names):
    """symdl's parameter dict renamed W1, b1, ... for the hand-written and torch steps."""
    return {new: params[old].copy() for new, old in names.items()}


# ----------------------------------------------------------------------------- PyTorch
def torch_step(params, X, y, loss_name, activation):
    import torch

    torch.set_num_threads(1)
    tensors = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    Xt = torch.tensor(X)
    yt = torch.tensor(y) if loss_name == "ce" else torch.tensor(y).reshape(-1, 1)
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
    t = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    Xt, yt = torch.tensor(X), torch.tensor(y)
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


def torch_batchnorm_step(params, X, y, depth):
    """depth x [Dense, BatchNorm, ReLU] + Dense in PyTorch, running statistics kept."""
    import torch

    F = torch.nn.functional
    torch.set_num_threads(1)
    t = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    Xt, yt = torch.tensor(X), torch.tensor(y)
    running = {
        i: (torch.zeros_like(t[f"beta{i}"]), torch.ones_like(t[f"beta{i}"]))
        for i in range(1, depth + 1)
    }
    opt = torch.optim.SGD(list(t.values()), lr=LR)

    def step():
        h = Xt
        for i in range(1, depth + 1):
            h = h @ t[f"W{i}"].T + t[f"b{i}"]
            mean, var = running[i]
            h = F.relu(F.batch_norm(h, mean, var, t[f"gamma{i}"], t[f"beta{i}"], training=True))
        loss = F.cross_entropy(h @ t[f"W{depth + 1}"].T + t[f"b{depth + 1}"], yt)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return loss

    return step


def report(title, seconds: dict) -> None:
    """Times per step, and symdl's time over each reference's against the issue's targets
    (within 1.25x of hand-written NumPy, no slower than PyTorch)."""
    print(f"\n{title}")
    for name, value in seconds.items():
        print(f"  {name:<16} {value * 1e6:>9.1f} us per step")
    bounds = {"NumPy by hand": 1.25, "PyTorch CPU": 1.0}
    for name, bound in bounds.items():
        if name in seconds:
            ratio = seconds["symdl"] / seconds[name]
            verdict = "met" if ratio <= bound else "NOT met"
            print(f"  symdl / {name:<16} {ratio:5.2f}x   (target <= {bound}x: {verdict})")


def compiled(model):
    """The compiled model and the seconds `model.compile()` took."""
    start = time.perf_counter()
    result = model.compile()
    return result, time.perf_counter() - start


def run(title, model, X, y, hand, names, torch_make, repeat) -> None:
    if ONLY[0].lower() not in title.lower():
        return
    step_model, seconds = compiled(model)
    steps = {"symdl": symdl_step(model, X, y, compiled=step_model)}
    if hand is not None:
        steps["NumPy by hand"] = hand(as_plain(model.init(0, dtype=X.dtype), names), X, y)
    if torch_make is not None:
        steps["PyTorch CPU"] = torch_make(as_plain(model.init(0, dtype=X.dtype), names), X, y)
    times = timed(steps, repeat)
    report(f"{title}, {X.dtype} (forward, backward, SGD update)", times)
    print(f"  compile time of the model: {seconds:.2f} s (target < 1 s)")
    TABLE.append((title, str(X.dtype), times, seconds))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=100, help="rounds of 5 steps each")
    parser.add_argument("--dtype", choices=("float64", "float32", "both"), default="both")
    parser.add_argument(
        "--only", default="", help="only the models whose title contains this text (e.g. BatchNorm)"
    )
    parser.add_argument(
        "--clock", choices=("cpu", "wall"), default="cpu", help="process CPU time or wall time"
    )
    args = parser.parse_args()
    ONLY[0] = args.only
    CLOCK[0] = time.process_time if args.clock == "cpu" else time.perf_counter
    print(f"clock: {'process CPU time' if args.clock == 'cpu' else 'wall time'}")
    try:
        import torch  # noqa: F401

        have_torch = True
    except ImportError:
        have_torch = False
        print("PyTorch is not installed: its columns are skipped (pip install torch==2.13.0)")
    try:
        from threadpoolctl import threadpool_info, threadpool_limits

        limits = threadpool_limits(1)
        print(
            "BLAS:",
            [
                (i["internal_api"], i.get("architecture"), i["num_threads"])
                for i in threadpool_info()
            ],
        )
    except ImportError:
        limits = None
    dtypes = ("float64", "float32") if args.dtype == "both" else (args.dtype,)
    for dtype in map(np.dtype, dtypes):
        models(args.repeat, dtype, have_torch)
    print(
        "\n| model | dtype | symdl | NumPy by hand | PyTorch CPU | symdl / by hand | symdl / PyTorch | compile |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for title, dtype, times, seconds in TABLE:
        cells = [
            f"{times[k] * 1e6:.0f} µs" if k in times else ""
            for k in ("symdl", "NumPy by hand", "PyTorch CPU")
        ]
        ratios = [
            f"{times['symdl'] / times[k]:.2f}x" if k in times else ""
            for k in ("NumPy by hand", "PyTorch CPU")
        ]
        print(
            f"| {title} | {dtype} | {' | '.join(cells)} | {' | '.join(ratios)} | {seconds:.2f} s |"
        )
    del limits


def models(repeat: int, dtype, have_torch: bool) -> None:
    rng = np.random.default_rng(0)
    torch_or_none = (lambda make: make) if have_torch else (lambda make: None)

    big = nn.Sequential(nn.Dense(128, "relu"), nn.Dense(10), input_shape=784)
    X, y = rng.normal(size=(128, 784)).astype(dtype), rng.integers(0, 10, size=128)
    names = {"W1": "dense_1.W", "b1": "dense_1.b", "W2": "dense_2.W", "b2": "dense_2.b"}
    run(
        "784-128-10 ReLU, CE, batch 128",
        big,
        X,
        y,
        numpy_mlp_relu_ce,
        names,
        torch_or_none(lambda p, X, y: torch_step(p, X, y, "ce", "relu")),
        repeat,
    )
    if dtype == np.float64 and ONLY[0].lower() in "784-128-10":
        sym_peak = peak_bytes(symdl_step(big, X, y))
        hand_peak = peak_bytes(numpy_mlp_relu_ce(as_plain(big.init(0), names), X, y))
        print(
            f"  peak memory of one step (NumPy allocations, tracemalloc): symdl "
            f"{sym_peak / 2**20:.2f} MiB, by hand {hand_peak / 2**20:.2f} MiB"
        )

    small = nn.Sequential(
        nn.Dense(16, "tanh"), nn.Dense(16, "tanh"), nn.Dense(1), loss="mse", input_shape=2
    )
    X, y = rng.normal(size=(64, 2)).astype(dtype), rng.normal(size=64).astype(dtype)
    names = {f"{p}{i}": f"dense_{i}.{p}" for i in (1, 2, 3) for p in "Wb"}
    run(
        "2-16-16-1 tanh, MSE, batch 64",
        small,
        X,
        y,
        numpy_mlp_tanh_mse,
        names,
        torch_or_none(lambda p, X, y: torch_step(p, X, y, "mse", "tanh")),
        repeat * 5,
    )

    cnn = nn.Sequential(
        nn.Conv2d(32, 3, padding="same", activation="relu"),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Dense(128, "relu"),
        nn.Dense(10),
        input_shape=(1, 8, 8),
    )
    X, y = rng.normal(size=(32, 1, 8, 8)).astype(dtype), rng.integers(0, 10, size=32)
    names = {"K": "conv2d_1.K", "bK": "conv2d_1.b", "W1": "dense_1.W", "b1": "dense_1.b"}
    names |= {"W2": "dense_2.W", "b2": "dense_2.b"}
    run(
        "digits CNN: 1x8x8, conv 3x3 x32 same, max-pool 2, 512-128-10, batch 32",
        cnn,
        X,
        y,
        numpy_cnn,
        names,
        torch_or_none(lambda p, X, y: torch_cnn_step({names[k]: v for k, v in p.items()}, X, y)),
        repeat,
    )

    depth = 6
    layers = []
    for _ in range(depth):
        layers += [nn.Dense(256), nn.BatchNorm(), nn.Activation("relu")]
    bn = nn.Sequential(*layers, nn.Dense(10), input_shape=128)
    X, y = rng.normal(size=(256, 128)).astype(dtype), rng.integers(0, 10, size=256)
    names = {f"{p}{i}": f"dense_{i}.{p}" for i in range(1, depth + 2) for p in "Wb"}
    names |= {
        f"{p}{i}": f"batchnorm_{i}.{p}" for i in range(1, depth + 1) for p in ("gamma", "beta")
    }
    state = {
        f"{k}{i}": np.full(256, float(k == "var"), dtype=dtype)
        for i in range(1, depth + 1)
        for k in ("mean", "var")
    }
    run(
        "6 x [Dense 256, BatchNorm, ReLU] + Dense 10, batch 256",
        bn,
        X,
        y,
        lambda p, X, y: numpy_batchnorm_mlp(p, X, y, depth, state),
        names,
        torch_or_none(lambda p, X, y: torch_batchnorm_step(p, X, y, depth)),
        repeat,
    )


if __name__ == "__main__":
    main()
