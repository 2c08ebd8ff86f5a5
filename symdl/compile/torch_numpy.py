"""NumPy's functions, as generated code calls them, on PyTorch tensors: torch's function of
the same name, with Python numbers made tensors, and the few whose names or arguments differ."""

from __future__ import annotations

import contextlib
import contextvars
import functools

import torch

nan, inf, pi, e = torch.nan, torch.inf, torch.pi, torch.e
linalg = torch.linalg

# the dtype of arrays that generated code makes from shapes alone (ones, zeros, eye)
_DTYPE: contextvars.ContextVar = contextvars.ContextVar("symdl_torch_dtype", default=None)


@contextlib.contextmanager
def floats(dtype):
    """Within: ones, zeros and eye are made in `dtype` (the export's), not torch's default."""
    token = _DTYPE.set(dtype)
    try:
        yield
    finally:
        _DTYPE.reset(token)


def _dtype():
    return _DTYPE.get() or torch.get_default_dtype()


def _tensor(a):
    if isinstance(a, bool):
        return torch.as_tensor(a)
    # float64 0-d: exact, and a 0-d tensor never widens a float32 array it meets
    return torch.as_tensor(a, dtype=torch.float64) if isinstance(a, int | float) else a


def numpy_like(function):
    """`function` taking Python numbers where NumPy would."""

    @functools.wraps(function)
    def call(*args, **kwargs):
        return function(*map(_tensor, args), **kwargs)

    return call


def __getattr__(name: str):
    function = getattr(torch, name, None)
    if not callable(function):
        raise AttributeError(f"torch has no function {name} for numpy.{name}")
    # kept, so that generated code's next call finds it without wrapping it again
    globals()[name] = wrapped = numpy_like(function)
    return wrapped


power = numpy_like(torch.pow)


def repeat(a, repeats, axis):
    return torch.repeat_interleave(a, repeats, dim=axis)


def broadcast_arrays(*arrays):
    return torch.broadcast_tensors(*map(_tensor, arrays))


def broadcast_to(a, shape):
    return torch.broadcast_to(_tensor(a), tuple(shape))


def stack(arrays, axis=0):
    return torch.stack(list(arrays), dim=axis)


def select(condlist, choicelist, default=0):
    result = _tensor(default)
    for condition, choice in reversed(list(zip(condlist, choicelist, strict=True))):
        result = torch.where(_tensor(condition), _tensor(choice), result)
    return result


def ones(shape):
    return torch.ones(tuple(shape), dtype=_dtype())


def zeros(shape):
    return torch.zeros(tuple(shape), dtype=_dtype())


def eye(n, m=None, k=0):
    """numpy.eye: ones on the k-th diagonal of an n x m array."""
    m = n if m is None else m
    return (torch.arange(m)[None, :] - torch.arange(n)[:, None] == k).to(_dtype())


def pad(a, pad_width):
    """numpy.pad with zeros: `pad_width` is ((before, after), ...) per axis, first axis first;
    torch's pad takes the pairs last axis first, flattened."""
    flat = [int(n) for pair in reversed(tuple(pad_width)) for n in pair]
    return torch.nn.functional.pad(_tensor(a), flat)
