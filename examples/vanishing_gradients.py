"""Vanishing gradients: a deep sigmoid network beside the same network with ReLU.

    python examples/vanishing_gradients.py [--depth 8] [--epochs 5] [--out DIR]

Both networks have `depth` hidden layers of 32 units (Glorot initialisation for sigmoid, He
for ReLU, as each would be used) and train with plain SGD on two interleaved spirals, while
sd.train records the norm of each layer's gradient, averaged over the batches of an epoch.
Backpropagation multiplies the error by σ'(Z) ≤ 1/4 at every sigmoid layer, so the sigmoid
network's first layer receives a gradient orders of magnitude smaller than its last; ReLU passes
the error through unchanged where a unit is active. Prints the norms per layer and the ratio
first/last layer for each network, saves DIR/vanishing_gradients.png (gradient norm against
depth, and per epoch), and exits with status 1 unless the sigmoid ratio lies at least three
orders of magnitude below the ReLU one. SYMDL_EXAMPLE_SMALL=1 trains on fewer points for one
epoch.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import symdl as sd
from symdl import datasets, nn, optim
from symdl.render.plot import plot_grad_norms

SMALL = os.environ.get("SYMDL_EXAMPLE_SMALL") == "1"
ACTIVATIONS = ("sigmoid", "relu")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--depth", type=int, default=8, help="hidden layers")
    parser.add_argument("--epochs", type=int, default=1 if SMALL else 5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("."), help="folder for the PNG")
    args = parser.parse_args(argv)

    X, y = datasets.make_spirals(200 if SMALL else 600, classes=2, seed=args.seed)
    histories, ratios = {}, {}
    for activation in ACTIVATIONS:
        model = nn.Sequential(
            *[nn.Dense(32, activation) for _ in range(args.depth)],
            nn.Dense(2),
            input_shape=2,
            name=activation,
        )
        if activation == "sigmoid":
            steps = str(model.derive()).splitlines()
            print("backpropagation into the first layer, as derived:")
            print(
                *[f"  {s}" for s in steps if s.startswith(("bar_Z^{(1)}", "bar_A^{(1)}"))], sep="\n"
            )
            print("(1 - A) ∘ A is σ'(Z) ≤ 1/4: one such factor per sigmoid layer on the way down\n")
        history = sd.train(
            model,
            X,
            y,
            optim.SGD(lr=0.05),
            args.epochs,
            batch_size=32,
            validation=None,
            seed=args.seed,
            progress=False,
        )
        norms = history.grad_norms
        layers = list(norms)
        ratios[activation] = norms[layers[0]][0] / norms[layers[-1]][0]
        histories[activation] = history

    print("mean gradient norm per layer in epoch 1 (input -> output):")
    print(f"  {'layer':<10}" + "".join(f"{a:>12}" for a in ACTIVATIONS))
    for layer in histories["sigmoid"].grad_norms:
        row = "".join(f"{histories[a].grad_norms[layer][0]:12.2e}" for a in ACTIVATIONS)
        print(f"  {layer:<10}{row}")
    for activation in ACTIVATIONS:
        print(
            f"{activation}: first/last layer {ratios[activation]:.1e}, training accuracy "
            f"{histories[activation]['accuracy'][-1]:.1%} after {args.epochs} epochs"
        )
    path = plot_grad_norms(histories, args.out / "vanishing_gradients.png")
    print(f"plot saved to {path}")

    if not ratios["sigmoid"] < 1e-3 * ratios["relu"]:
        print("the sigmoid network's gradients did not vanish as expected")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
