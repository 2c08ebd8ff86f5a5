"""The kernels of symdl.ops.runtime for PyTorch: the same names, arguments and conventions,
on torch's convolution and pooling (their transposes from torch.nn.grad); max pooling routes
to the first maximum of a window as NumPy does (torch's pooling indices)."""

from __future__ import annotations

import sys
import weakref

import torch
import torch.nn.functional as F

from symdl.compile.column_layout import ColumnLayout
from symdl.compile.spectral_kernels import spectral_kernels


def heaviside(x, at_zero):
    """The step: 1 above 0, `at_zero` at 0, else 0, in the dtype of x."""
    if at_zero == 0:
        return (x > 0).to(x.dtype)
    return torch.where(x > 0, 1.0, torch.where(x == 0, float(at_zero), 0.0)).to(x.dtype)


def row_dots(a, b):
    """(a ∘ b) 1, the row sums of the entrywise product (symdl.ops.runtime.row_dots)."""
    return (a * b).sum(dim=1, keepdim=True)


def mean_all(Z):
    """The mean of every entry (symdl.ops.runtime.mean_all)."""
    return Z.mean()


def logsumexp(Z, axis: int = 0):
    """log Σ exp(Z) along `axis` (kept), stable for logits of ±1000."""
    return torch.logsumexp(Z, dim=axis, keepdim=True)


def conv2d(x, k, stride=(1, 1), padding=(0, 0)):
    return F.conv2d(x, k, stride=stride, padding=padding)


def conv2d_grad_input(g, k, input_shape, stride=(1, 1), padding=(0, 0)):
    return torch.nn.grad.conv2d_input(tuple(input_shape), k, g, stride=stride, padding=padding)


def conv2d_grad_kernel(g, x, kernel_shape, stride=(1, 1), padding=(0, 0)):
    return torch.nn.grad.conv2d_weight(x, tuple(kernel_shape), g, stride=stride, padding=padding)


def _window(size, stride):
    size = (size, size) if isinstance(size, int) else tuple(size)
    stride = size if stride is None else stride
    return size, ((stride, stride) if isinstance(stride, int) else tuple(stride))


def _offsets(size, stride, out_hw):
    (sh, sw), (ho, wo) = stride, out_hw
    for a in range(size[0]):
        for b in range(size[1]):
            yield (slice(None), slice(None), slice(a, a + sh * ho, sh), slice(b, b + sw * wo, sw))


def _channels_last(x):
    # torch's CPU max pooling runs several times faster on channels-last memory than on NCHW
    # (or on the strided view of a column batch)
    return x.contiguous(memory_format=torch.channels_last)


# the last max pooling's indices, so that its gradient (called on the same input, unchanged)
# does not pool again: (weak reference to the input's base, its view and version, window,
# indices)
_last_pool: list = [None]


def _pool_key(x, size, stride):
    base = x if x._base is None else x._base
    return base, (x.shape, x.stride(), x.storage_offset(), x._version, size, stride)


def max_pool2d(x, size, stride=None):
    size, stride = _window(size, stride)
    y, where = F.max_pool2d(_channels_last(x), size, stride, return_indices=True)
    base, key = _pool_key(x, size, stride)
    _last_pool[0] = (weakref.ref(base), key, where)
    return y


def _indices(x, size, stride):
    base, key = _pool_key(x, size, stride)
    last = _last_pool[0]
    if last is not None and last[0]() is base and last[1] == key:
        return last[2]
    return F.max_pool2d(_channels_last(x), size, stride, return_indices=True)[1]


def max_pool2d_grad(g, x, size, stride=None):
    # torch's indices are of the first maximum in row-major order, NumPy's convention; a
    # scatter-add sums what overlapping windows route to one entry
    size, stride = _window(size, stride)
    where = _indices(x, size, stride)
    dx = torch.zeros(x.shape, dtype=g.dtype).flatten(2)
    return dx.scatter_add_(2, where.flatten(2), g.flatten(2)).reshape(x.shape)


def avg_pool2d(x, size, stride=None):
    size, stride = _window(size, stride)
    return F.avg_pool2d(x, size, stride)


def avg_pool2d_grad(g, input_shape, size, stride=None):
    size, stride = _window(size, stride)
    share = g / (size[0] * size[1])
    dx = torch.zeros(tuple(input_shape), dtype=g.dtype)
    for where in _offsets(size, stride, g.shape[2:]):
        dx[where] += share
    return dx


# symdl/ops/linalg.py's spectral kernels, defined once for every array library
globals().update(spectral_kernels(torch, torch.bool))


# the column layout (C·H·W, N) that symdl's generated code uses, on the image kernels above
globals().update(ColumnLayout(sys.modules[__name__], lambda x, axes: x.permute(*axes)).exported())
