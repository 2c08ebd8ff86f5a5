"""The column-layout kernels that generated code calls agree with the (N, C, H, W) kernels,
which are themselves checked against PyTorch in test_kernels.py, on every geometry kind:
padding, strides, overlapping, tiling and spaced windows, leftover rows, ties."""

import numpy as np
import pytest

from symdl.ops import runtime as R


def _columns(images):
    return images.reshape(len(images), -1).T


GEOMETRIES = [  # (C, H, W), (kh, kw), stride, padding
    ((1, 8, 8), (3, 3), (1, 1), (1, 1)),
    ((2, 7, 5), (2, 3), (2, 1), (1, 0)),
    ((3, 6, 6), (3, 3), (2, 2), (0, 0)),
    ((2, 1, 9), (1, 3), (1, 2), (0, 1)),
    ((2, 3, 4), (2, 2), (2, 3), (2, 2)),  # padding wider than some window offsets reach
    ((1, 5, 5), (3, 3), (3, 3), (2, 1)),  # windows made only of padding on one side
]


def test_convolution_input_gradient_in_columns_on_random_geometries():
    """The col2im of the input gradient, which adds each offset's share into the unpadded
    input only, against the image kernel on 40 random geometries (padding up to the window)."""
    rng = np.random.default_rng(3)
    for _ in range(40):
        kh, kw = rng.integers(1, 4, size=2)
        sh, sw = rng.integers(1, 4, size=2)
        ph, pw = rng.integers(0, kh + 1), rng.integers(0, kw + 1)
        c, h, w = rng.integers(1, 3), rng.integers(max(1, kh - 2 * ph), 7), rng.integers(1, 7)
        w = max(w, kw - 2 * pw)
        image, window = (int(c), int(h), int(w)), (int(kh), int(kw))
        stride, padding = (int(sh), int(sw)), (int(ph), int(pw))
        x = rng.normal(size=(3, *image))
        k = rng.normal(size=(2, image[0], *window))
        g = rng.normal(size=R.conv2d(x, k, stride, padding).shape)
        dx = R.conv2d_columns_grad_input(
            _columns(g), k.reshape(2, -1), image, window, stride, padding
        )
        expected = _columns(R.conv2d_grad_input(g, k, x.shape, stride, padding))
        np.testing.assert_allclose(
            dx, expected, rtol=1e-12, atol=1e-12, err_msg=str((image, window, stride, padding))
        )


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("image, window, stride, padding", GEOMETRIES)
def test_convolution_in_columns_matches_the_image_kernels(image, window, stride, padding, dtype):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, *image)).astype(dtype)
    k = rng.normal(size=(5, image[0], *window)).astype(dtype)
    X, K = _columns(x), k.reshape(5, -1)
    y = R.conv2d(x, k, stride, padding)
    Y = R.conv2d_columns(X, K, image, window, stride, padding)
    assert Y.dtype == dtype
    tol = {"rtol": 1e-5, "atol": 1e-5} if dtype == np.float32 else {"rtol": 1e-12, "atol": 1e-12}
    np.testing.assert_allclose(Y, _columns(y), **tol)
    g = rng.normal(size=y.shape).astype(dtype)
    dk = R.conv2d_columns_grad_kernel(_columns(g), X, image, window, stride, padding)
    np.testing.assert_allclose(
        dk, R.conv2d_grad_kernel(g, x, k.shape, stride, padding).reshape(5, -1), **tol
    )
    dx = R.conv2d_columns_grad_input(_columns(g), K, image, window, stride, padding)
    np.testing.assert_allclose(
        dx, _columns(R.conv2d_grad_input(g, k, x.shape, stride, padding)), **tol
    )
    assert dk.dtype == dx.dtype == dtype


POOLS = [
    ((2, 8, 8), (2, 2), (2, 2)),  # tiling
    ((2, 9, 7), (2, 2), (2, 2)),  # tiling with leftover rows and columns
    ((1, 6, 6), (3, 3), (1, 1)),  # overlapping
    ((2, 7, 7), (2, 2), (3, 3)),  # spaced
    ((3, 1, 9), (1, 3), (1, 2)),  # 1-D
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("image, window, stride", POOLS)
def test_pooling_in_columns_matches_the_image_kernels(image, window, stride, dtype):
    rng = np.random.default_rng(1)
    x = rng.integers(0, 3, size=(4, *image)).astype(dtype)  # many ties
    X = _columns(x)
    y = R.max_pool2d(x, window, stride)
    Y = R.max_pool2d_columns(X, image, window, stride)
    np.testing.assert_array_equal(Y, _columns(y))
    g = rng.normal(size=y.shape).astype(dtype)
    dx = R.max_pool2d_columns_grad(_columns(g), X, Y, image, window, stride)
    assert dx.dtype == dtype
    np.testing.assert_array_equal(dx, _columns(R.max_pool2d_grad(g, x, window, stride)))
    a = R.avg_pool2d_columns(X, image, window, stride)
    np.testing.assert_allclose(a, _columns(R.avg_pool2d(x, window, stride)), rtol=1e-6)
    da = R.avg_pool2d_columns_grad(_columns(g), image, window, stride)
    expected = _columns(R.avg_pool2d_grad(g, x.shape, window, stride))
    np.testing.assert_allclose(da, expected, rtol=1e-6)
    assert a.dtype == da.dtype == dtype
