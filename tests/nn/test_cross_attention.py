"""Cross-attention (queries from one sequence, keys and values from another) against PyTorch's
nn.MultiheadAttention(query, key, value) with the same weights, with and without masks, and
against finite differences through both inputs."""

from __future__ import annotations

import numpy as np
import pytest

from symdl import nn

from ..conftest import needs, optional
from .test_graph import finite_differences

torch = optional("torch")
needs_torch = needs(torch, "torch")

T_Q, T_K, D, N = 2, 3, 4, 3


def model(heads, e, mask=None, mask_input_shape=None, mask_input="boolean"):
    x, memory = nn.Input((T_Q, D)), nn.Input((T_K, e))
    inputs = [x, memory]
    if mask_input_shape is not None:
        inputs.append(nn.Input(mask_input_shape))
    layer = nn.CrossAttention(heads, name="a", mask=mask, mask_input=mask_input)
    return nn.Model(inputs, nn.Flatten()(layer(*inputs)), loss="mse")


def reference(params, X, memory, Y, heads, **masks):
    """PyTorch's loss and its gradients by symdl's parameter names."""
    e = memory.shape[2]
    mha = torch.nn.MultiheadAttention(D, heads, kdim=e, vdim=e, batch_first=True).double()
    t = {k: torch.tensor(v) for k, v in params.items()}
    with torch.no_grad():
        if e == D:
            mha.in_proj_weight.copy_(torch.cat([t[f"a.W_{k}"] for k in "qkv"]))
        else:
            for k in "qkv":
                getattr(mha, f"{k}_proj_weight").copy_(t[f"a.W_{k}"])
        mha.in_proj_bias.copy_(torch.cat([t[f"a.b_{k}"] for k in "qkv"]))
        mha.out_proj.weight.copy_(t["a.W_o"])
        mha.out_proj.bias.copy_(t["a.b_o"])
    m = torch.tensor(memory)
    out = mha(torch.tensor(X), m, m, need_weights=False, **masks)[0]
    loss = ((out.reshape(len(X), -1) - torch.tensor(Y)) ** 2).mean()
    loss.backward()
    if e == D:
        W = mha.in_proj_weight.grad.numpy()
        grads = {f"a.W_{k}": W[i * D : (i + 1) * D] for i, k in enumerate("qkv")}
    else:
        grads = {f"a.W_{k}": getattr(mha, f"{k}_proj_weight").grad.numpy() for k in "qkv"}
    b = mha.in_proj_bias.grad.numpy()
    grads |= {f"a.b_{k}": b[i * D : (i + 1) * D] for i, k in enumerate("qkv")}
    grads |= {"a.W_o": mha.out_proj.weight.grad.numpy(), "a.b_o": mha.out_proj.bias.grad.numpy()}
    return loss.item(), grads


def assert_matches(loss, grads, expected_loss, expected):
    assert loss == pytest.approx(expected_loss, rel=1e-12)
    assert set(grads) == set(expected)
    for name, g in expected.items():
        np.testing.assert_allclose(grads[name], g, rtol=1e-8, atol=1e-12, err_msg=name)


def data(rng, e, params):
    params = {k: v + 0.3 * rng.normal(size=v.shape) for k, v in params.items()}  # biases too
    X, memory = rng.normal(size=(N, T_Q, D)), rng.normal(size=(N, T_K, e))
    return params, X, memory, rng.normal(size=(N, T_Q * D))


@needs_torch
@pytest.mark.parametrize(("heads", "e"), [(1, 4), (2, 4), (2, 5)])
def test_cross_attention_matches_pytorch(heads, e):
    rng = np.random.default_rng(heads + e)
    m = model(heads, e)
    params, X, memory, Y = data(rng, e, m.init(0))
    assert params["a.W_k"].shape == (D, e)
    loss, grads = m.compile().loss_and_grads(params, (X, memory), Y)
    assert_matches(loss, grads, *reference(params, X, memory, Y, heads))


@needs_torch
def test_masked_cross_attention_matches_pytorch():
    rng = np.random.default_rng(7)
    fixed = np.array([[False, True, False], [True, False, False]])  # (T_q, T_k)
    m = model(2, 5, mask=fixed, mask_input_shape=T_K)
    params, X, memory, Y = data(rng, 5, m.init(0))
    padding = np.zeros((N, T_K), bool)
    padding[0, 2] = padding[2, 0] = True  # every query keeps a key
    loss, grads = m.compile().loss_and_grads(params, (X, memory, padding), Y)
    expected = reference(
        params,
        X,
        memory,
        Y,
        2,
        attn_mask=torch.tensor(fixed),
        key_padding_mask=torch.tensor(padding),
    )
    assert_matches(loss, grads, *expected)


def test_cross_attention_matches_finite_differences_through_both_inputs():
    """The keys and values come from a dense layer on the second input: its gradient passes
    through K and V (and bmm's adjoints by both factors)."""
    rng = np.random.default_rng(8)
    x, source = nn.Input((T_Q, D)), nn.Input((T_K, 3))
    memory = nn.TokenDense(5, "tanh")(source)
    pairs = nn.Input((T_Q, T_K))
    out = nn.CrossAttention(2, name="a")(nn.TokenDense(D)(x), memory, pairs)
    m = nn.Model([x, source, pairs], nn.Flatten()(out), loss="mse")
    params = {k: v + 0.3 * rng.normal(size=v.shape) for k, v in m.init(0).items()}
    mask = rng.random((2, T_Q, T_K)) < 0.4
    mask[..., 0] = False
    inputs = (rng.normal(size=(2, T_Q, D)), rng.normal(size=(2, T_K, 3)), mask)
    Y = rng.normal(size=(2, T_Q * D))
    compiled = m.compile()
    _, grads = compiled.loss_and_grads(params, inputs, Y)
    expected = finite_differences(compiled, params, inputs, Y)
    for name in params:
        np.testing.assert_allclose(grads[name], expected[name], rtol=1e-6, atol=1e-8, err_msg=name)


def test_cross_attention_errors_name_the_problem():
    with pytest.raises(nn.ShapeError, match="takes two sequences"):
        nn.Sequential(nn.CrossAttention(), input_shape=(T_Q, D))
    with pytest.raises(nn.ShapeError, match="mask input of shape \\(2,\\) for 2 queries and 3"):
        nn.CrossAttention()(nn.Input((T_Q, D)), nn.Input((T_K, D)), nn.Input(2))
    with pytest.raises(nn.ShapeError, match="4 features do not split into 3 heads"):
        nn.CrossAttention(3)(nn.Input((T_Q, D)), nn.Input((T_K, D)))
    with pytest.raises(nn.ShapeError, match="query 1 may attend to no key"):
        nn.CrossAttention(mask=np.array([[False] * 3, [True] * 3]))(
            nn.Input((T_Q, D)), nn.Input((T_K, D))
        )
