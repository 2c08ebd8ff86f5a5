"""The kernels of symdl.ops.runtime for JAX: the same names, arguments and conventions, built
on jax.lax so they trace under jit (no in-place updates). A transposed kernel (an input or
kernel gradient, an average-pooling gradient) is the exact transpose of the forward map
(jax.linear_transpose), not a derivative; max pooling routes to the first maximum as NumPy does.
"""

from __future__ import annotations

import sys

import jax
import jax.numpy as jnp
from jax import lax

from symdl.compile.column_layout import ColumnLayout
from symdl.compile.spectral_kernels import spectral_kernels


def heaviside(x, at_zero):
    """The step: 1 above 0, `at_zero` at 0, else 0, in the dtype of x."""
    x = jnp.asarray(x)
    if at_zero == 0:  # ReLU' as a comparison
        return (x > 0).astype(x.dtype)
    return jnp.where(x > 0, 1, jnp.where(x == 0, at_zero, 0)).astype(x.dtype)


def row_dots(a, b):
    """(a ∘ b) 1, the row sums of the entrywise product (symdl.ops.runtime.row_dots)."""
    return jnp.sum(a * b, axis=1, keepdims=True)


def mean_all(Z):
    """The mean of every entry (symdl.ops.runtime.mean_all)."""
    return jnp.mean(Z)


def logsumexp(Z, axis: int = 0):
    """log Σ exp(Z) along `axis` (kept), stable for logits of ±1000."""
    return jax.scipy.special.logsumexp(Z, axis=axis, keepdims=True)


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def conv2d(x, k, stride=(1, 1), padding=(0, 0)):
    (ph, pw) = _pair(padding)
    return lax.conv_general_dilated(
        x, k, _pair(stride), [(ph, ph), (pw, pw)], dimension_numbers=("NCHW", "OIHW", "NCHW")
    )


def conv2d_grad_input(g, k, input_shape, stride=(1, 1), padding=(0, 0)):
    like = jax.ShapeDtypeStruct(tuple(input_shape), g.dtype)
    return jax.linear_transpose(lambda x: conv2d(x, k, stride, padding), like)(g)[0]


def conv2d_grad_kernel(g, x, kernel_shape, stride=(1, 1), padding=(0, 0)):
    like = jax.ShapeDtypeStruct(tuple(kernel_shape), g.dtype)
    return jax.linear_transpose(lambda k: conv2d(x, k, stride, padding), like)(g)[0]


def _window(size, stride):
    size = _pair(size)
    return (1, 1, *size), (1, 1, *(size if stride is None else _pair(stride)))


def max_pool2d(x, size, stride=None):
    dims, strides = _window(size, stride)
    return lax.reduce_window(x, -jnp.inf, lax.max, dims, strides, "VALID")


def max_pool2d_grad(g, x, size, stride=None):
    # ties: the first maximum of a window in row-major order takes the gradient (as NumPy)
    (_, _, kh, kw), (_, _, sh, sw) = _window(size, stride)
    y = max_pool2d(x, size, stride)
    ho, wo = g.shape[2:]
    dx, taken = jnp.zeros(x.shape, g.dtype), jnp.zeros(g.shape, bool)
    for a in range(kh):
        for b in range(kw):
            where = (slice(None), slice(None), slice(a, a + sh * ho, sh), slice(b, b + sw * wo, sw))
            first = (x[where] == y) & ~taken
            dx = dx.at[where].add(jnp.where(first, g, 0))
            taken = taken | first
    return dx


def avg_pool2d(x, size, stride=None):
    dims, strides = _window(size, stride)
    return lax.reduce_window(x, 0.0, lax.add, dims, strides, "VALID") / (dims[2] * dims[3])


def avg_pool2d_grad(g, input_shape, size, stride=None):
    like = jax.ShapeDtypeStruct(tuple(input_shape), g.dtype)
    return jax.linear_transpose(lambda x: avg_pool2d(x, size, stride), like)(g)[0]


# symdl/ops/linalg.py's spectral kernels, defined once for every array library
globals().update(spectral_kernels(jnp, bool))


# the column layout (C·H·W, N) that symdl's generated code uses, on the image kernels above
globals().update(ColumnLayout(sys.modules[__name__], lambda x, axes: x.transpose(axes)).exported())
