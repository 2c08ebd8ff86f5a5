"""The decision-boundary figure, read back pixel by pixel: each side of a known boundary shows
the colour of the class a known classifier assigns there."""

from __future__ import annotations

import matplotlib.colors
import matplotlib.image
import numpy as np
import pytest

from symdl.render.plot import PlotError, plot_decision_boundary

# four samples in the corners, so the middle of each half shows only the background
CORNERS = np.array([[-1.0, -1.0], [-1.0, 1.0], [1.0, -1.0], [1.0, 1.0]])
LABELS = (CORNERS[:, 0] > 0).astype(int)


def _one_hot_right(points):
    """Class 1 right of x = 0, class 0 left of it, as (M, 2) scores."""
    right = points[:, 0] > 0
    return np.column_stack([~right, right]).astype(float)


def _background(class_index: int) -> np.ndarray:
    """The tab10 colour of a class at alpha 0.3 over white."""
    colour = np.array(matplotlib.colors.to_rgb(f"C{class_index}"))
    return 0.3 * colour + 0.7


def _halves(path) -> tuple[np.ndarray, np.ndarray]:
    image = matplotlib.image.imread(path)[..., :3]
    height, width = image.shape[:2]
    return image[height // 2, int(0.3 * width)], image[height // 2, int(0.75 * width)]


def test_each_side_of_the_boundary_has_its_class_colour(tmp_path):
    path = plot_decision_boundary(_one_hot_right, CORNERS, LABELS, tmp_path / "b.png")
    left, right = _halves(path)
    np.testing.assert_allclose(left, _background(0), atol=0.02)
    np.testing.assert_allclose(right, _background(1), atol=0.02)
    flipped = plot_decision_boundary(
        lambda p: _one_hot_right(p)[:, ::-1], CORNERS, LABELS, tmp_path / "flipped.png"
    )
    left, right = _halves(flipped)
    np.testing.assert_allclose(left, _background(1), atol=0.02)
    np.testing.assert_allclose(right, _background(0), atol=0.02)


@pytest.mark.parametrize("shape", ["(M,)", "(M, 1)"])
def test_one_probability_per_point_is_thresholded_at_a_half(tmp_path, shape):
    def probability(points):
        p = 1 / (1 + np.exp(-10 * points[:, 0]))
        return p if shape == "(M,)" else p[:, None]

    one_hot = LABELS[:, None] == np.arange(2)
    scores = plot_decision_boundary(_one_hot_right, CORNERS, LABELS, tmp_path / "s.png")
    probabilities = plot_decision_boundary(probability, CORNERS, one_hot, tmp_path / "p.png")
    assert np.array_equal(matplotlib.image.imread(scores), matplotlib.image.imread(probabilities))


def test_bad_input_is_named(tmp_path):
    with pytest.raises(PlotError, match=r"X must have shape \(N, 2\), got \(4, 3\)"):
        plot_decision_boundary(_one_hot_right, np.ones((4, 3)), LABELS, tmp_path / "x.png")
    with pytest.raises(PlotError, match="predict returned 3 rows for 2500 points"):
        plot_decision_boundary(
            lambda p: np.zeros((3, 2)), CORNERS, LABELS, tmp_path / "x.png", resolution=50
        )
    assert not list(tmp_path.iterdir())
