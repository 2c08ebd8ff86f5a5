"""Compiled matrix programs compute each elementwise part once per step function: mish's
tanh(softplus(Z)) is one array for the forward step and its derivative; a backward part equal
to a forward step reads that step. The gradients still match finite differences and PyTorch."""

import numpy as np
import pytest
import sympy
from sympy import MatrixSymbol, OneMatrix, Trace

import symdl as sd
from symdl.core.matrices import elementwise

n, N = sympy.symbols("n N", integer=True, positive=True)


def _calls(source: str) -> dict[str, int]:
    return {f: source.count(f"{f}(") for f in ("tanh", "logaddexp", "expit")}


def _central(f, x, h=1e-6):
    """Central differences of the scalar f at the array x, entry by entry."""
    grad = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        up, down = x.copy(), x.copy()
        up[idx] += h
        down[idx] -= h
        grad[idx] = (f(up) - f(down)) / (2 * h)
    return grad


def test_dense_mish_computes_tanh_of_softplus_once_and_its_gradient_is_right():
    model = sd.nn.Sequential(sd.nn.Dense(4, "mish"), sd.nn.Dense(1), loss="mse", input_shape=3)
    compiled = model.compile()
    # before: once inside mish's forward step, once more for its derivative
    assert _calls(compiled.source)["tanh"] == 1
    assert _calls(compiled.source)["logaddexp"] == 1
    params = model.init(0)
    rng = np.random.default_rng(1)
    X, y = rng.normal(size=(5, 3)), rng.normal(size=(5, 1))
    _, grads = compiled.loss_and_grads(params, X, y)
    for name, value in params.items():

        def loss_at(v, name=name):
            return compiled.loss({**params, name: v}, X, y)

        np.testing.assert_allclose(grads[name], _central(loss_at, value), rtol=1e-6, atol=1e-8)


def _chain():
    """1ᵀ(mish(Z) + tanh(softplus(Z))∘² + σ(Z))1 with Z = W X: softplus, tanh and σ of Z are
    forward steps, and mish'(Z) needs tanh(softplus(Z)) and σ(Z) again."""
    W, X = MatrixSymbol("W", n, n), MatrixSymbol("X", n, N)
    Z = W * X
    T = elementwise(sympy.tanh, elementwise(sd.softplus, Z))
    total = elementwise(sd.mish, Z) + sympy.HadamardPower(T, 2) + elementwise(sd.sigmoid, Z)
    return Trace(OneMatrix(1, n) * total * OneMatrix(N, 1)), W, X


def test_derive_of_a_matrix_expression_reuses_forward_steps_in_the_backward_ones():
    f, W, X = _chain()
    compiled = sd.derive(f, W).compile()
    assert _calls(compiled.source) == {"tanh": 1, "logaddexp": 1, "expit": 1}
    rng = np.random.default_rng(2)
    w, x = rng.normal(size=(3, 3)), rng.normal(size=(3, 4))
    value, grad = compiled(w, x)

    def value_at(v):
        return compiled(v, x)[0]

    np.testing.assert_allclose(grad, _central(value_at, w), rtol=1e-6, atol=1e-8)


def test_a_deeper_chain_of_elementwise_functions_agrees_with_pytorch():
    torch = pytest.importorskip("torch")
    W, X = MatrixSymbol("W", n, n), MatrixSymbol("X", n, N)
    A = elementwise(sd.mish, W * X)
    B = elementwise(sympy.tanh, elementwise(sd.softplus, A))
    f = Trace(OneMatrix(1, n) * elementwise(sd.sigmoid, B) * OneMatrix(N, 1))
    compiled = sd.derive(f, W).compile()
    assert _calls(compiled.source)["tanh"] == 2  # tanh(softplus(W X)) and tanh(softplus(A))
    rng = np.random.default_rng(3)
    w, x = rng.normal(size=(3, 3)), rng.normal(size=(3, 5))
    value, grad = compiled(w, x)
    wt = torch.tensor(w, requires_grad=True)
    a = torch.nn.functional.mish(wt @ torch.tensor(x))
    out = torch.sigmoid(torch.tanh(torch.nn.functional.softplus(a))).sum()
    out.backward()
    np.testing.assert_allclose(value, out.item(), rtol=1e-12)
    np.testing.assert_allclose(grad, wt.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_scalar_mish_shares_tanh_of_softplus_with_its_derivative():
    x = sympy.Symbol("x")
    compiled = sd.derive(sd.mish(x), x).compile()
    assert _calls(compiled.source)["tanh"] == 1
    value, grad = compiled(0.7)
    torch = pytest.importorskip("torch")
    t = torch.tensor(0.7, dtype=torch.float64, requires_grad=True)
    y = torch.nn.functional.mish(t)
    y.backward()
    assert value == pytest.approx(y.item(), rel=1e-14)
    assert grad == pytest.approx(t.grad.item(), rel=1e-14)


def test_mish_stays_finite_for_large_logits_after_the_split():
    f, W, X = _chain()
    compiled = sd.derive(f, W).compile()
    w = np.array([[1000.0, 0, 0], [0, -1000.0, 0], [0, 0, 1.0]])
    value, grad = compiled(w, np.ones((3, 2)))
    assert np.isfinite(value) and np.all(np.isfinite(grad))
