"""Cost of one training step (forward and gradient, no update) of symdl's exports against the
same model written natively: the JAX export (jitted) against jax.value_and_grad of a jax.numpy
model (jitted), and the PyTorch export (symdl's backward in a torch.autograd.Function) against
an nn.Module with autograd; and the PyTorch export's generated function alone, called without
its autograd.Function and module, to show what that wrapper costs. Measured in the same run,
one thread.

    PYTHONPATH=$PWD python bench/export_step.py [--repeat 50] [--dtype float32|float64|both] [--only CNN]
                                [--clock cpu|wall]

Prints per-step times (median of interleaved rounds), the ratios export / native against the
issue's target (within 1.2x), and at the end the table docs/benchmarks.md shows. The default
clock is the process's CPU time (every thread's), which a machine shared with other jobs
disturbs far less than the wall clock: every engine runs on one thread here, so on an idle
machine the two agree.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # one thread, before NumPy, torch and XLA load
os.environ.setdefault(
    "XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
)

import argparse  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from symdl import nn  # noqa: E402

TARGET = 1.2  # the bound on export / native
TABLE: list[tuple] = []  # (model, dtype, {name: seconds})
CLOCK = [time.process_time]  # --clock: process CPU time (default) or perf_counter (wall)


def timed(steps: dict, repeat: int, calls: int = 5) -> dict:
    """Median seconds per call of each step, the steps measured in alternation (round after
    round) so that a change in the machine's load touches them all alike."""
    for step in steps.values():
        for _ in range(5):
            step()
    samples: dict = {name: [] for name in steps}
    for _ in range(repeat):
        for name, step in steps.items():
            clock = CLOCK[0]
            start = clock()
            for _ in range(calls):
                step()
            samples[name].append((clock() - start) / calls)
    return {name: statistics.median(times) for name, times in samples.items()}


# ----------------------------------------------------------------------------- the models
def mlp():
    return nn.Sequential(nn.Dense(128, "relu"), nn.Dense(10), input_shape=784)


def cnn():
    return nn.Sequential(
        nn.Conv2d(32, 3, padding="same", activation="relu"),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Dense(128, "relu"),
        nn.Dense(10),
        input_shape=(1, 8, 8),
    )


MODELS = {
    "784-128-10 ReLU, CE, batch 128": (mlp, (784,), 128),
    "digits CNN: 1x8x8, conv 3x3 x32 same, max-pool 2, 512-128-10, batch 32": (cnn, (1, 8, 8), 32),
}


# ----------------------------------------------------------------------------- JAX
def jax_export_step(model, params, X, y, dtype):
    import jax

    from symdl.compile.jax_backend import export_model

    exported = export_model(model.compile(), dtype=str(dtype))
    step = jax.jit(exported.loss_and_grads)
    p, Xj, Y = exported.params(params), jax.numpy.asarray(X), exported.targets(y)
    return lambda: jax.block_until_ready(step(p, Xj, Y)), lambda: float(step(p, Xj, Y)[0])


def jax_native_loss(params, X, Y):
    """The MLP or the CNN in jax.numpy, rows are examples, as a person writes it."""
    import jax
    import jax.numpy as jnp

    h = X
    if "conv2d_1.K" in params:
        h = jax.lax.conv_general_dilated(
            h, params["conv2d_1.K"], (1, 1), "SAME", dimension_numbers=("NCHW", "OIHW", "NCHW")
        )
        h = jax.nn.relu(h + params["conv2d_1.b"][None, :, None, None])
        h = jax.lax.reduce_window(h, -jnp.inf, jax.lax.max, (1, 1, 2, 2), (1, 1, 2, 2), "VALID")
        h = h.reshape(h.shape[0], -1)
    h = jax.nn.relu(h @ params["dense_1.W"].T + params["dense_1.b"])
    logits = h @ params["dense_2.W"].T + params["dense_2.b"]
    return -jnp.mean(jnp.sum(jax.nn.log_softmax(logits) * Y, axis=1))


def jax_native_step(params, X, y, dtype):
    import jax
    import jax.numpy as jnp

    step = jax.jit(jax.value_and_grad(jax_native_loss))
    p = {k: jnp.asarray(v, dtype) for k, v in params.items()}
    Xj, Y = jnp.asarray(X), jax.nn.one_hot(y, 10, dtype=dtype)
    return lambda: jax.block_until_ready(step(p, Xj, Y)), lambda: float(step(p, Xj, Y)[0])


# ----------------------------------------------------------------------------- PyTorch
def torch_export_step(model, params, X, y, dtype):
    import torch

    from symdl.compile.torch_backend import export_module

    module = export_module(model.compile(), params, dtype=dtype)
    Xt, Y = torch.as_tensor(X), module.targets(y)

    def step():
        module.zero_grad(set_to_none=True)
        loss = module(Xt, Y)
        loss.backward()
        return loss

    return step, lambda: step().item()


