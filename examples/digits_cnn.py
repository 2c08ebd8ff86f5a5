"""A small CNN on the handwritten digits shipped with symdl: at least 97% test accuracy.

    python examples/digits_cnn.py [--threads 1] [--epochs 8] [--seed 0] [--out DIR]

The same data as digits_mlp.py (80/20 split, a tenth of the training set held out for
validation, pixels scaled to 0..1, training images augmented with one-pixel shifts), but each
example is an image of shape (1, 8, 8): 32 convolution kernels 3x3 with "same" padding and
ReLU, 2x2 max pooling, then 512 -> 128 ReLU -> dropout 0.3 -> 10. Prints the test accuracy
and the wall time (compilation included), saves the History plot as
DIR/digits_cnn_history.png, and exits with status 1 below 97%. SYMDL_EXAMPLE_SMALL=1 trains
on 300 images for 2 epochs and only checks that the accuracy beats chance.
"""

from __future__ import annotations

import sys

from digits_mlp import run  # the same data, training and report; this folder is on sys.path

from symdl import nn

IMAGE = (1, 8, 8)  # channels, height, width


def main(argv=None) -> int:
    model = nn.Sequential(
        nn.Conv2d(32, 3, padding="same", activation="relu"),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Dense(128, "relu"),
        nn.Dropout(0.3),
        nn.Dense(10),
        input_shape=IMAGE,
        name="digits_cnn",
    )
    return run("digits_cnn", model, epochs=8, image_shape=IMAGE, argv=argv)


if __name__ == "__main__":
    sys.exit(main())
