"""Masked self-attention (fixed boolean and additive masks, per-example key-padding and
(query, key) masks fed as a graph model's second input) against PyTorch's
nn.MultiheadAttention with attn_mask / key_padding_mask, the same weights, and against finite
differences."""

from __future__ import annotations

import numpy as np
import pytest

from symdl import nn
from symdl.nn.layers import ShapeError

from ..conftest import needs, optional
from .test_graph import finite_differences

torch = optional("torch")
needs_torch = needs(torch, "torch")

T, D, N = 3, 4, 3


def reference(params, X, Y, heads, attn_mask=None, key_padding_mask=None):
    """PyTorch's loss and its gradients by symdl's parameter names."""
    mha = torch.nn.MultiheadAttention(D, heads, batch_first=True).double()
    with torch.no_grad():
        mha.in_proj_weight.copy_(torch.tensor(np.concatenate([params[f"a.W_{k}"] for k in "qkv"])))
        mha.in_proj_bias.copy_(torch.tensor(np.concatenate([params[f"a.b_{k}"] for k in "qkv"])))
        mha.out_proj.weight.copy_(torch.tensor(params["a.W_o"]))
        mha.out_proj.bias.copy_(torch.tensor(params["a.b_o"]))
    x = torch.tensor(X)
    out = mha(x, x, x, attn_mask=attn_mask, key_padding_mask=key_padding_mask, need_weights=False)[
        0
    ]
    loss = ((out.reshape(len(X), -1) - torch.tensor(Y)) ** 2).mean()
    loss.backward()
    W_in, b_in = mha.in_proj_weight.grad.numpy(), mha.in_proj_bias.grad.numpy()
    grads = {f"a.W_{k}": W_in[i * D : (i + 1) * D] for i, k in enumerate("qkv")}
    grads |= {f"a.b_{k}": b_in[i * D : (i + 1) * D] for i, k in enumerate("qkv")}
    grads |= {"a.W_o": mha.out_proj.weight.grad.numpy(), "a.b_o": mha.out_proj.bias.grad.numpy()}
    return loss.item(), grads


def random_params(model, rng):
    return {k: v + 0.3 * rng.normal(size=v.shape) for k, v in model.init(0).items()}


def assert_matches(loss, grads, expected_loss, expected):
    assert loss == pytest.approx(expected_loss, rel=1e-12)
    for name, g in expected.items():
        np.testing.assert_allclose(grads[name], g, rtol=1e-8, atol=1e-12, err_msg=name)


def one_key_per_row(mask):
    """A boolean (T, T) mask with each query's diagonal key kept."""
    mask = mask.copy()
    np.fill_diagonal(mask, False)
    return mask


@needs_torch
@pytest.mark.parametrize("heads", [1, 2])
def test_fixed_boolean_mask_matches_pytorch(heads):
    rng = np.random.default_rng(heads)
    mask = one_key_per_row(rng.random((T, T)) < 0.5)
    layer = nn.SelfAttention(heads, name="a", mask=mask)
    model = nn.Sequential(layer, nn.Flatten(), loss="mse", input_shape=(T, D))
    params = random_params(model, rng)
    X, Y = rng.normal(size=(N, T, D)), rng.normal(size=(N, T * D))
    loss, grads = model.compile().loss_and_grads(params, X, Y)
    assert_matches(loss, grads, *reference(params, X, Y, heads, attn_mask=torch.tensor(mask)))


@needs_torch
def test_fixed_additive_mask_with_causal_matches_pytorch():
    rng = np.random.default_rng(3)
    mask = rng.normal(size=(T, T))
    mask[0, 1] = mask[2, 0] = -np.inf
    layer = nn.SelfAttention(2, causal=True, name="a", mask=mask)
    model = nn.Sequential(layer, nn.Flatten(), loss="mse", input_shape=(T, D))
    params = random_params(model, rng)
    X, Y = rng.normal(size=(N, T, D)), rng.normal(size=(N, T * D))
    loss, grads = model.compile().loss_and_grads(params, X, Y)
    combined = mask.copy()
    combined[np.triu_indices(T, 1)] = -np.inf
    assert_matches(loss, grads, *reference(params, X, Y, 2, attn_mask=torch.tensor(combined)))


def masked_model(heads, mask_shape, mask_input="boolean"):
    x, m = nn.Input((T, D)), nn.Input(mask_shape)
    out = nn.Flatten()(nn.SelfAttention(heads, name="a", mask_input=mask_input)(x, m))
    return nn.Model([x, m], out, loss="mse")


def padding(rng):
    """A key-padding mask (N, T): each sequence's last keys padded, at least one kept."""
    lengths = rng.integers(1, T + 1, size=N)
    return np.arange(T)[None, :] >= lengths[:, None]