def torch_code_step(model, params, X, y, dtype):
    """The PyTorch export's generated function called directly (no autograd.Function, no
    module): what the wrapper adds is the difference to the export's step."""
    import torch

    from symdl.compile.backends import ModelPlan
    from symdl.compile.torch_backend import TorchPrinter, backend_source
    from symdl.compile.torch_numpy import floats

    plan = ModelPlan(model.compile())
    function, _ = backend_source(plan.compiled, TorchPrinter())
    tensors = {k: torch.as_tensor(v, dtype=dtype) for k, v in params.items()}
    Y = torch.as_tensor(plan.targets(y), dtype=dtype)
    arguments = plan.arguments(
        tensors, torch.as_tensor(X), Y, lambda a: torch.as_tensor(a, dtype=dtype)
    )

    def step():
        with torch.no_grad(), floats(dtype):
            return function(*arguments)[0]

    return step, lambda: float(step())


def torch_native_step(params, X, y, dtype):
    import torch

    layers = []
    if "conv2d_1.K" in params:
        layers += [
            torch.nn.Conv2d(1, 32, 3, padding=1),
            torch.nn.ReLU(),
            torch.nn.MaxPool2d(2),
            torch.nn.Flatten(),
        ]
    layers += [torch.nn.LazyLinear(128), torch.nn.ReLU(), torch.nn.Linear(128, 10)]
    net = torch.nn.Sequential(*layers).to(dtype)
    Xt, yt = torch.as_tensor(X), torch.as_tensor(y)
    net(Xt)  # materialise the lazy layer, then load symdl's initial values
    with torch.no_grad():
        ours = [v for k, v in params.items()]
        for p, value in zip(net.parameters(), ours, strict=True):
            p.copy_(torch.as_tensor(value, dtype=dtype))

    def step():
        net.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(net(Xt), yt)
        loss.backward()
        return loss

    return step, lambda: step().item()


# ----------------------------------------------------------------------------- running
def run(title, make, shape, batch, dtype, repeat) -> None:
    import torch

    rng = np.random.default_rng(0)
    model = make()
    params = model.init(0, dtype=dtype)
    X, y = rng.normal(size=(batch, *shape)).astype(dtype), rng.integers(0, 10, size=batch)
    torch_dtype = getattr(torch, str(dtype))
    built = {
        "JAX export": jax_export_step(model, params, X, y, dtype),
        "JAX native": jax_native_step(params, X, y, dtype),
        "PyTorch export": torch_export_step(model, params, X, y, torch_dtype),
        "PyTorch native": torch_native_step(params, X, y, torch_dtype),
        "PyTorch code": torch_code_step(model, params, X, y, torch_dtype),
    }
    losses = {name: value() for name, (_, value) in built.items()}
    spread = max(losses.values()) - min(losses.values())
    # each engine's steps timed apart: XLA's worker threads may still spin after a JAX step,
    # CPU time the process clock would charge to a PyTorch step run next
    times = {}
    for engine in ("JAX", "PyTorch"):
        steps = {name: step for name, (step, _) in built.items() if name.startswith(engine)}
        times |= timed(steps, repeat)
    print(f"\n{title}, {dtype} (forward and gradient)")
    print(f"  the five losses agree to {spread:.1e} (value {losses['JAX native']:.6f})")
    for name, value in times.items():
        print(f"  {name:<16} {value * 1e6:>9.1f} us per step")
    for engine in ("JAX", "PyTorch"):
        ratio = times[f"{engine} export"] / times[f"{engine} native"]
        verdict = "met" if ratio <= TARGET else "NOT met"
        print(f"  {engine} export / native {ratio:5.2f}x   (target <= {TARGET}x: {verdict})")
    TABLE.append((title, str(dtype), times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=50, help="rounds of 5 steps each")
    parser.add_argument("--dtype", choices=("float64", "float32", "both"), default="both")
    parser.add_argument("--only", default="", help="only the models whose title contains this")
    parser.add_argument(
        "--clock", choices=("cpu", "wall"), default="cpu", help="process CPU time or wall time"
    )
    args = parser.parse_args()
    CLOCK[0] = time.process_time if args.clock == "cpu" else time.perf_counter
    try:
        import jax
        import torch
    except ImportError as error:
        raise SystemExit(
            f"this benchmark needs jax and torch: pip install symdl[export] ({error})"
        ) from None
    jax.config.update("jax_enable_x64", True)  # float64 possible; float32 is asked for explicitly
    torch.set_num_threads(1)
    print("jax", jax.__version__, "torch", torch.__version__, "devices", jax.devices())
    print(f"clock: {'process CPU time' if args.clock == 'cpu' else 'wall time'}")
    dtypes = ("float32", "float64") if args.dtype == "both" else (args.dtype,)
    for dtype in map(np.dtype, dtypes):
        for title, (make, shape, batch) in MODELS.items():
            if args.only.lower() in title.lower():
                run(title, make, shape, batch, dtype, args.repeat)
    names = ("JAX export", "JAX native", "PyTorch export", "PyTorch native", "PyTorch code")
    ratios = (
        ("JAX export", "JAX native"),
        ("PyTorch export", "PyTorch native"),
        ("PyTorch code", "PyTorch native"),
    )
    heads = ["JAX export / native", "torch export / native", "torch code / native"]
    print(f"\n| model | dtype | {' | '.join(names)} | {' | '.join(heads)} |")
    print("|---|---|" + "---:|" * (len(names) + len(heads)))
    for title, dtype, times in TABLE:
        cells = [f"{times[n] * 1e6:.0f} µs" for n in names]
        cells += [f"{times[a] / times[b]:.2f}x" for a, b in ratios]
        print(f"| {title} | {dtype} | {' | '.join(cells)} |")


if __name__ == "__main__":
    main()
