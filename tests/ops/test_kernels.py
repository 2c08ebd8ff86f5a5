"""Convolution and pooling kernels against naive loops, finite differences and PyTorch."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from symdl.nn import kernels as K

# ---------------------------------------------------------------- naive references (loops)


def _padded(x, ph, pw):
    n, c, h, w = x.shape
    xp = np.zeros((n, c, h + 2 * ph, w + 2 * pw))
    xp[:, :, ph : ph + h, pw : pw + w] = x
    return xp


def naive_conv2d_and_grads(x, k, g, stride, padding):
    """Forward by the definition, and the adjoint of each multiply-add for the gradients."""
    (sh, sw), (ph, pw) = stride, padding
    n, c, h, w = x.shape
    f, _, kh, kw = k.shape
    xp = _padded(x, ph, pw)
    ho, wo = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    y, dxp, dk = np.zeros((n, f, ho, wo)), np.zeros_like(xp), np.zeros_like(k)
    for b, o, i, j in itertools.product(range(n), range(f), range(ho), range(wo)):
        window = (b, slice(None), slice(i * sh, i * sh + kh), slice(j * sw, j * sw + kw))
        y[b, o, i, j] = np.sum(xp[window] * k[o])
        if g is not None:
            dxp[window] += g[b, o, i, j] * k[o]
            dk[o] += g[b, o, i, j] * xp[window]
    return y, dxp[:, :, ph : ph + h, pw : pw + w], dk


def naive_conv1d_and_grads(x, k, g, stride, padding):
    n, c, length = x.shape
    f, _, kl = k.shape
    xp = np.zeros((n, c, length + 2 * padding))
    xp[:, :, padding : padding + length] = x
    lo = (length + 2 * padding - kl) // stride + 1
    y, dxp, dk = np.zeros((n, f, lo)), np.zeros_like(xp), np.zeros_like(k)
    for b, o, i in itertools.product(range(n), range(f), range(lo)):
        for ch, a in itertools.product(range(c), range(kl)):
            y[b, o, i] += xp[b, ch, i * stride + a] * k[o, ch, a]
            dxp[b, ch, i * stride + a] += g[b, o, i] * k[o, ch, a]
            dk[o, ch, a] += g[b, o, i] * xp[b, ch, i * stride + a]
    return y, dxp[:, :, padding : padding + length], dk


def naive_pool2d_and_grad(x, g, size, stride, kind):
    """Pooling by loops; max routes to the first maximum in row-major order."""
    (kh, kw), (sh, sw) = size, stride
    n, c, h, w = x.shape
    ho, wo = (h - kh) // sh + 1, (w - kw) // sw + 1
    y, dx = np.zeros((n, c, ho, wo)), np.zeros_like(x)
    for b, ch, i, j in itertools.product(range(n), range(c), range(ho), range(wo)):
        cells = [(i * sh + a, j * sw + d) for a in range(kh) for d in range(kw)]
        if kind == "max":
            best = cells[0]
            for cell in cells[1:]:
                if x[b, ch][cell] > x[b, ch][best]:
                    best = cell
            y[b, ch, i, j] = x[b, ch][best]
            dx[b, ch][best] += g[b, ch, i, j]
        else:
            y[b, ch, i, j] = np.mean([x[b, ch][cell] for cell in cells])
            for cell in cells:
                dx[b, ch][cell] += g[b, ch, i, j] / (kh * kw)
    return y, dx


def finite_difference(f, a, entries, eps=1e-6):
    """Central differences of the scalar f at a few `entries` of array `a`."""
    out = []
    for idx in entries:
        plus, minus = a.copy(), a.copy()
        plus[idx] += eps
        minus[idx] -= eps
        out.append((f(plus) - f(minus)) / (2 * eps))
    return np.array(out)


def _some_entries(shape, rng, count=4):
    return [tuple(int(rng.integers(0, s)) for s in shape) for _ in range(count)]


# ---------------------------------------------------------------- convolution


CONV2D_CASES = [
    (stride, padding, kernel)
    for stride in [(1, 1), (2, 2), (3, 1), (1, 2)]
    for padding in [(0, 0), (1, 1), (2, 0), (0, 2)]
    for kernel in [(1, 1), (2, 3), (3, 3)]
]


@pytest.mark.parametrize("stride, padding, kernel", CONV2D_CASES)
def test_conv2d_and_gradients_match_loops(stride, padding, kernel, rng):
    x = rng.normal(size=(2, 3, 5, 6))
    k = rng.normal(size=(2, 3, *kernel))
    y = K.conv2d(x, k, stride, padding)
    g = rng.normal(size=y.shape)
    y_ref, dx_ref, dk_ref = naive_conv2d_and_grads(x, k, g, stride, padding)
    np.testing.assert_allclose(y, y_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(
        K.conv2d_grad_input(g, k, x.shape, stride, padding), dx_ref, rtol=1e-12, atol=1e-12
    )
    np.testing.assert_allclose(
        K.conv2d_grad_kernel(g, x, k.shape, stride, padding), dk_ref, rtol=1e-12, atol=1e-12
    )


@pytest.mark.parametrize(
    "stride, padding, size", list(itertools.product([1, 2, 3], [0, 1, 2], [1, 2, 4]))
)
def test_conv1d_and_gradients_match_loops(stride, padding, size, rng):
    x, k = rng.normal(size=(2, 2, 7)), rng.normal(size=(3, 2, size))
    y = K.conv1d(x, k, stride, padding)
    g = rng.normal(size=y.shape)
    y_ref, dx_ref, dk_ref = naive_conv1d_and_grads(x, k, g, stride, padding)
    np.testing.assert_allclose(y, y_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(
        K.conv1d_grad_input(g, k, x.shape, stride, padding), dx_ref, rtol=1e-12, atol=1e-12
    )
    np.testing.assert_allclose(
        K.conv1d_grad_kernel(g, x, k.shape, stride, padding), dk_ref, rtol=1e-12, atol=1e-12
    )


@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(1, 2),
    c=st.integers(1, 3),
    f=st.integers(1, 3),
    hw=st.tuples(st.integers(1, 7), st.integers(1, 7)),
    kernel=st.tuples(st.integers(1, 4), st.integers(1, 4)),
    stride=st.tuples(st.integers(1, 4), st.integers(1, 4)),
    padding=st.tuples(st.integers(0, 3), st.integers(0, 3)),
    seed=st.integers(0, 2**16),
)
def test_conv2d_any_shape_matches_loops(n, c, f, hw, kernel, stride, padding, seed):
    if any(s + 2 * p < kk for s, p, kk in zip(hw, padding, kernel, strict=True)):
        with pytest.raises(K.ShapeError, match="conv2d: the .* window"):
            K.conv2d(np.zeros((n, c, *hw)), np.zeros((f, c, *kernel)), stride, padding)
        return
    rng = np.random.default_rng(seed)
    x, k = rng.normal(size=(n, c, *hw)), rng.normal(size=(f, c, *kernel))
    y = K.conv2d(x, k, stride, padding)
    g = rng.normal(size=y.shape)
    y_ref, dx_ref, dk_ref = naive_conv2d_and_grads(x, k, g, stride, padding)
    np.testing.assert_allclose(y, y_ref, rtol=1e-12, atol=1e-12)
    dx = K.conv2d_grad_input(g, k, x.shape, stride, padding)
    np.testing.assert_allclose(dx, dx_ref, rtol=1e-12, atol=1e-12)
    dk = K.conv2d_grad_kernel(g, x, k.shape, stride, padding)
    np.testing.assert_allclose(dk, dk_ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("stride, padding", [((1, 1), (0, 0)), ((2, 1), (1, 2)), ((2, 3), (1, 1))])
def test_conv2d_gradients_match_finite_differences(stride, padding, rng):
    x, k = rng.normal(size=(2, 2, 6, 5)), rng.normal(size=(3, 2, 3, 2))
    g = rng.normal(size=K.conv2d(x, k, stride, padding).shape)

    def loss_x(x_):
        return float(np.sum(g * K.conv2d(x_, k, stride, padding)))

    def loss_k(k_):
        return float(np.sum(g * K.conv2d(x, k_, stride, padding)))

    dx = K.conv2d_grad_input(g, k, x.shape, stride, padding)
    dk = K.conv2d_grad_kernel(g, x, k.shape, stride, padding)
    entries_x, entries_k = _some_entries(x.shape, rng), _some_entries(k.shape, rng)
    fd_x, fd_k = finite_difference(loss_x, x, entries_x), finite_difference(loss_k, k, entries_k)
    np.testing.assert_allclose([dx[e] for e in entries_x], fd_x, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose([dk[e] for e in entries_k], fd_k, rtol=1e-6, atol=1e-8)


def test_conv1d_gradients_match_finite_differences(rng):
    x, k = rng.normal(size=(2, 3, 9)), rng.normal(size=(2, 3, 4))
    stride, padding = 2, 1
    g = rng.normal(size=K.conv1d(x, k, stride, padding).shape)
    dx = K.conv1d_grad_input(g, k, x.shape, stride, padding)
    dk = K.conv1d_grad_kernel(g, x, k.shape, stride, padding)
    entries_x, entries_k = _some_entries(x.shape, rng), _some_entries(k.shape, rng)
    fd_x = finite_difference(lambda a: np.sum(g * K.conv1d(a, k, stride, padding)), x, entries_x)
    fd_k = finite_difference(lambda a: np.sum(g * K.conv1d(x, a, stride, padding)), k, entries_k)
    np.testing.assert_allclose([dx[e] for e in entries_x], fd_x, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose([dk[e] for e in entries_k], fd_k, rtol=1e-6, atol=1e-8)


def test_integer_and_pair_arguments_agree(rng):
    x, k = rng.normal(size=(1, 2, 6, 6)), rng.normal(size=(2, 2, 3, 3))
    np.testing.assert_array_equal(K.conv2d(x, k, 2, 1), K.conv2d(x, k, (2, 2), (1, 1)))
    np.testing.assert_array_equal(K.max_pool2d(x, 2), K.max_pool2d(x, (2, 2), (2, 2)))
    x1, k1 = rng.normal(size=(1, 2, 6)), rng.normal(size=(2, 2, 3))
    np.testing.assert_array_equal(K.conv1d(x1, k1, 2, 1), K.conv1d(x1, k1, (2,), (1,)))


def test_float32_stays_float32(rng):
    x = rng.normal(size=(2, 2, 5, 5)).astype(np.float32)
    k = rng.normal(size=(3, 2, 3, 3)).astype(np.float32)
    y = K.conv2d(x, k, 1, 1)
    assert y.dtype == np.float32
    assert K.conv2d_grad_input(y, k, x.shape, 1, 1).dtype == np.float32
    assert K.conv2d_grad_kernel(y, x, k.shape, 1, 1).dtype == np.float32
    p = K.max_pool2d(x, 2)
    assert K.max_pool2d_grad(p, x, 2).dtype == np.float32
    assert K.avg_pool2d_grad(p, x.shape, 2).dtype == np.float32


# ---------------------------------------------------------------- pooling


POOL_CASES = list(
    itertools.product(["max", "avg"], [(1, 1), (2, 2), (3, 2)], [(1, 1), (2, 2), (1, 3)])
)


@pytest.mark.parametrize("kind, size, stride", POOL_CASES)
def test_pool2d_and_gradient_match_loops(kind, size, stride, rng):
    x = rng.normal(size=(2, 2, 6, 7))
    pool = K.max_pool2d if kind == "max" else K.avg_pool2d
    y = pool(x, size, stride)
    g = rng.normal(size=y.shape)
    y_ref, dx_ref = naive_pool2d_and_grad(x, g, size, stride, kind)
    np.testing.assert_allclose(y, y_ref, rtol=1e-12)
    dx = (
        K.max_pool2d_grad(g, x, size, stride)
        if kind == "max"
        else K.avg_pool2d_grad(g, x.shape, size, stride)
    )
    np.testing.assert_allclose(dx, dx_ref, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize(
    "kind, size, stride", list(itertools.product(["max", "avg"], [1, 2, 3], [1, 2, 3]))
)
def test_pool1d_and_gradient_match_2d_loops(kind, size, stride, rng):
    x = rng.normal(size=(2, 3, 8))
    pool, grad = {
        "max": (K.max_pool1d, lambda g: K.max_pool1d_grad(g, x, size, stride)),
        "avg": (K.avg_pool1d, lambda g: K.avg_pool1d_grad(g, x.shape, size, stride)),
    }[kind]
    y = pool(x, size, stride)
    g = rng.normal(size=y.shape)
    y_ref, dx_ref = naive_pool2d_and_grad(
        x[:, :, None], g[:, :, None], (1, size), (1, stride), kind
    )
    np.testing.assert_allclose(y, y_ref[:, :, 0], rtol=1e-12)
    np.testing.assert_allclose(grad(g), dx_ref[:, :, 0], rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("kind", ["max", "avg"])
def test_pool_gradients_match_finite_differences(kind, rng):
    # Distinct random values: no ties, so max pooling is differentiable at this point.
    x, size, stride = rng.normal(size=(2, 2, 5, 5)), (2, 3), (1, 2)
    pool = K.max_pool2d if kind == "max" else K.avg_pool2d
    g = rng.normal(size=pool(x, size, stride).shape)
    dx = (
        K.max_pool2d_grad(g, x, size, stride)
        if kind == "max"
        else K.avg_pool2d_grad(g, x.shape, size, stride)
    )
    entries = _some_entries(x.shape, rng, 8)
    fd = finite_difference(lambda a: np.sum(g * pool(a, size, stride)), x, entries)
    np.testing.assert_allclose([dx[e] for e in entries], fd, rtol=1e-6, atol=1e-8)


def test_max_pool_ties_go_to_the_first_maximum_in_row_major_order():
    x = np.zeros((1, 1, 2, 4))
    x[0, 0, 1, 3] = -1.0
    dx = K.max_pool2d_grad(np.array([[[[1.0, 2.0]]]]), x, 2)
    expected = np.zeros((1, 1, 2, 4))
    expected[0, 0, 0, 0], expected[0, 0, 0, 2] = 1.0, 2.0
    np.testing.assert_array_equal(dx, expected)
    np.testing.assert_array_equal(
        K.max_pool1d_grad(np.ones((1, 1, 2)), np.ones((1, 1, 3)), 2, 1), [[[1.0, 1.0, 0.0]]]
    )


# ---------------------------------------------------------------- errors


def test_shape_errors_name_the_op_and_the_shapes():
    x, k = np.zeros((2, 3, 5, 5)), np.zeros((4, 2, 3, 3))
    with pytest.raises(
        K.ShapeError,
        match=r"conv2d: input x has 3 channels \(shape \(2, 3, 5, 5\)\).* expects 2 \(shape \(4, 2, 3, 3\)\)",
    ):
        K.conv2d(x, k)
    with pytest.raises(
        K.ShapeError, match=r"conv2d: the width window 6 is larger than the padded input 5"
    ):
        K.conv2d(x, np.zeros((1, 3, 2, 6)))
    with pytest.raises(
        K.ShapeError, match=r"conv2d: x must be 4-D \(N, C, H, W\), got shape \(3, 5, 5\)"
    ):
        K.conv2d(x[0], k)
    with pytest.raises(K.ShapeError, match=r"conv2d: stride must be an integer >= 1"):
        K.conv2d(x, np.zeros((1, 3, 2, 2)), stride=0)
    with pytest.raises(K.ShapeError, match=r"padding must be an integer >= 0 or a pair"):
        K.conv2d(x, np.zeros((1, 3, 2, 2)), padding=(1, 2, 3))
    with pytest.raises(
        K.ShapeError,
        match=r"conv2d_grad_input: upstream gradient g has shape \(2, 1, 3, 3\) but the forward output has shape \(2, 1, 4, 4\)",
    ):
        K.conv2d_grad_input(np.zeros((2, 1, 3, 3)), np.zeros((1, 3, 2, 2)), x.shape)
    with pytest.raises(K.ShapeError, match=r"conv1d: the length window 9"):
        K.conv1d(np.zeros((1, 1, 4)), np.zeros((1, 1, 9)), padding=2)
    with pytest.raises(K.ShapeError, match=r"max_pool2d_grad: upstream gradient"):
        K.max_pool2d_grad(np.zeros((2, 3, 3, 3)), x, 2)
    with pytest.raises(K.ShapeError, match=r"avg_pool1d: x must be 3-D"):
        K.avg_pool1d(x, 2)
    assert issubclass(K.ShapeError, ValueError)


# ---------------------------------------------------------------- PyTorch


@pytest.mark.parametrize("stride, padding", [((1, 1), (0, 0)), ((2, 1), (1, 0)), ((3, 2), (2, 1))])
def test_conv_matches_pytorch(stride, padding, rng):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x, k = rng.normal(size=(3, 2, 7, 6)), rng.normal(size=(4, 2, 3, 2))
    tx, tk = torch.tensor(x, requires_grad=True), torch.tensor(k, requires_grad=True)
    ty = F.conv2d(tx, tk, stride=stride, padding=padding)
    g = rng.normal(size=tuple(ty.shape))
    ty.backward(torch.tensor(g))
    np.testing.assert_allclose(
        K.conv2d(x, k, stride, padding), ty.detach().numpy(), rtol=1e-12, atol=1e-12
    )
    np.testing.assert_allclose(
        K.conv2d_grad_input(g, k, x.shape, stride, padding), tx.grad.numpy(), rtol=1e-12, atol=1e-12
    )
    np.testing.assert_allclose(
        K.conv2d_grad_kernel(g, x, k.shape, stride, padding),
        tk.grad.numpy(),
        rtol=1e-12,
        atol=1e-12,
    )

    x1, k1 = x[:, :, 0], k[:, :, 0]
    tx, tk = torch.tensor(x1, requires_grad=True), torch.tensor(k1, requires_grad=True)
    ty = F.conv1d(tx, tk, stride=stride[0], padding=padding[0])
    g1 = rng.normal(size=tuple(ty.shape))
    ty.backward(torch.tensor(g1))
    np.testing.assert_allclose(
        K.conv1d(x1, k1, stride[0], padding[0]), ty.detach().numpy(), rtol=1e-12, atol=1e-12
    )
    np.testing.assert_allclose(
        K.conv1d_grad_input(g1, k1, x1.shape, stride[0], padding[0]),
        tx.grad.numpy(),
        rtol=1e-12,
        atol=1e-12,
    )
    np.testing.assert_allclose(
        K.conv1d_grad_kernel(g1, x1, k1.shape, stride[0], padding[0]),
        tk.grad.numpy(),
        rtol=1e-12,
        atol=1e-12,
    )


@pytest.mark.parametrize("size, stride", [(2, None), ((3, 2), (1, 2)), (2, 1)])
def test_pooling_matches_pytorch(size, stride, rng):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x = rng.normal(size=(2, 3, 6, 7))
    x[0, 0, :2, :2] = 1.0  # a tie: both conventions pick the first maximum
    for ours, grad, theirs in [
        (K.max_pool2d, lambda g: K.max_pool2d_grad(g, x, size, stride), F.max_pool2d),
        (K.avg_pool2d, lambda g: K.avg_pool2d_grad(g, x.shape, size, stride), F.avg_pool2d),
    ]:
        tx = torch.tensor(x, requires_grad=True)
        ty = theirs(tx, size, stride)
        g = rng.normal(size=tuple(ty.shape))
        ty.backward(torch.tensor(g))
        np.testing.assert_allclose(ours(x, size, stride), ty.detach().numpy(), rtol=1e-12)
        np.testing.assert_allclose(grad(g), tx.grad.numpy(), rtol=1e-12, atol=1e-15)
    size1 = size if isinstance(size, int) else size[0]
    stride1 = stride if stride is None or isinstance(stride, int) else stride[0]
    x1 = x[:, :, 0]
    for ours, grad, theirs in [
        (K.max_pool1d, lambda g: K.max_pool1d_grad(g, x1, size1, stride1), F.max_pool1d),
        (K.avg_pool1d, lambda g: K.avg_pool1d_grad(g, x1.shape, size1, stride1), F.avg_pool1d),
    ]:
        tx = torch.tensor(x1, requires_grad=True)
        ty = theirs(tx, size1, stride1)
        g = rng.normal(size=tuple(ty.shape))
        ty.backward(torch.tensor(g))
        np.testing.assert_allclose(ours(x1, size1, stride1), ty.detach().numpy(), rtol=1e-12)
        np.testing.assert_allclose(grad(g), tx.grad.numpy(), rtol=1e-12, atol=1e-15)