@needs_torch
@pytest.mark.parametrize("heads", [1, 2])
def test_key_padding_mask_input_matches_pytorch(heads):
    rng = np.random.default_rng(10 + heads)
    model = masked_model(heads, T)
    params = random_params(model, rng)
    X, Y, pad = rng.normal(size=(N, T, D)), rng.normal(size=(N, T * D)), padding(rng)
    assert pad.any()
    loss, grads = model.compile().loss_and_grads(params, (X, pad), Y)
    expected = reference(params, X, Y, heads, key_padding_mask=torch.tensor(pad))
    assert_matches(loss, grads, *expected)


@needs_torch
def test_per_example_mask_input_matches_pytorchs_3d_attn_mask():
    rng = np.random.default_rng(20)
    heads = 2
    model = masked_model(heads, (T, T))
    params = random_params(model, rng)
    masks = np.stack([one_key_per_row(rng.random((T, T)) < 0.5) for _ in range(N)])
    X, Y = rng.normal(size=(N, T, D)), rng.normal(size=(N, T * D))
    loss, grads = model.compile().loss_and_grads(params, (X, masks), Y)
    per_head = torch.tensor(np.repeat(masks, heads, axis=0))  # (N * heads, T, T), n-major
    assert_matches(loss, grads, *reference(params, X, Y, heads, attn_mask=per_head))


@needs_torch
def test_additive_mask_input_matches_pytorchs_float_key_padding_mask():
    rng = np.random.default_rng(30)
    model = masked_model(2, T, mask_input="additive")
    params = random_params(model, rng)
    X, Y = rng.normal(size=(N, T, D)), rng.normal(size=(N, T * D))
    additive = np.where(padding(rng), -np.inf, rng.normal(size=(N, T)))
    loss, grads = model.compile().loss_and_grads(params, (X, additive), Y)
    expected = reference(params, X, Y, 2, key_padding_mask=torch.tensor(additive))
    assert_matches(loss, grads, *expected)


@pytest.mark.parametrize("mask_shape", [T, (T, T)])
def test_masked_attention_matches_finite_differences(mask_shape):
    rng = np.random.default_rng(40)
    model = masked_model(2, mask_shape)
    params = random_params(model, rng)
    X, Y = rng.normal(size=(2, T, D)), rng.normal(size=(2, T * D))
    shape = (2, *np.atleast_1d(mask_shape))
    mask = rng.random(shape) < 0.4
    mask[..., 0] = False  # every query keeps key 0
    compiled = model.compile()
    _, grads = compiled.loss_and_grads(params, (X, mask), Y)
    expected = finite_differences(compiled, params, (X, mask), Y)
    for name in params:
        np.testing.assert_allclose(grads[name], expected[name], rtol=1e-6, atol=1e-8, err_msg=name)


def test_a_padded_key_changes_no_other_token():
    """The outputs of the tokens that do not attend to a padded key are the same whatever the
    padded token holds."""
    rng = np.random.default_rng(41)
    model = masked_model(2, T)
    compiled, params = model.compile(), random_params(model, rng)
    X, pad = rng.normal(size=(N, T, D)), np.zeros((N, T), bool)
    pad[:, -1] = True
    changed = X.copy()
    changed[:, -1] += rng.normal(size=(N, D)) * 5
    before = compiled.predict(params, (X, pad)).reshape(N, T, D)
    after = compiled.predict(params, (changed, pad)).reshape(N, T, D)
    np.testing.assert_allclose(after[:, :-1], before[:, :-1], rtol=1e-13, atol=1e-14)
    assert not np.allclose(after[:, -1], before[:, -1])  # the padded token is a query still


def test_mask_errors_name_the_problem():
    with pytest.raises(ShapeError, match="query 1 may attend to no key"):
        mask = np.zeros((T, T), dtype=bool)
        mask[1] = True
        nn.Sequential(nn.SelfAttention(mask=mask), nn.Flatten(), input_shape=(T, D))
    with pytest.raises(ShapeError, match=r"mask of shape \(2, 2\), expected \(3, 3\)"):
        nn.Sequential(
            nn.SelfAttention(mask=np.zeros((2, 2), bool)), nn.Flatten(), input_shape=(T, D)
        )
    with pytest.raises(TypeError, match="ambiguous"):
        nn.Sequential(
            nn.SelfAttention(mask=np.zeros((T, T), int)), nn.Flatten(), input_shape=(T, D)
        )
    with pytest.raises(ShapeError, match=r"a mask input of shape \(2,\) for 3 tokens"):
        nn.SelfAttention()(nn.Input((T, D)), nn.Input(2))
    with pytest.raises(ValueError, match="mask_input is 'boolean' or 'additive'"):
        nn.SelfAttention(mask_input="bool")
