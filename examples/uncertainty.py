"""The uncertainty of a prediction: a last-layer Laplace approximation against the plain model.

    python examples/uncertainty.py [--out DIR] [--seed 0]

1. Regression on two clusters of points of sin(x): the Laplace predictive band (mean +- 2
   standard deviations) stays narrow on the data and widens away from it (regression_band.png);
   MC dropout's band is drawn beside it.
2. The digits, a small MLP trained on few examples until it is over-confident: the expected
   calibration error and a reliability diagram of the plain model and of the Laplace model
   (reliability.png), and the predictive entropy on test digits and on uniform-noise images.
Exits with 1 if the Laplace model is not better calibrated, or not more uncertain on noise.
SYMDL_EXAMPLE_SMALL=1 trains for fewer epochs.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

import symdl as sd
from symdl import datasets, nn, optim
from symdl.prob import (
    LastLayerLaplace,
    expected_calibration_error,
    mc_dropout,
    predictive_entropy,
    reliability,
)

SMALL = os.environ.get("SYMDL_EXAMPLE_SMALL") == "1"


def save(figure: Figure, path: Path) -> Path:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    path.write_bytes(buffer.getvalue())
    return path


def regression(seed: int, out: Path) -> bool:
    """Fit sin(x) on x in [-3, -1] and [1, 3]; plot the Laplace and MC-dropout bands."""
    rng = np.random.default_rng(seed)
    x = np.concatenate([rng.uniform(-3, -1, 40), rng.uniform(1, 3, 40)])[:, None]
    y = np.sin(x[:, 0]) + 0.1 * rng.normal(size=len(x))
    epochs = 80 if SMALL else 300
    model = nn.Sequential(
        nn.Dense(50, "relu"), nn.Dense(50, "relu"), nn.Dense(1), loss="mse", input_shape=1
    )
    history = sd.train(
        model, x, y, optim.Adam(lr=0.01), epochs, validation=None, seed=seed, progress=False
    )
    laplace = LastLayerLaplace(history.compiled.eval(), history.params, x, y)
    grid = np.linspace(-7, 7, 281)[:, None]
    mean, variance = laplace.predict(grid)
    std = np.sqrt(variance[:, 0])

    dropout_model = nn.Sequential(
        nn.Dense(50, "relu"), nn.Dropout(0.1), nn.Dense(50, "relu"), nn.Dense(1),
        loss="mse", input_shape=1,
    )  # fmt: skip
    dropped = sd.train(
        dropout_model, x, y, optim.Adam(lr=0.01), epochs, validation=None, seed=seed,
        progress=False,
    )  # fmt: skip
    mc_mean, mc_variance = mc_dropout(dropped.compiled, dropped.params, grid, samples=100)

    figure = Figure(figsize=(10, 3.8), layout="constrained")
    for axes, centre, spread, title in zip(
        figure.subplots(1, 2, sharey=True),
        (mean[:, 0], mc_mean[:, 0]),
        (std, np.sqrt(mc_variance[:, 0])),
        ("last-layer Laplace", "MC dropout (p = 0.1)"),
        strict=True,
    ):
        axes.fill_between(grid[:, 0], centre - 2 * spread, centre + 2 * spread, alpha=0.3)
        axes.plot(grid[:, 0], centre, label="predictive mean")
        axes.plot(grid[:, 0], np.sin(grid[:, 0]), "k--", lw=0.8, label="sin(x)")
        axes.scatter(x[:, 0], y, s=8, c="k", label="training data")
        axes.set(title=title, xlabel="x", ylim=(-4, 4))
    figure.axes[0].legend(loc="upper left", fontsize=8)
    path = save(figure, out / "regression_band.png")
    on_data = std[np.abs(np.abs(grid[:, 0]) - 2) < 1].mean()
    far = std[np.abs(grid[:, 0]) > 6].mean()
    print(
        f"regression: Laplace predictive std {on_data:.3f} on the data, {far:.3f} at |x| > 6; "
        f"band saved to {path}"
    )
    return far > on_data


def digits(seed: int, out: Path) -> bool:
    """Calibration and entropy of the plain and the Laplace model on the digits."""
    X, y = datasets.load_digits()
    X_train, X_rest, y_train, y_rest = datasets.train_test_split(X / 16, y, 0.5, seed=seed)
    X_train, y_train = X_train[:200], y_train[:200]
    X_val, y_val, X_test, y_test = X_rest[:300], y_rest[:300], X_rest[300:], y_rest[300:]
    model = nn.Sequential(nn.Dense(32, "relu"), nn.Dense(10), input_shape=64)
    epochs = 100 if SMALL else 150
    history = sd.train(
        model, X_train, y_train, optim.Adam(lr=0.02), epochs, validation=None, seed=seed,
        progress=False,
    )  # fmt: skip
    compiled = history.compiled.eval()
    laplace = LastLayerLaplace(compiled, history.params, X_train, y_train)
    prior = laplace.tune_prior_precision(X_val, y_val)
    noise = np.random.default_rng(seed).uniform(0, 1, (len(X_test), 64))

    figure = Figure(figsize=(9, 4), layout="constrained")
    results = {}
    for axes, (name, predict) in zip(
        figure.subplots(1, 2, sharey=True),
        (
            ("plain", lambda data: compiled.predict(history.params, data)),
            ("Laplace", laplace.predict),
        ),
        strict=True,
    ):
        probabilities = predict(X_test)
        ece = expected_calibration_error(probabilities, y_test)
        entropy = predictive_entropy(probabilities).mean()
        noise_entropy = predictive_entropy(predict(noise)).mean()
        accuracy = np.mean(probabilities.argmax(axis=1) == y_test)
        results[name] = (ece, entropy, noise_entropy)
        print(
            f"digits, {name}: accuracy {accuracy:.1%}, ECE {ece:.4f}, "
            f"entropy {entropy:.3f} nats on digits, {noise_entropy:.3f} on noise"
        )
        confidence, correct, counts = reliability(probabilities, y_test)
        centres = (np.arange(10) + 0.5) / 10
        shown = counts > 0
        axes.bar(centres[shown], correct[shown], width=0.1, edgecolor="k", label="accuracy")
        axes.plot([0, 1], [0, 1], "k--", lw=0.8, label="perfect calibration")
        axes.plot(centres[shown], confidence[shown], "o", c="C3", ms=4, label="mean confidence")
        axes.set(title=f"{name}: ECE {ece:.3f}", xlabel="confidence", xlim=(0, 1))
    figure.axes[0].set_ylabel("accuracy")
    figure.axes[0].legend(loc="upper left", fontsize=8)  # bars below the dots: over-confident
    path = save(figure, out / "reliability.png")
    print(f"digits: prior precision {prior:.3g} (held-out NLL); reliability saved to {path}")
    plain, bayes = results["plain"], results["Laplace"]
    return bayes[0] < plain[0] and bayes[2] > bayes[1]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("."), help="folder for the PNGs")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    ok = regression(args.seed, args.out)
    ok = digits(args.seed, args.out) and ok
    if not ok:
        print("the Laplace model did not show the expected uncertainty")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
