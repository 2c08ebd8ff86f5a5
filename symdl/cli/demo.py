"""The main job, `symdl demo` (and `make demo`): derive a network's backprop equations, verify a
hand-written formula and catch a wrong one, check the gradient numerically, train briefly on
the digits, and write the derivation (.tex, .md, .png) and the loss curve (.png)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import sympy

from symdl.checking.verify import verify
from symdl.nn import Dense, Sequential
from symdl.ops import binary_cross_entropy_with_logits, sigmoid
from symdl.optim import Adam
from symdl.render.export import export
from symdl.training.datasets import load_digits, train_test_split
from symdl.training.loop import train


def add_parser(commands) -> None:
    demo = commands.add_parser(
        "demo",
        help="derive a network's backprop, verify, check, train briefly, write .tex/.md/.png",
    )
    demo.add_argument("-o", "--out", default="symdl-demo", help="folder for the files it writes")
    demo.set_defaults(run=_command)


def _command(args) -> int:
    run(args.out)
    return 0


def small_network():
    """A 2-2-1 network written entry by entry (scalar symbols), sigmoid hidden units and a
    logistic loss on one example: the scalar-path example of docs/latex.md.

    Returns (loss, parameters, names of the intermediates)."""
    x = sympy.symbols("x_1 x_2", real=True)
    y = sympy.Symbol("y", real=True)
    W1 = sympy.Matrix(2, 2, lambda i, j: sympy.Symbol(f"w^{{(1)}}_{{{i + 1}{j + 1}}}", real=True))
    b1 = sympy.Matrix(2, 1, lambda i, j: sympy.Symbol(f"b^{{(1)}}_{{{i + 1}}}", real=True))
    w2 = sympy.Matrix(1, 2, lambda i, j: sympy.Symbol(f"w^{{(2)}}_{{{j + 1}}}", real=True))
    b2 = sympy.Symbol("b^{(2)}", real=True)
    z1 = W1 * sympy.Matrix(x) + b1
    a1 = z1.applyfunc(sigmoid)
    z2 = (w2 * a1)[0] + b2
    loss = binary_cross_entropy_with_logits(z2, y)
    names = {z1[i]: f"z^{{(1)}}_{{{i + 1}}}" for i in range(2)}
    names |= {a1[i]: f"a^{{(1)}}_{{{i + 1}}}" for i in range(2)}
    names[z2] = "z^{(2)}"
    return loss, [*W1, *b1, *w2, b2], names


def network() -> Sequential:
    """The demo's network: 64 pixels, 32 ReLU units, 10 classes, softmax cross-entropy."""
    return Sequential(Dense(32, "relu"), Dense(10), loss="cross_entropy", input_shape=64)


def _section(title: str) -> None:
    print(f"\n== {title} ==\n")


def check_numerically(model: Sequential, X, y, seed: int, h: float = 1e-6, per_parameter: int = 6):
    """The largest relative difference between the compiled gradient and central differences
    of the compiled loss, over `per_parameter` random entries of each parameter."""
    compiled = model.compile()
    params = model.init(seed)
    _, grads = compiled.loss_and_grads(params, X, y)
    rng = np.random.default_rng(seed)
    worst, checked = 0.0, 0
    for name, value in params.items():
        for index in rng.choice(value.size, min(per_parameter, value.size), replace=False):
            shifted = {k: v.copy() for k, v in params.items()}
            shifted[name].flat[index] += h
            up = compiled.loss(shifted, X, y)
            shifted[name].flat[index] -= 2 * h
            down = compiled.loss(shifted, X, y)
            numeric, symbolic = (up - down) / (2 * h), grads[name].flat[index]
            worst = max(worst, abs(numeric - symbolic) / max(abs(numeric), abs(symbolic), 1e-8))
            checked += 1
    return worst, checked


def run(
    out: str | Path = "symdl-demo", seed: int = 0, epochs: int = 20, progress: bool | None = None
) -> list[Path]:
    """Run the demo, print what it does, and return the files it wrote."""
    start = time.perf_counter()
    out = Path(out)
    model = network()

    _section("1. Backpropagation of a 64-32-10 ReLU network (columns are examples)")
    derivation = model.derive()
    print(derivation)

    _section("2. Verifying hand-written derivatives")
    z, y = sympy.symbols("z y", real=True)
    right = verify(binary_cross_entropy_with_logits(z, y), z, r"\sigma(z) - y")
    print(f"d/dz BCE(sigma(z), y) = sigma(z) - y   ->  {'correct' if right else 'WRONG'}")
    print(f"  ({right.method})")
    wrong = verify(sigmoid(z), z, r"\sigma(z)\,(1 + \sigma(z))")
    print(f"d/dz sigma(z) = sigma(z)(1 + sigma(z)) ->  {'correct' if wrong else 'WRONG'}")
    print("  " + wrong.explain().replace("\n", "\n  "))
    if not right or wrong:
        raise SystemExit("verify gave the wrong verdict on a textbook formula")

    X, labels = load_digits()
    X = X / 16.0
    X_train, X_test, y_train, y_test = train_test_split(X, labels, test_fraction=0.25, seed=seed)

    _section("3. Checking the compiled gradient numerically")
    worst, checked = check_numerically(model, X_train[:64], y_train[:64], seed)
    print(
        f"central differences (h = 1e-6) at {checked} entries of W1, b1, W2, b2 on a batch "
        f"of 64 digits: max relative error {worst:.1e}"
    )
    if worst > 1e-6:
        raise SystemExit("the compiled gradient disagrees with central differences")

    _section(f"4. Training on {len(X_train)} handwritten digits (8x8 pixels) with Adam")
    history = train(
        model,
        X_train,
        y_train,
        Adam(lr=3e-3),
        epochs=epochs,
        batch_size=32,
        seed=seed,
        progress=progress,
    )
    predictions = history.compiled.predict(history.params, X_test).argmax(axis=1)
    accuracy = float(np.mean(predictions == y_test))
    print(
        f"after {history.epochs} epochs: training loss {history.loss[-1]:.3f}, "
        f"test accuracy {accuracy:.1%} on {len(X_test)} held-out digits"
    )

    title = "Backpropagation, 64-32-10 ReLU network, softmax cross-entropy"
    out.mkdir(parents=True, exist_ok=True)  # the folder asked for, not a file's parent
    written = [
        export(derivation, out / "derivation.tex", title=title),
        export(derivation, out / "derivation.md", title=title),
        export(derivation, out / "derivation.png"),
        history.plot(out / "loss_curve.png"),
    ]
    print(f"\nWrote (in {time.perf_counter() - start:.1f} s):")
    for path in written:
        print(f"  {path.resolve()}")
    return written
