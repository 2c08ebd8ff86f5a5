"""Classify two moons and three interleaved spirals, then draw the decision boundaries.

    python examples/moons.py [--data moons spirals] [--out DIR] [--seed 0]

Both data sets are generated with NumPy (symdl.training.datasets). Each gets an MLP with two ReLU
layers trained with Adam; its test accuracy is printed and must reach 93%, and the class it
assigns over the plane is saved as DIR/<data>_boundary.png. SYMDL_EXAMPLE_SMALL=1 trains on
fewer points for fewer epochs and only checks that the accuracy beats chance.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import symdl as sd
from symdl import datasets, nn, optim
from symdl.render.plot import plot_decision_boundary
from symdl.training.loop import accuracy

SMALL = os.environ.get("SYMDL_EXAMPLE_SMALL") == "1"

# data set: (generator, samples, hidden units, epochs)
SETTINGS = {
    "moons": (lambda n, seed: datasets.make_moons(n, noise=0.2, seed=seed), 400, 32, 100),
    "spirals": (
        lambda n, seed: datasets.make_spirals(n, classes=3, noise=0.2, seed=seed),
        600,
        64,
        200,
    ),
}


def fit(data: str, seed: int, out: Path) -> float:
    """Train on one data set, save its decision boundary, return the test accuracy."""
    make, samples, width, epochs = SETTINGS[data]
    if SMALL:
        samples, epochs = samples // 2, 20
    X, y = make(samples, seed)
    X_train, X_test, y_train, y_test = datasets.train_test_split(X, y, 0.25, seed=seed)
    model = nn.Sequential(
        nn.Dense(width, "relu"),
        nn.Dense(width, "relu"),
        nn.Dense(int(y.max()) + 1),
        input_shape=2,
    )
    start = time.perf_counter()
    history = sd.train(
        model, X_train, y_train, optim.Adam(lr=0.01), epochs, validation=None, seed=seed
    )
    seconds = time.perf_counter() - start

    def predict(points):
        return history.compiled.predict(history.params, points)

    test_accuracy = accuracy(y_test, predict(X_test))
    path = plot_decision_boundary(
        predict,
        X,
        y,
        out / f"{data}_boundary.png",
        title=f"{data}: test accuracy {test_accuracy:.1%}",
    )
    print(
        f"{data}: {len(X_train)} training points, {epochs} epochs in {seconds:.1f} s; "
        f"test accuracy {test_accuracy:.1%}; boundary saved to {path}"
    )
    return test_accuracy


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", nargs="+", choices=list(SETTINGS), default=list(SETTINGS))
    parser.add_argument("--out", type=Path, default=Path("."), help="folder for the PNGs")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    bar = 0.6 if SMALL else 0.93
    failed = [data for data in args.data if fit(data, args.seed, args.out) < bar]
    if failed:
        print(f"test accuracy below {bar:.0%} on {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
