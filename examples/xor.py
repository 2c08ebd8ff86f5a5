"""A tiny MLP learns XOR: its backprop equations as derived, then its predictions.

    python examples/xor.py [--epochs 200] [--seed 0]

XOR is not linearly separable, so the network needs its hidden layer: 2 -> 8 tanh -> 1 logit,
binary cross-entropy on the logit, full-batch Adam. The run is tiny already, so
SYMDL_EXAMPLE_SMALL=1 changes nothing. Exits with status 1 if a prediction is off.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

import symdl as sd
from symdl import nn, optim

X = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
y = np.array([0, 1, 1, 0])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    model = nn.Sequential(
        nn.Dense(8, "tanh"),
        nn.Dense(1),
        loss="binary_cross_entropy_with_logits",
        input_shape=2,
    )
    print(model.summary(), end="\n\n")
    print("Backpropagation, as derived (one example per column of X):")
    print(model.derive(), end="\n\n")

    history = sd.train(
        model,
        X,
        y,
        optim.Adam(lr=0.05),
        args.epochs,
        batch_size=len(X),
        validation=None,
        seed=args.seed,
        progress=False,
    )
    probabilities = history.compiled.predict(history.params, X).ravel()
    print(f"after {history.epochs} epochs: loss {history.loss[-1]:.4f}")
    for x, target, p in zip(X, y, probabilities, strict=True):
        print(f"  x = {x.astype(int)}  target {target}  P(y=1) = {p:.3f}")

    wrong = np.abs(probabilities - y) >= 0.2
    if wrong.any():
        print(f"XOR not learned: {int(wrong.sum())} predictions are off by 0.2 or more")
        return 1
    print("XOR learned.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
