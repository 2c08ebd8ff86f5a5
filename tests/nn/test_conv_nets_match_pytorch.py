"""Compiled convolution nets against PyTorch's autograd, both dtypes: stacked convolutions
(the input gradient), overlapping, tiling and leftover max-pool windows, 1-D layers, and
integer inputs and kernels, whose windows tie, so that the max-pool gradient's routing (to
the first maximum in row-major order, from the saved pooled output) decides the kernels'
gradients."""

import numpy as np
import pytest

from symdl import nn

torch = pytest.importorskip("torch")
F = torch.nn.functional

TOLERANCE = {np.float32: {"rtol": 2e-4, "atol": 2e-5}, np.float64: {"rtol": 1e-9, "atol": 1e-11}}


def _net_2d():
    return nn.Sequential(
        nn.Conv2d(4, 3, padding="same"),  # linear: integer outputs, ties in the pool windows
        nn.MaxPool2d(3, stride=1),  # overlapping windows
        nn.Conv2d(3, 2, activation="relu"),
        nn.MaxPool2d(2),  # tiling, one column left over
        nn.Flatten(),
        nn.Dense(3),
        input_shape=(2, 7, 6),
    )


def _reference_2d(t, X):
    a = F.max_pool2d(F.conv2d(X, t["conv2d_1.K"], t["conv2d_1.b"], padding=1), 3, stride=1)
    a = F.max_pool2d(F.relu(F.conv2d(a, t["conv2d_2.K"], t["conv2d_2.b"])), 2)
    return a.flatten(1) @ t["dense_1.W"].T + t["dense_1.b"]


def _net_1d():
    return nn.Sequential(
        nn.Conv1d(3, 3, padding="same"),
        nn.MaxPool1d(2),  # length 9: the last entry in no window
        nn.Conv1d(2, 2, activation="relu"),
        nn.MaxPool1d(2, stride=1),
        nn.Flatten(),
        nn.Dense(3),
        input_shape=(2, 9),
    )


def _reference_1d(t, X):
    def conv(x, name, **options):  # symdl keeps a 1-D kernel as (F, C, 1, kl)
        k = t[f"{name}.K"]
        return F.conv1d(x, k.reshape(k.shape[0], k.shape[1], -1), t[f"{name}.b"], **options)

    a = F.max_pool1d(conv(X, "conv1d_1", padding=1), 2)
    a = F.max_pool1d(F.relu(conv(a, "conv1d_2")), 2, stride=1)
    return a.flatten(1) @ t["dense_1.W"].T + t["dense_1.b"]


NETS = {"2-D": (_net_2d, _reference_2d), "1-D": (_net_1d, _reference_1d)}


@pytest.mark.parametrize("integers", [False, True], ids=["real", "ties"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", NETS)
def test_conv_net_gradients_match_pytorch(kind, dtype, integers):
    build, reference = NETS[kind]
    model = build()
    rng = np.random.default_rng(7)
    params = model.init(3, dtype=dtype)
    X = rng.normal(size=(6, *model.input_shape)).astype(dtype)
    if integers:
        X = rng.integers(0, 3, size=X.shape).astype(dtype)
        for name in params:
            if name.endswith(".K"):
                params[name] = rng.integers(-1, 2, size=params[name].shape).astype(dtype)
    y = rng.integers(0, 3, size=len(X))
    loss, grads = model.compile().loss_and_grads(params, X, y)

    t = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    expected = F.cross_entropy(reference(t, torch.tensor(X)), torch.tensor(y))
    expected.backward()
    assert loss == pytest.approx(expected.item(), rel=TOLERANCE[dtype]["rtol"])
    for name, value in t.items():
        assert grads[name].dtype == dtype, name
        np.testing.assert_allclose(
            grads[name], value.grad.numpy(), err_msg=name, **TOLERANCE[dtype]
        )


def test_max_pool_gradient_reads_the_saved_pooled_output():
    """The generated step passes the pooling's output to its gradient: no second search."""
    source = _net_2d().compile().source
    pooled = [
        line.split(" = ")[0].strip()
        for line in source.splitlines()
        if "max_pool2d_columns(" in line
    ]
    grads = [line for line in source.splitlines() if "max_pool2d_columns_grad(" in line]
    assert len(pooled) == len(grads) == 2
    for name in pooled:
        assert any(f", {name}, " in line for line in grads), (name, grads)


def test_each_convolution_builds_its_window_matrix_once_per_step():
    """The forward convolution and its kernel gradient share one window matrix (im2col)."""
    for build in (_net_2d, _net_1d):
        source = build().compile().source
        assert source.count("conv2d_windows(") == 2, source
        assert source.count("conv2d_windowed(") == source.count("grad_kernel(") == 2, source
