"""A GRU reads each 8x8 digit as a sequence of 8 rows of 8 pixels: at least 95% test accuracy.

    python examples/digits_gru.py [--threads 1] [--epochs 20] [--seed 0] [--out DIR]

The digits, split, augmentation and training loop of digits_mlp.py; the model is a GRU of 64
units over the 8 rows (the input of shape (T, F) = (8, 8), each image's rows in order), its
last state into a dense layer of 10 logits. The GRU is unrolled over the 8 steps, so the
compiled training step is backpropagation through time. Prints the test accuracy, saves the
History plot as DIR/digits_gru_history.png, exits with status 1 below 95%.
SYMDL_EXAMPLE_SMALL=1 trains on 300 images for 2 epochs and only checks that it beats chance.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
from digits_mlp import run  # noqa: E402  (the same data, training and report)

from symdl import nn


def main(argv=None) -> int:
    model = nn.Sequential(nn.GRU(64), nn.Dense(10), input_shape=(8, 8), name="digits_gru")
    return run("digits_gru", model, epochs=20, image_shape=(8, 8), argv=argv, bar=0.95)


if __name__ == "__main__":
    sys.exit(main())
