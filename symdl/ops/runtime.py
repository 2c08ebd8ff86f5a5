"""The NumPy kernels that generated code calls: convolution and pooling, forward and backward,
and column-wise reductions with fewer checks and copies than scipy.special's general versions.

Convolution contracts a strided view of every window (im2col) with the kernel; pooling and the
transposes loop over the kh·kw offsets inside a window, never over pixels or samples.
1-D ops are the 2-D ones on a height of 1.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

__all__ = [
    "ShapeError",
    "avg_pool1d",
    "avg_pool1d_grad",
    "avg_pool2d",
    "avg_pool2d_grad",
    "conv1d",
    "conv1d_grad_input",
    "conv1d_grad_kernel",
    "conv2d",
    "conv2d_grad_input",
    "conv2d_grad_kernel",
    "logsumexp",
    "max_pool1d",
    "max_pool1d_grad",
    "mean_all",
    "max_pool2d",
    "row_dots",
    "max_pool2d_grad",
]

Pair = int | tuple[int, int]


class ShapeError(ValueError):
    """Shapes that do not fit: arrays or window arguments given to a kernel, an input array
    and the matrix symbol it is given for, a layer and its input. Defined once, here, the lowest
    layer that raises it; symdl.compile and symdl.nn raise this same class."""


# ---------------------------------------------------------------- arguments


def _pair(value, op: str, name: str, minimum: int) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, int | np.integer) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, int | np.integer) and v >= minimum for v in pair):
        raise ShapeError(
            f"{op}: {name} must be an integer >= {minimum} or a pair of them, got {value!r}"
        )
    return int(pair[0]), int(pair[1])


def _single(value, op: str, name: str, minimum: int) -> int:
    if isinstance(value, tuple | list) and len(value) == 1:
        value = value[0]
    if not isinstance(value, int | np.integer) or value < minimum:
        raise ShapeError(f"{op}: {name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _array(a, op: str, name: str, ndim: int, layout: str) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim != ndim:
        raise ShapeError(f"{op}: {name} must be {ndim}-D {layout}, got shape {a.shape}")
    return a


def _output_size(op, size, window, stride, padding, what) -> int:
    padded = size + 2 * padding
    if padded < window:
        raise ShapeError(
            f"{op}: the {what} window {window} is larger than the padded input {padded} "
            f"(size {size}, padding {padding}); pad more or use a smaller window"
        )
    return (padded - window) // stride + 1


def _check_grad_shape(op: str, g: np.ndarray, expected: tuple) -> None:
    if g.shape != tuple(expected):
        raise ShapeError(
            f"{op}: upstream gradient g has shape {g.shape} but the forward output has shape "
            f"{tuple(expected)}; pass the gradient of this op's output"
        )


# ---------------------------------------------------------------- convolution, 2-D core


def _windows(xp: np.ndarray, window: tuple[int, int], stride: tuple[int, int]) -> np.ndarray:
    """View (N, C, Ho, Wo, kh, kw) of every window of `xp` (N, C, H, W); no copy."""
    view = sliding_window_view(xp, window, axis=(2, 3))
    return view[:, :, :: stride[0], :: stride[1]]


def _pad(x: np.ndarray, padding: tuple[int, int]) -> np.ndarray:
    if padding == (0, 0):
        return x
    ph, pw = padding
    return np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))


def _conv(x, k, stride, padding):
    """Cross-correlation y[n,f,i,j] = Σ_{c,a,b} xp[n, c, i·sh + a, j·sw + b] k[f, c, a, b]."""
    windows = _windows(_pad(x, padding), k.shape[2:], stride)
    y = np.tensordot(windows, k, axes=([1, 4, 5], [1, 2, 3]))  # (N, Ho, Wo, F)
    return np.ascontiguousarray(y.transpose(0, 3, 1, 2))


def _offsets(window: tuple[int, int], stride: tuple[int, int], out_hw: tuple[int, int]):
    """For each offset (a, b) inside a window, row-major: the slice of the input it reads.

    `x[slice]` is then (N, C, Ho, Wo): entry (a, b) of every window at once. Kernels loop
    over these kh·kw offsets, never over pixels or samples.
    """
    (sh, sw), (ho, wo) = stride, out_hw
    for a in range(window[0]):
        for b in range(window[1]):
            yield (
                a,
                b,
                (slice(None), slice(None), slice(a, a + sh * ho, sh), slice(b, b + sw * wo, sw)),
            )


def _col2im(cols: np.ndarray, shape: tuple, stride: tuple[int, int]) -> np.ndarray:
    """Sum window contributions `cols` (N, C, Ho, Wo, kh, kw) into an array of `shape`.

    The transpose of `_windows`: where windows overlap, contributions accumulate.
    """
    out = np.zeros(shape, dtype=cols.dtype)
    for a, b, where in _offsets(cols.shape[4:], stride, cols.shape[2:4]):
        out[where] += cols[..., a, b]
    return out


def _conv_grad_input(g, k, input_shape, stride, padding):
    """dxp[n,c,i·sh+a, j·sw+b] += Σ_f g[n,f,i,j] k[f,c,a,b], cropped to the unpadded input.

    This is the full correlation of the stride-dilated g with the flipped kernel, computed
    as im2col's transpose; inputs that no window reached get a zero gradient.
    """
    n, c, height, width = input_shape
    (ph, pw), result_type = padding, np.result_type(g, k)
    cols = np.tensordot(g, k, axes=([1], [0])).transpose(0, 3, 1, 2, 4, 5)  # (N,C,Ho,Wo,kh,kw)
    padded = _col2im(
        cols.astype(result_type, copy=False), (n, c, height + 2 * ph, width + 2 * pw), stride
    )
    return padded[:, :, ph : ph + height, pw : pw + width]


def _conv_grad_kernel(g, x, kernel_shape, stride, padding):
    """Correlation of the input with the upstream gradient: Σ_{n,i,j} g[n,f,i,j] xp[...]."""
    windows = _windows(_pad(x, padding), kernel_shape[2:], stride)
    return np.tensordot(g, windows, axes=([0, 2, 3], [0, 2, 3]))  # (F, C, kh, kw)


def _conv_shapes(op, x_shape, k_shape, stride, padding, axes=("height", "width")):
    """Check that kernel `k_shape` fits input `x_shape`; return the output shape."""
    if x_shape[1] != k_shape[1]:
        raise ShapeError(
            f"{op}: input x has {x_shape[1]} channels (shape {x_shape}) but kernel k expects "
            f"{k_shape[1]} (shape {k_shape}); a kernel is (filters, channels, *window)"
        )
    spatial = [
        _output_size(op, size, window, s, p, axis)
        for size, window, s, p, axis in zip(
            x_shape[2:], k_shape[2:], stride, padding, axes, strict=True
        )
    ]
    return (x_shape[0], k_shape[0], *spatial)


# ---------------------------------------------------------------- convolution, public


def conv2d(x, k, stride: Pair = (1, 1), padding: Pair = (0, 0)) -> np.ndarray:
    """2-D cross-correlation (what deep-learning libraries call convolution), zero padded.

    Args:
        x: input (N, C, H, W).
        k: kernel (F, C, kh, kw).
        stride: int or (sh, sw).
        padding: int or (ph, pw) zeros added on each side.

    Returns:
        y (N, F, Ho, Wo) with Ho = (H + 2 ph - kh) // sh + 1, likewise Wo.

    Raises:
        ShapeError: arrays that are not 4-D, channels that differ, or a kernel larger than the
            padded input.

    >>> conv2d(np.arange(9.0).reshape(1, 1, 3, 3), np.ones((1, 1, 2, 2)))[0, 0]
    array([[ 8., 12.],
           [20., 24.]])
    """
    x = _array(x, "conv2d", "x", 4, "(N, C, H, W)")
    k = _array(k, "conv2d", "k", 4, "(F, C, kh, kw)")
    stride, padding = _pair(stride, "conv2d", "stride", 1), _pair(padding, "conv2d", "padding", 0)
    _conv_shapes("conv2d", x.shape, k.shape, stride, padding)
    return _conv(x, k, stride, padding)


def conv2d_grad_input(g, k, input_shape, stride: Pair = (1, 1), padding: Pair = (0, 0)):
    """Gradient of a loss with respect to `x` of `conv2d(x, k, stride, padding)`.

    Args:
        g: gradient with respect to the output, (N, F, Ho, Wo).
        k: kernel (F, C, kh, kw).
        input_shape: the shape (N, C, H, W) of x.

    Returns:
        dx of shape `input_shape`.

    Raises:
        ShapeError: g not shaped like the forward output.
    """
    op = "conv2d_grad_input"
    g, k = _array(g, op, "g", 4, "(N, F, Ho, Wo)"), _array(k, op, "k", 4, "(F, C, kh, kw)")
    stride, padding = _pair(stride, op, "stride", 1), _pair(padding, op, "padding", 0)
    input_shape = tuple(input_shape)
    if len(input_shape) != 4:
        raise ShapeError(f"{op}: input_shape must be (N, C, H, W), got {input_shape}")
    _check_grad_shape(op, g, _conv_shapes(op, input_shape, k.shape, stride, padding))
    return _conv_grad_input(g, k, input_shape, stride, padding)


def conv2d_grad_kernel(g, x, kernel_shape, stride: Pair = (1, 1), padding: Pair = (0, 0)):
    """Gradient of a loss with respect to `k` of `conv2d(x, k, stride, padding)`.

    Args:
        g: gradient with respect to the output, (N, F, Ho, Wo).
        x: input (N, C, H, W).
        kernel_shape: the shape (F, C, kh, kw) of k.

    Returns:
        dk of shape `kernel_shape`.

    Raises:
        ShapeError: g not shaped like the forward output.
    """
    op = "conv2d_grad_kernel"
    g, x = _array(g, op, "g", 4, "(N, F, Ho, Wo)"), _array(x, op, "x", 4, "(N, C, H, W)")
    stride, padding = _pair(stride, op, "stride", 1), _pair(padding, op, "padding", 0)
    kernel_shape = tuple(kernel_shape)
    if len(kernel_shape) != 4:
        raise ShapeError(f"{op}: kernel_shape must be (F, C, kh, kw), got {kernel_shape}")
    _check_grad_shape(op, g, _conv_shapes(op, x.shape, kernel_shape, stride, padding))
    return _conv_grad_kernel(g, x, kernel_shape, stride, padding)


def _conv1d_args(op, stride, padding):
    return (1, _single(stride, op, "stride", 1)), (0, _single(padding, op, "padding", 0))


def _conv1d_shapes(op, x_shape, k_shape, stride, padding):
    return _conv_shapes(op, x_shape, k_shape, (stride,), (padding,), axes=("length",))


def conv1d(x, k, stride: int = 1, padding: int = 0) -> np.ndarray:
    """1-D cross-correlation, zero padded: x (N, C, L), k (F, C, kl) -> y (N, F, Lo).

    Lo = (L + 2 padding - kl) // stride + 1. Raises ShapeError as `conv2d` does.

    >>> conv1d(np.arange(5.0).reshape(1, 1, 5), np.array([[[1.0, -1.0]]]), stride=2)
    array([[[-1., -1.]]])
    """
    op = "conv1d"
    x, k = _array(x, op, "x", 3, "(N, C, L)"), _array(k, op, "k", 3, "(F, C, kl)")
    stride2, padding2 = _conv1d_args(op, stride, padding)
    _conv1d_shapes(op, x.shape, k.shape, stride2[1], padding2[1])
    return _conv(x[:, :, None], k[:, :, None], stride2, padding2)[:, :, 0]


def conv1d_grad_input(g, k, input_shape, stride: int = 1, padding: int = 0) -> np.ndarray:
    """Gradient with respect to x of `conv1d(x, k, stride, padding)`; g is (N, F, Lo)."""
    op = "conv1d_grad_input"
    g, k = _array(g, op, "g", 3, "(N, F, Lo)"), _array(k, op, "k", 3, "(F, C, kl)")
    stride2, padding2 = _conv1d_args(op, stride, padding)
    input_shape = tuple(input_shape)
    if len(input_shape) != 3:
        raise ShapeError(f"{op}: input_shape must be (N, C, L), got {input_shape}")
    _check_grad_shape(op, g, _conv1d_shapes(op, input_shape, k.shape, stride2[1], padding2[1]))
    n, c, length = input_shape
    dx = _conv_grad_input(g[:, :, None], k[:, :, None], (n, c, 1, length), stride2, padding2)
    return dx[:, :, 0]


def conv1d_grad_kernel(g, x, kernel_shape, stride: int = 1, padding: int = 0) -> np.ndarray:
    """Gradient with respect to k of `conv1d(x, k, stride, padding)`; g is (N, F, Lo)."""
    op = "conv1d_grad_kernel"
    g, x = _array(g, op, "g", 3, "(N, F, Lo)"), _array(x, op, "x", 3, "(N, C, L)")
    stride2, padding2 = _conv1d_args(op, stride, padding)
    kernel_shape = tuple(kernel_shape)
    if len(kernel_shape) != 3:
        raise ShapeError(f"{op}: kernel_shape must be (F, C, kl), got {kernel_shape}")
    _check_grad_shape(op, g, _conv1d_shapes(op, x.shape, kernel_shape, stride2[1], padding2[1]))
    f, c, kl = kernel_shape
    return _conv_grad_kernel(g[:, :, None], x[:, :, None], (f, c, 1, kl), stride2, padding2)[
        :, :, 0
    ]


# ---------------------------------------------------------------- pooling, 2-D core


def _pool_shape(op, x_shape, size, stride, axes=("height", "width")):
    spatial = [
        _output_size(op, n, w, s, 0, axis)
        for n, w, s, axis in zip(x_shape[2:], size, stride, axes, strict=True)
    ]
    return (*x_shape[:2], *spatial)


def _max_pool(x, size, stride, out_hw):
    y = None
    for _, _, where in _offsets(size, stride, out_hw):
        y = x[where].copy() if y is None else np.maximum(y, x[where], out=y)
    return y


def _max_pool_grad(g, x, size, stride):
    """Each window's gradient routed to its arg-max, found in one pass over the windows.

    Ties: the first maximum of a window in row-major order takes the whole gradient, as
    np.argmax picks it (and PyTorch's CPU kernel does).
    """
    (kh, kw), (n, c, ho, wo) = size, g.shape
    index = _windows(x, size, stride).reshape(n, c, ho, wo, kh * kw).argmax(axis=-1)
    cols = np.zeros((n, c, ho, wo, kh, kw), dtype=np.result_type(g, x))
    np.put_along_axis(cols.reshape(n, c, ho, wo, kh * kw), index[..., None], g[..., None], -1)
    if tuple(stride) != tuple(size):  # overlapping or spaced windows: sum where they meet
        return _col2im(cols, x.shape, stride)
    tiled = cols.transpose(0, 1, 2, 4, 3, 5).reshape(n, c, ho * kh, wo * kw)
    if tiled.shape == x.shape:
        return tiled
    dx = np.zeros(x.shape, dtype=tiled.dtype)  # rows and columns no window reached
    dx[:, :, : ho * kh, : wo * kw] = tiled
    return dx


def _avg_pool(x, size, stride, out_hw):
    y = np.zeros((*x.shape[:2], *out_hw), dtype=np.result_type(x, np.float16))
    for _, _, where in _offsets(size, stride, out_hw):
        y += x[where]
    return y / (size[0] * size[1])


def _avg_pool_grad(g, x_shape, size, stride):
    share, dx = g / (size[0] * size[1]), np.zeros(x_shape, dtype=np.result_type(g, np.float16))
    for _, _, where in _offsets(size, stride, g.shape[2:]):
        dx[where] += share
    return dx


# ---------------------------------------------------------------- pooling, public


def _pool2d_args(op, x_shape, size, stride):
    """Window size, stride and output shape of a 2-D pooling of an input of `x_shape`."""
    if len(x_shape) != 4:
        raise ShapeError(f"{op}: x must be 4-D (N, C, H, W), got shape {tuple(x_shape)}")
    size = _pair(size, op, "size", 1)
    stride = size if stride is None else _pair(stride, op, "stride", 1)
    return size, stride, _pool_shape(op, tuple(x_shape), size, stride)


def max_pool2d(x, size: Pair, stride: Pair | None = None) -> np.ndarray:
    """Maximum over each size[0] x size[1] window, moved by `stride` (default: `size`).

    Args:
        x: input (N, C, H, W).
        size: int or (kh, kw).
        stride: int or (sh, sw); None means non-overlapping windows.

    Returns:
        (N, C, Ho, Wo) with Ho = (H - kh) // sh + 1; a last partial window is dropped.

    Raises:
        ShapeError: x not 4-D, or a window larger than x.

    >>> max_pool2d(np.arange(16.0).reshape(1, 1, 4, 4), 2)[0, 0]
    array([[ 5.,  7.],
           [13., 15.]])
    """
    x = np.asarray(x)
    size, stride, out = _pool2d_args("max_pool2d", x.shape, size, stride)
    return _max_pool(x, size, stride, out[2:])


def max_pool2d_grad(g, x, size: Pair, stride: Pair | None = None) -> np.ndarray:
    """Gradient with respect to x of `max_pool2d(x, size, stride)`.

    Each window's gradient goes to its maximum; on ties, to the first maximum in row-major
    order within the window (PyTorch's CPU convention). Overlapping windows accumulate.

    Raises:
        ShapeError: g not shaped like the forward output.
    """
    op = "max_pool2d_grad"
    x, g = np.asarray(x), _array(g, op, "g", 4, "(N, C, Ho, Wo)")
    size, stride, out = _pool2d_args(op, x.shape, size, stride)
    _check_grad_shape(op, g, out)
    return _max_pool_grad(g, x, size, stride)


def avg_pool2d(x, size: Pair, stride: Pair | None = None) -> np.ndarray:
    """Mean over each size[0] x size[1] window, moved by `stride` (default: `size`).

    Shapes and errors as `max_pool2d`.

    >>> avg_pool2d(np.arange(16.0).reshape(1, 1, 4, 4), 2)[0, 0]
    array([[ 2.5,  4.5],
           [10.5, 12.5]])
    """
    x = np.asarray(x)
    size, stride, out = _pool2d_args("avg_pool2d", x.shape, size, stride)
    return _avg_pool(x, size, stride, out[2:])


def avg_pool2d_grad(g, input_shape, size: Pair, stride: Pair | None = None) -> np.ndarray:
    """Gradient with respect to x of `avg_pool2d(x, size, stride)`; x has `input_shape`.

    Each window spreads its gradient equally over its kh·kw inputs.
    """
    op = "avg_pool2d_grad"
    g, input_shape = _array(g, op, "g", 4, "(N, C, Ho, Wo)"), tuple(input_shape)
    size, stride, out = _pool2d_args(op, input_shape, size, stride)
    _check_grad_shape(op, g, out)
    return _avg_pool_grad(g, input_shape, size, stride)


def _pool1d_args(op, x_shape, size, stride):
    """As `_pool2d_args` for (N, C, L), with the window and stride as 2-D pairs of height 1."""
    if len(x_shape) != 3:
        raise ShapeError(f"{op}: x must be 3-D (N, C, L), got shape {tuple(x_shape)}")
    size = _single(size, op, "size", 1)
    stride = size if stride is None else _single(stride, op, "stride", 1)
    out = _pool_shape(op, tuple(x_shape), (size,), (stride,), axes=("length",))
    return (1, size), (1, stride), out


def max_pool1d(x, size: int, stride: int | None = None) -> np.ndarray:
    """Maximum over windows of `size` along the last axis of x (N, C, L).

    >>> max_pool1d(np.array([[[1.0, 3.0, 2.0, 0.0, 5.0]]]), 2)
    array([[[3., 2.]]])
    """
    x = np.asarray(x)
    size, stride, out = _pool1d_args("max_pool1d", x.shape, size, stride)
    return _max_pool(x[:, :, None], size, stride, (1, out[2]))[:, :, 0]


def max_pool1d_grad(g, x, size: int, stride: int | None = None) -> np.ndarray:
    """Gradient with respect to x of `max_pool1d(x, size, stride)` (ties: first maximum)."""
    op = "max_pool1d_grad"
    x, g = np.asarray(x), _array(g, op, "g", 3, "(N, C, Lo)")
    size, stride, out = _pool1d_args(op, x.shape, size, stride)
    _check_grad_shape(op, g, out)
    return _max_pool_grad(g[:, :, None], x[:, :, None], size, stride)[:, :, 0]


def avg_pool1d(x, size: int, stride: int | None = None) -> np.ndarray:
    """Mean over windows of `size` along the last axis of x (N, C, L)."""
    x = np.asarray(x)
    size, stride, out = _pool1d_args("avg_pool1d", x.shape, size, stride)
    return _avg_pool(x[:, :, None], size, stride, (1, out[2]))[:, :, 0]


def avg_pool1d_grad(g, input_shape, size: int, stride: int | None = None) -> np.ndarray:
    """Gradient with respect to x of `avg_pool1d(x, size, stride)`; x has `input_shape`."""
    op = "avg_pool1d_grad"
    g, input_shape = _array(g, op, "g", 3, "(N, C, Lo)"), tuple(input_shape)
    size, stride, out = _pool1d_args(op, input_shape, size, stride)
    _check_grad_shape(op, g, out)
    n, c, length = input_shape
    return _avg_pool_grad(g[:, :, None], (n, c, 1, length), size, stride)[:, :, 0]


def row_dots(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(a ∘ b) 1, the sum of each row of the entrywise product, as a column: one dot product
    per row (`np.vecdot`) when both rows are contiguous, which reads each array once and makes
    no full-size temporary (batch norm's Σ Ḡ ∘ C and Σ C ∘ C: 2-3x faster than
    `(a*b).sum(axis=1)` at 256 x 256); otherwise that sum.

    >>> a = np.array([[1.0, 2.0], [3.0, 4.0]])
    >>> row_dots(a, a).ravel().tolist(), row_dots(a, np.asfortranarray(a)).ravel().tolist()
    ([5.0, 25.0], [5.0, 25.0])
    """
    if a.flags.c_contiguous and b.flags.c_contiguous and a.shape == b.shape:
        return np.vecdot(a, b, axis=1)[:, None]
    return (a * b).sum(axis=1, keepdims=True)


def mean_all(x: np.ndarray):
    """The mean of every entry of `x`, as `x.mean()` computes it (the same sum divided by the
    count, so the same bits) without the Python bookkeeping of NumPy's `mean`, which is 1.5 µs
    of a 50 µs training step of a small network.

    >>> x = np.array([[0.1, 0.2, 0.7]], dtype=np.float32)
    >>> mean_all(x) == x.mean(), mean_all(x).dtype
    (np.True_, dtype('float32'))
    """
    return np.add.reduce(x, axis=None) / x.size


def logsumexp(Z: np.ndarray, axis: int = 0) -> np.ndarray:
    """log Σ exp(Z) along `axis` (kept), stable: the maximum is taken out first, so logits of
    ±1000 give finite results."""
    peak = Z.max(axis=axis, keepdims=True)
    peak = np.where(np.isfinite(peak), peak, 0.0)
    return peak + np.log(np.exp(Z - peak).sum(axis=axis, keepdims=True))


# ---------------------------------------------------------------- the column layout
# What generated code calls. A batch of images is the matrix with one flattened example per
# column, (C·H·W, N), read as the array (C, H, W, N) by a reshape that never copies: the
# examples stay in the last axis through every op, so a convolution is one GEMM of the
# kernel (F, C·kh·kw) with the window matrix (C·kh·kw, Ho·Wo·N), whose result already is the
# output matrix (F·Ho·Wo, N), and nothing is transposed between ops.


def _pad_images(x, padding):
    """Images x (C, H, W, N) with `padding` = (ph, pw) rows and columns of zeros on each side.

    One zeroed array and one copy into it: np.pad's general machinery costs more than the
    copy itself at the sizes of a training step.
    """
    ph, pw = padding
    if not (ph or pw):
        return x
    c, h, w, n = x.shape
    out = np.zeros((c, h + 2 * ph, w + 2 * pw, n), dtype=x.dtype)
    out[:, ph : ph + h, pw : pw + w] = x
    return out


def _image_windows(x, window, stride, padding):
    """The window matrix (C·kh·kw, Ho·Wo·N) of images x (C, H, W, N), zero padded (im2col).

    One strided copy per window offset, each of runs of N contiguous entries: 20-40% faster
    than copying a transposed sliding_window_view, whose construction alone costs ~9 µs.
    """
    (kh, kw), (sh, sw) = window, stride
    xp = _pad_images(x, padding)
    c, hp, wp, n = xp.shape
    ho, wo = (hp - kh) // sh + 1, (wp - kw) // sw + 1
    cols = np.empty((c, kh, kw, ho, wo, n), dtype=x.dtype)
    for a, b, where in _image_offsets(window, stride, (ho, wo)):
        cols[:, a, b] = xp[where]
    return cols.reshape(c * kh * kw, ho * wo * n)


def _out_size(size, window, stride, padding):
    return (size + 2 * padding - window) // stride + 1


def conv2d_windows(X, image, window, stride=(1, 1), padding=(0, 0)):
    """The window matrix (C·kh·kw, Ho·Wo·N) of X (C·H·W, N), images `image` = (C, H, W):
    what a convolution and its kernel gradient both contract with, built once per step."""
    c, h, w = image
    return _image_windows(X.reshape(c, h, w, X.shape[1]), window, stride, padding)


def conv2d_windowed(windows, K, image, window, stride=(1, 1), padding=(0, 0), bias=None):
    """`conv2d_columns` from the window matrix of its input (`conv2d_windows`): one GEMM of
    the kernels K (F, C·kh·kw), the bias (F, 1) added in place; returns (F·Ho·Wo, N)."""
    y = K @ windows  # (F, Ho·Wo·N): already the output matrix
    if bias is not None:
        y += np.asarray(bias).reshape(-1, 1)
    (_, h, w), (kh, kw), (sh, sw), (ph, pw) = image, window, stride, padding
    positions = _out_size(h, kh, sh, ph) * _out_size(w, kw, sw, pw)
    return y.reshape(-1, windows.shape[1] // positions)


def conv2d_windowed_grad_kernel(G, windows, image, window, stride=(1, 1), padding=(0, 0)):
    """Gradient with respect to K of `conv2d_windowed`: G (F·Ho·Wo, N) -> (F, C·kh·kw)."""
    return G.reshape(G.shape[0] * G.shape[1] // windows.shape[1], -1) @ windows.T


def conv2d_columns(X, K, image, window, stride=(1, 1), padding=(0, 0), bias=None):
    """`conv2d` on the column layout: X (C·H·W, N) of images `image` = (C, H, W), kernels
    K (F, C·kh·kw) with `window` = (kh, kw), optionally a bias (F, 1) per map, added in place
    to the product; returns (F·Ho·Wo, N).

    >>> x = np.arange(9.0).reshape(1, 1, 3, 3)
    >>> y = conv2d_columns(x.reshape(1, -1).T, np.ones((1, 4)), (1, 3, 3), (2, 2))
    >>> y.T.reshape(2, 2)
    array([[ 8., 12.],
           [20., 24.]])
    """
    windows = conv2d_windows(X, image, window, stride, padding)
    return conv2d_windowed(windows, K, image, window, stride, padding, bias)


def conv2d_columns_grad_kernel(G, X, image, window, stride=(1, 1), padding=(0, 0)):
    """Gradient with respect to K of `conv2d_columns`: G (F·Ho·Wo, N) -> (F, C·kh·kw)."""
    windows = conv2d_windows(X, image, window, stride, padding)
    return conv2d_windowed_grad_kernel(G, windows, image, window, stride, padding)


def conv2d_columns_grad_input(G, K, image, window, stride=(1, 1), padding=(0, 0)):
    """Gradient with respect to X of `conv2d_columns`: G (F·Ho·Wo, N) -> (C·H·W, N).

    The window matrix's transpose (col2im): each kernel offset adds its share into a strided
    slice of the padded input.
    """
    (c, h, w), (kh, kw), (sh, sw), (ph, pw) = image, window, stride, padding
    n = G.shape[1]
    ho, wo = _out_size(h, kh, sh, ph), _out_size(w, kw, sw, pw)
    cols = (K.T @ G.reshape(K.shape[0], -1)).reshape(c, kh, kw, ho, wo, n)
    dx = np.zeros((c, h, w, n), dtype=cols.dtype)  # unpadded: shares that land in the padding
    for a in range(kh):  # are left out, so nothing is cropped (and copied) at the end
        out_rows, rows = _unpadded(a, sh, ph, ho, h)
        for b in range(kw):
            out_cols, columns = _unpadded(b, sw, pw, wo, w)
            if out_rows.stop > out_rows.start and out_cols.stop > out_cols.start:
                dx[:, rows, columns] += cols[:, a, b, out_rows, out_cols]
    return dx.reshape(-1, n)


def _unpadded(offset, stride, padding, out, size):
    """For entry `offset` of a window along one axis: the output positions whose entry lies
    inside the unpadded input, and the input positions they read, as two slices."""
    first = max(0, -(-(padding - offset) // stride))  # i·stride + offset - padding >= 0
    stop = max(first, min(out, (size - 1 + padding - offset) // stride + 1))
    start = first * stride + offset - padding
    return slice(first, stop), slice(start, start + (stop - first - 1) * stride + 1, stride)


def _image_offsets(window, stride, out_hw):
    """Slices of images (C, H, W, N) reading entry (a, b) of every window, as `_offsets`."""
    (sh, sw), (ho, wo) = stride, out_hw
    for a in range(window[0]):
        for b in range(window[1]):
            yield a, b, (slice(None), slice(a, a + sh * ho, sh), slice(b, b + sw * wo, sw))


def max_pool2d_columns(X, image, window, stride):
    """`max_pool2d` on the column layout: X (C·H·W, N) -> (C·Ho·Wo, N)."""
    (c, h, w), n = image, X.shape[1]
    x = X.reshape(c, h, w, n)
    out = (_out_size(h, window[0], stride[0], 0), _out_size(w, window[1], stride[1], 0))
    y = None
    for _, _, where in _image_offsets(window, stride, out):
        y = x[where].copy() if y is None else np.maximum(y, x[where], out=y)
    return y.reshape(-1, n)


def max_pool2d_columns_grad(G, X, Y, image, window, stride):
    """Gradient with respect to X of `Y = max_pool2d_columns(X, ...)`, from the saved output
    Y: each window's gradient goes to the entry equal to its maximum, the first in row-major
    order on ties (as PyTorch's CPU kernel), without searching the windows again.

    One pass per offset (a, b) inside a window over entry (a, b) of every window at once; a
    mask of the windows still unrouted keeps later ties from taking the gradient again.
    Overlapping windows accumulate; inputs no window reaches get zero.
    """
    (c, h, w), (kh, kw), (sh, sw), n = image, window, stride, X.shape[1]
    x = X.reshape(c, h, w, n)
    ho, wo = _out_size(h, kh, sh, 0), _out_size(w, kw, sw, 0)
    y, g = Y.reshape(c, ho, wo, n), G.reshape(c, ho, wo, n)
    dtype, overlap = np.result_type(G, X), sh < kh or sw < kw
    if (sh, sw) == (kh, kw) and (ho * kh, wo * kw) == (h, w):  # windows tile x: each entry once
        dx = np.empty((c, h, w, n), dtype=dtype)
    else:
        dx = np.zeros((c, h, w, n), dtype=dtype)
    unrouted, last = None, kh * kw - 1
    for k, (_, _, where) in enumerate(_image_offsets(window, stride, (ho, wo))):
        hit = x[where] == y
        if unrouted is not None:
            hit &= unrouted
        if overlap:
            dx[where] += g * hit
        else:
            np.multiply(g, hit, out=dx[where])
        if k < last:
            unrouted = ~hit if unrouted is None else np.logical_and(unrouted, ~hit, out=unrouted)
    return dx.reshape(-1, n)


def avg_pool2d_columns(X, image, window, stride):
    """`avg_pool2d` on the column layout: X (C·H·W, N) -> (C·Ho·Wo, N)."""
    (c, h, w), n = image, X.shape[1]
    x = X.reshape(c, h, w, n)
    out = (_out_size(h, window[0], stride[0], 0), _out_size(w, window[1], stride[1], 0))
    y = np.zeros((c, *out, n), dtype=np.result_type(X, np.float16))
    for _, _, where in _image_offsets(window, stride, out):
        y += x[where]
    return (y / (window[0] * window[1])).reshape(-1, n)


def avg_pool2d_columns_grad(G, image, window, stride):
    """Gradient with respect to X of `avg_pool2d_columns`, X of images `image`."""
    (c, h, w), n = image, G.shape[1]
    out = (_out_size(h, window[0], stride[0], 0), _out_size(w, window[1], stride[1], 0))
    share = G.reshape(c, *out, n) / (window[0] * window[1])
    dx = np.zeros((c, h, w, n), dtype=np.result_type(G, np.float16))
    for _, _, where in _image_offsets(window, stride, out):
        dx[where] += share
    return dx.reshape(-1, n)
