"""PCA of the digits: the explained variance of each principal direction, the digits in the
first two components, and the SVD as the best low-rank approximation (Eckart-Young).

    python examples/pca_digits.py [--out DIR]

The directions are the eigenvectors of the covariance (sd.prob.principal_components, derived as
maximising variance under a unit-norm constraint); the plots are explained_variance.png and
components.png. Eckart-Young: the squared Frobenius error of the best rank-k approximation of
the centred data is the sum of the squared singular values left out; printed for a few k and
checked (exit 1 if it fails). SYMDL_EXAMPLE_SMALL=1 changes nothing: it is fast.
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from symdl import datasets
from symdl.prob.pca import principal_components, stationarity


def save(figure: Figure, path: Path) -> Path:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    path.write_bytes(buffer.getvalue())
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("."), help="folder for the PNGs")
    args = parser.parse_args(argv)

    gradient, _ = stationarity()
    print(f"dL/dw of the PCA Lagrangian (symdl): {gradient}  (zero iff S w = lambda w)")
    X, y = datasets.load_digits()
    directions, explained = principal_components(X, 2)

    figure = Figure(figsize=(6, 3.5), layout="constrained")
    axes = figure.subplots()
    k = np.arange(1, len(explained) + 1)
    axes.bar(k, explained, label="each direction")
    axes.plot(k, np.cumsum(explained), "C3.-", label="cumulative")
    axes.set(xlabel="principal direction", ylabel="fraction of variance", xlim=(0, 40))
    axes.legend()
    path = save(figure, args.out / "explained_variance.png")
    print(
        f"explained variance: first two {explained[:2].sum():.1%}, first ten "
        f"{explained[:10].sum():.1%}; saved to {path}"
    )

    centred = X - X.mean(axis=0)
    scores = centred @ directions
    figure = Figure(figsize=(5.5, 5), layout="constrained")
    axes = figure.subplots()
    points = axes.scatter(scores[:, 0], scores[:, 1], c=y, cmap="tab10", s=6)
    figure.colorbar(points, ax=axes, label="digit")
    axes.set(xlabel="first component", ylabel="second component", title="digits, PCA")
    path = save(figure, args.out / "components.png")
    print(f"first two components saved to {path}")

    U, singular, Vt = np.linalg.svd(centred, full_matrices=False)
    ok = True
    for rank in (1, 2, 5, 10, 20):
        approximation = (U[:, :rank] * singular[:rank]) @ Vt[:rank]
        error = np.sum((centred - approximation) ** 2)
        predicted = np.sum(singular[rank:] ** 2)
        # any other rank-k approximation does worse, e.g. projecting on random directions
        basis, _ = np.linalg.qr(np.random.default_rng(rank).normal(size=(X.shape[1], rank)))
        other = np.sum((centred - centred @ basis @ basis.T) ** 2)
        ok = ok and np.isclose(error, predicted, rtol=1e-9) and error < other
        print(
            f"rank {rank:2d}: ||X - X_k||_F^2 = {error:10.1f} = sum of left-out sigma^2 "
            f"{predicted:10.1f}; random rank-{rank} projection {other:10.1f}"
        )
    # the SVD's right singular vectors are the principal directions (up to sign)
    ok = ok and np.allclose(np.abs(Vt[:2] @ directions), np.eye(2), atol=1e-8)
    if not ok:
        print("Eckart-Young or the PCA/SVD agreement failed")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
