"""Data sets: the shipped digits equal scikit-learn's, generated sets lie on their curves."""

from __future__ import annotations

from fnmatch import fnmatch
from pathlib import Path

import numpy as np
import pytest

from symdl import datasets


def test_digits_are_shipped_and_complete():
    X, y = datasets.load_digits()
    assert X.shape == (1797, 64) and X.dtype == np.float64
    assert y.shape == (1797,) and y.dtype == np.int64
    assert X.min() == 0 and X.max() == 16 and np.all(X == np.round(X))
    assert np.bincount(y).tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]


def test_digits_equal_scikit_learns_copy():
    sklearn_datasets = pytest.importorskip("sklearn.datasets")
    X, y = datasets.load_digits()
    reference = sklearn_datasets.load_digits()
    np.testing.assert_array_equal(X, reference.data)
    np.testing.assert_array_equal(y, reference.target)


def test_package_data_declares_the_digits_file():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    root = Path(__file__).parents[2]
    config = tomllib.loads((root / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["symdl"]
    shipped = [p.relative_to(root / "symdl").as_posix() for p in (root / "symdl/data").iterdir()]
    assert "digits.npz" in {Path(s).name for s in shipped}
    for name in shipped:
        assert any(fnmatch(name, pattern) for pattern in patterns), name


def test_moons_without_noise_lie_on_their_half_circles():
    X, y = datasets.make_moons(101, noise=0.0, seed=3)
    assert X.shape == (101, 2) and np.bincount(y).tolist() == [51, 50]
    outer, inner = X[y == 0], X[y == 1]
    np.testing.assert_allclose(np.hypot(*outer.T), 1.0, rtol=1e-12)
    np.testing.assert_allclose(np.hypot(inner[:, 0] - 1, inner[:, 1] - 0.5), 1.0, rtol=1e-12)
    assert np.all(outer[:, 1] >= -1e-12) and np.all(inner[:, 1] <= 0.5 + 1e-12)


def test_moons_noise_has_the_requested_spread():
    # The same seed draws the same noise and permutation whatever the noise level.
    X0, y0 = datasets.make_moons(4000, noise=0.0, seed=1)
    X, y = datasets.make_moons(4000, noise=0.3, seed=1)
    np.testing.assert_array_equal(y, y0)
    assert (X - X0).std() == pytest.approx(0.3, rel=0.05)
    assert abs((X - X0).mean()) < 0.03
    np.testing.assert_array_equal(X, datasets.make_moons(4000, noise=0.3, seed=1)[0])
    assert not np.array_equal(X, datasets.make_moons(4000, noise=0.3, seed=2)[0])


def test_spirals_without_noise_follow_the_formula():
    classes = 4
    X, y = datasets.make_spirals(203, classes=classes, noise=0.0, seed=5)
    assert X.shape == (203, 2) and np.bincount(y).tolist() == [51, 51, 51, 50]
    r = np.hypot(*X.T)
    assert r.max() == pytest.approx(1.0) and r.min() == pytest.approx(0.0)
    theta = np.arctan2(X[:, 0], X[:, 1])
    expected = 2 * np.pi * y / classes + 4 * r
    keep = r > 1e-9  # the angle of the centre is undefined
    difference = np.angle(np.exp(1j * (theta[keep] - expected[keep])))
    np.testing.assert_allclose(difference, 0.0, atol=1e-9)


def test_spirals_are_reproducible_and_noisy():
    a, b = datasets.make_spirals(90, seed=7), datasets.make_spirals(90, seed=7)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], datasets.make_spirals(90, seed=8)[0])


def test_train_test_split_partitions_the_rows():
    X = np.arange(50).reshape(25, 2)
    y = np.arange(25) * 10
    X_train, X_test, y_train, y_test = datasets.train_test_split(X, y, 0.2, seed=4)
    assert len(X_test) == 5 and len(X_train) == 20
    np.testing.assert_array_equal(X_train[:, 0] // 2 * 10, y_train)
    np.testing.assert_array_equal(X_test[:, 0] // 2 * 10, y_test)
    assert sorted(np.concatenate([y_train, y_test]).tolist()) == y.tolist()
    again = datasets.train_test_split(X, y, 0.2, seed=4)
    np.testing.assert_array_equal(again[1], X_test)
    assert not np.array_equal(datasets.train_test_split(X, y, 0.2, seed=5)[1], X_test)


def test_bad_arguments_are_named():
    with pytest.raises(datasets.DatasetError, match=r"X has 3 rows \(shape \(3, 2\)\) but y has 2"):
        datasets.train_test_split(np.zeros((3, 2)), np.zeros(2))
    with pytest.raises(datasets.DatasetError, match="test_fraction must lie strictly between"):
        datasets.train_test_split(np.zeros((3, 2)), np.zeros(3), 1.0)
    with pytest.raises(datasets.DatasetError, match="make_moons: noise must be a number >= 0"):
        datasets.make_moons(10, noise=-0.1)
    with pytest.raises(
        datasets.DatasetError, match="make_spirals: classes must be an integer >= 2"
    ):
        datasets.make_spirals(10, classes=1)
    with pytest.raises(datasets.DatasetError, match="make_spirals: n must be an integer >= 3"):
        datasets.make_spirals(2, classes=3)
