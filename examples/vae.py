"""A variational autoencoder on the 8x8 digits, derived and compiled by symdl, trained briefly.

    python examples/vae.py [--out DIR] [--seed 0]

Encoder $H = \\tanh(W_1 X + b_1)$, $M = W_\\mu H + b_\\mu$, $S = W_s H + b_s$ (the log-variance);
reparameterised latent $Z = M + e^{S/2} \\circ E$ with noise $E \\sim \\mathcal{N}(0, I)$ given
as an input; decoder logits $\\Lambda = V_2 \\tanh(V_1 Z + c_1) + c_2$, Bernoulli pixels.
The loss is the negative ELBO per image: the Bernoulli NLL (sd.prob.Bernoulli.from_logit) plus
KL(N(mu, e^s) || N(0, 1)) (sd.prob.kl_gaussian), each written once per entry and checked
symbolically against sd.prob before it is lifted to whole matrices. The gradient of every
weight is symdl's derivation, compiled to NumPy; Adam trains it on minibatches.

Prints the test negative ELBO before and after training (exit 1 if it did not improve) and
saves test digits above their reconstructions to reconstructions.png.
SYMDL_EXAMPLE_SMALL=1 trains for fewer epochs.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
from pathlib import Path

import numpy as np
import sympy
from matplotlib.figure import Figure
from sympy import MatrixSymbol, OneMatrix

import symdl as sd
from symdl import datasets, optim
from symdl.core.matrices import elementwise, hadamard
from symdl.ops import elementary
from symdl.prob import Bernoulli, kl_gaussian

SMALL = os.environ.get("SYMDL_EXAMPLE_SMALL") == "1"
PIXELS, HIDDEN, LATENT = 64, 32, 2
N = sympy.Symbol("N", integer=True, positive=True)


def entry_terms() -> tuple[sympy.Lambda, sympy.Lambda]:
    """Per entry: the Bernoulli NLL of a pixel x given its logit l, and the KL of one latent
    coordinate with mean m and log-variance s from the standard normal, both from sd.prob,
    checked equal to the forms written over whole matrices below."""
    x, logit, m, s = sympy.symbols("x l m s", real=True)
    nll = Bernoulli.from_logit(logit).nll(x)
    kl = kl_gaussian(m, sympy.exp(s), 0, 1)
    for name, ours, theirs in [
        ("Bernoulli NLL", sd.softplus(logit) - x * logit, nll),
        ("Gaussian KL", (sympy.exp(s) + m**2 - 1 - s) / 2, kl),
    ]:
        if sympy.simplify(elementary(ours - theirs)) != 0:
            raise SystemExit(f"vae: the {name} written here, {ours}, is not sd.prob's {theirs}")
    return sympy.Lambda((x, logit), nll), sympy.Lambda((m, s), kl)


def negative_elbo():
    """The negative ELBO averaged over a batch of N images (one per column) and its parameters."""
    X, E = MatrixSymbol("X", PIXELS, N), MatrixSymbol("E", LATENT, N)
    shapes = {
        "W_1": (HIDDEN, PIXELS), "b_1": (HIDDEN, 1), "W_mu": (LATENT, HIDDEN),
        "b_mu": (LATENT, 1), "W_s": (LATENT, HIDDEN), "b_s": (LATENT, 1),
        "V_1": (HIDDEN, LATENT), "c_1": (HIDDEN, 1), "V_2": (PIXELS, HIDDEN), "c_2": (PIXELS, 1),
    }  # fmt: skip
    p = {name: MatrixSymbol(name, *shape) for name, shape in shapes.items()}
    ones = OneMatrix(1, N)
    H = elementwise(sympy.tanh, p["W_1"] * X + p["b_1"] * ones)
    M = p["W_mu"] * H + p["b_mu"] * ones
    S = p["W_s"] * H + p["b_s"] * ones
    Z = M + hadamard(elementwise(lambda u: sympy.exp(u / 2), S), E)
    logits = p["V_2"] * elementwise(sympy.tanh, p["V_1"] * Z + p["c_1"] * ones) + p["c_2"] * ones
    nll = elementwise(sd.softplus, logits) - hadamard(X, logits)
    kl = (elementwise(sympy.exp, S) + hadamard(M, M) - OneMatrix(LATENT, N) - S) / 2
    total = OneMatrix(1, PIXELS) * nll * OneMatrix(N, 1) + OneMatrix(1, LATENT) * kl * OneMatrix(
        N, 1
    )
    names = {H: "H", M: "M", S: "S", Z: "Z", logits: "Lambda"}
    return total / N, p, (X, E), names, logits


def init(params: dict, rng) -> dict[str, np.ndarray]:
    values = {}
    for name, symbol in params.items():
        rows, cols = (int(d) for d in symbol.shape)
        scale = 0.0 if name[0] in "bc" else 1 / np.sqrt(cols)
        values[name] = rng.normal(0, scale, size=(rows, cols))
    return values


def save(figure: Figure, path: Path) -> Path:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    path.write_bytes(buffer.getvalue())
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("."), help="folder for the PNG")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    entry_terms()
    loss, params, (X, E), names, logits = negative_elbo()
    derivation = sd.derive(loss, list(params.values()), names=names)
    logit_step = {v: k for k, v in derivation.program.sources.items()}[logits]
    step = derivation.compile(extra=[logit_step])

    images, _ = datasets.load_digits()
    images = images / 16.0  # intensities in [0, 1], read as Bernoulli probabilities
    rng = np.random.default_rng(args.seed)
    order = rng.permutation(len(images))
    train, test = images[order[:1500]].T, images[order[1500:]].T
    values = init(params, rng)
    test_noise = rng.normal(size=(LATENT, test.shape[1]))

    def evaluate(x, noise):
        value, (*_, lam) = step({X: x, E: noise} | {params[k]: v for k, v in values.items()})
        return float(value), lam

    before, _ = evaluate(test, test_noise)
    adam = optim.Adam(lr=0.01)
    epochs, batch = (8, 100) if SMALL else (150, 100)
    for _epoch in range(epochs):
        shuffled = rng.permutation(train.shape[1])
        for start in range(0, train.shape[1], batch):
            x = train[:, shuffled[start : start + batch]]
            noise = rng.normal(size=(LATENT, x.shape[1]))
            _, (*grads, _) = step({X: x, E: noise} | {params[k]: v for k, v in values.items()})
            adam.step(values, dict(zip(params, grads, strict=True)))
    after, _ = evaluate(test, test_noise)
    print(f"test negative ELBO per image: {before:.2f} before training, {after:.2f} after")

    _, lam = evaluate(test[:, :10], np.zeros((LATENT, 10)))  # the latent mean, no noise
    figure = Figure(figsize=(8, 2))
    for i in range(10):
        for row, picture in enumerate((test[:, i], 1 / (1 + np.exp(-lam[:, i])))):
            axis = figure.add_subplot(2, 10, 1 + i + 10 * row)
            axis.imshow(picture.reshape(8, 8), cmap="gray_r", vmin=0, vmax=1)
            axis.set_axis_off()
    path = save(figure, args.out / "reconstructions.png")
    print(f"test digits (top) and their reconstructions (bottom) saved to {path.name}")
    if not after < before:
        print("the ELBO did not improve")
        return 1
    print(f"the ELBO improved by {before - after:.2f} nats per image")
    return 0


if __name__ == "__main__":
    sys.exit(main())
