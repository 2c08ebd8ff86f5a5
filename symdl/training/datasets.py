"""Small data sets for examples and tests: handwritten digits shipped with the package, two
moons and spirals generated with NumPy, and a seeded train/test split."""

from __future__ import annotations

import io
from importlib import resources

import numpy as np

__all__ = ["DatasetError", "load_digits", "make_moons", "make_spirals", "train_test_split"]


class DatasetError(ValueError):
    """A data-set argument out of range, or X and y that do not match."""


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """The 1797 8x8 handwritten digits of UCI (scikit-learn's bundled copy), no download.

    Returns:
        X: float64 (1797, 64), pixel intensities 0..16, rows are images flattened row-major
            (`X.reshape(-1, 1, 8, 8)` gives (N, C, H, W)).
        y: int64 (1797,), the digit 0..9.

    >>> X, y = load_digits()
    >>> X.shape, y.shape, int(X.max()), sorted(set(y.tolist())) == list(range(10))
    ((1797, 64), (1797,), 16, True)
    """
    data = resources.files("symdl").joinpath("data", "digits.npz").read_bytes()
    with np.load(io.BytesIO(data)) as digits:
        return digits["data"].astype(np.float64), digits["target"].astype(np.int64)


def make_moons(n: int = 200, noise: float = 0.1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaving half circles, shuffled, with Gaussian noise (as scikit-learn's).

    Class 0 lies on (cos s, sin s), class 1 on (1 - cos s, 1/2 - sin s), s in [0, π].

    Args:
        n: number of samples in all (class 0 gets the extra one when n is odd).
        noise: standard deviation of the Gaussian noise added to each coordinate.
        seed: seed of the NumPy generator.

    Returns:
        X float64 (n, 2) and y int64 (n,) with labels 0 and 1.

    >>> X, y = make_moons(6, noise=0.0)
    >>> X.shape, int(y.sum())
    ((6, 2), 3)
    """
    _check_count("make_moons", n, 2)
    _check_noise("make_moons", noise)
    rng = np.random.default_rng(seed)
    n_outer = n - n // 2
    s_outer, s_inner = np.linspace(0, np.pi, n_outer), np.linspace(0, np.pi, n // 2)
    outer = np.column_stack([np.cos(s_outer), np.sin(s_outer)])
    inner = np.column_stack([1 - np.cos(s_inner), 0.5 - np.sin(s_inner)])
    X = np.vstack([outer, inner]) + noise * rng.standard_normal((n, 2))
    y = np.repeat([0, 1], [n_outer, n // 2])
    order = rng.permutation(n)
    return X[order], y[order]


def make_spirals(
    n: int = 300, classes: int = 3, noise: float = 0.2, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Interleaved spiral arms, one per class, shuffled.

    Arm k: radius r in [0, 1], angle 2πk/classes + 4r + noise·N(0, 1), point r(sin θ, cos θ).

    Args:
        n: number of samples in all, shared as evenly as possible between the classes.
        classes: number of arms (and labels 0 .. classes-1).
        noise: standard deviation of the Gaussian noise on the angle, in radians.
        seed: seed of the NumPy generator.

    Returns:
        X float64 (n, 2) in the unit disc and y int64 (n,).

    >>> X, y = make_spirals(10, classes=3)
    >>> X.shape, [int(c) for c in np.bincount(y)]
    ((10, 2), [4, 3, 3])
    """
    if not isinstance(classes, int) or classes < 2:
        raise DatasetError(f"make_spirals: classes must be an integer >= 2, got {classes!r}")
    _check_count("make_spirals", n, classes)
    _check_noise("make_spirals", noise)
    rng = np.random.default_rng(seed)
    counts = [n // classes + (k < n % classes) for k in range(classes)]
    r = np.concatenate([np.linspace(0, 1, m) for m in counts])
    y = np.repeat(np.arange(classes), counts)
    theta = 2 * np.pi * y / classes + 4 * r + noise * rng.standard_normal(n)
    X = np.column_stack([r * np.sin(theta), r * np.cos(theta)])
    order = rng.permutation(n)
    return X[order], y[order]


def train_test_split(
    X: np.ndarray, y: np.ndarray, test_fraction: float = 0.2, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Split the rows of X and y at random into a training and a test part.

    Args:
        X: samples as rows.
        y: targets, one per row of X.
        test_fraction: share of the rows that go to the test part (rounded, at least one
            row in each part).
        seed: seed of the NumPy generator that draws the permutation.

    Returns:
        X_train, X_test, y_train, y_test (scikit-learn's order).

    Raises:
        DatasetError: X and y of different lengths, fewer than 2 rows, or a fraction
            outside (0, 1).

    >>> X_train, X_test, y_train, y_test = train_test_split(np.arange(10), np.arange(10), 0.3)
    >>> len(X_train), len(X_test), sorted(X_test.tolist()) == sorted(y_test.tolist())
    (7, 3, True)
    """
    X, y = np.asarray(X), np.asarray(y)
    if len(X) != len(y):
        raise DatasetError(
            f"train_test_split: X has {len(X)} rows (shape {X.shape}) but y has {len(y)} "
            f"(shape {y.shape}); give one target per sample"
        )
    if len(X) < 2:
        raise DatasetError(f"train_test_split: need at least 2 samples, got {len(X)}")
    if not isinstance(test_fraction, int | float) or not 0 < test_fraction < 1:
        raise DatasetError(
            f"train_test_split: test_fraction must lie strictly between 0 and 1, got {test_fraction!r}"
        )
    n_test = min(max(round(len(X) * test_fraction), 1), len(X) - 1)
    order = np.random.default_rng(seed).permutation(len(X))
    test, train = order[:n_test], order[n_test:]
    return X[train], X[test], y[train], y[test]


def _check_count(op: str, n, classes: int) -> None:
    if not isinstance(n, int | np.integer) or n < classes:
        raise DatasetError(f"{op}: n must be an integer >= {classes} (one per class), got {n!r}")


def _check_noise(op: str, noise) -> None:
    if not isinstance(noise, int | float) or not noise >= 0:
        raise DatasetError(f"{op}: noise must be a number >= 0, got {noise!r}")
