"""A transformer block learns to name the largest token of a sequence; its learning curve is
plotted.

    python scripts/transformer_max.py [--epochs 30] [--seed 0] [--out DIR]

Sequences of T = 4 tokens drawn from 6 symbols; the target is the largest token. The model is
a Sequential stack: one-hot tokens -> Embedding (8) -> sinusoidal positions ->
`nn.transformer_block(8, heads=2, hidden=16)` (self-attention, residual, layer norm, a per-token
ReLU MLP, residual, layer norm) -> Flatten -> Dense (6 logits), softmax cross-entropy. Prints the
training time, the held-out accuracy (chance is about 1/6; always guessing the most frequent
answer, 5, gives 1 - (5/6)^4 = 52%), saves the learning curve as
DIR/transformer_max_history.png, exits with status 1 below 95%.
SYMDL_EXAMPLE_SMALL=1 trains 2 epochs on 300 sequences and only checks that it beats chance.
It lives in scripts/, not examples/: compiling the block takes about 10 s, more than the
examples test allows.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

import symdl as sd
from symdl import nn, optim

SMALL = os.environ.get("SYMDL_EXAMPLE_SMALL") == "1"
T, SYMBOLS, DIM = 4, 6, 8


def build() -> nn.Sequential:
    return nn.Sequential(
        nn.Embedding(SYMBOLS, DIM),
        nn.PositionalEncoding(),
        *nn.transformer_block(DIM, heads=2, hidden=2 * DIM),
        nn.Flatten(),
        nn.Dense(SYMBOLS),
        input_shape=(T, SYMBOLS),
        name="transformer_max",
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2 if SMALL else 30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("."))
    args = parser.parse_args(argv)

    rng = np.random.default_rng(args.seed)
    tokens = rng.integers(0, SYMBOLS, size=(300 if SMALL else 4000, T))
    X, y = nn.one_hot(tokens, SYMBOLS), tokens.max(axis=1)
    split = len(X) * 4 // 5
    model = build()
    start = time.perf_counter()
    with threadpool_limits(1, user_api="blas"):
        history = sd.train(
            model,
            X[:split],
            y[:split],
            optim.Adam(3e-3),
            args.epochs,
            32,
            validation=(X[split:], y[split:]),
            seed=args.seed,
            progress=False,
        )
    guessed = history.compiled.predict(history.params, X[split:]).argmax(axis=1)
    accuracy = float(np.mean(guessed == y[split:]))
    print(f"{history.epochs} epochs in {time.perf_counter() - start:.1f} s (compilation included)")
    print(f"held-out accuracy {accuracy:.1%}")
    print(f"history plot saved to {history.plot(args.out / 'transformer_max_history.png')}")
    bar = 1 / SYMBOLS if SMALL else 0.95
    return 0 if accuracy >= bar else 1


if __name__ == "__main__":
    sys.exit(main())
