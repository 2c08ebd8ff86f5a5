"""Attention layers against PyTorch (nn.MultiheadAttention, nn.Embedding, a transformer
encoder layer, the same weights) and finite differences."""

from __future__ import annotations

import numpy as np
import pytest

from symdl import nn

from ..conftest import needs, optional

torch = optional("torch")
needs_torch = needs(torch, "torch")


def attention_reference(params, name, X, heads, causal):
    T, d = X.shape[1:]
    mha = torch.nn.MultiheadAttention(d, heads, batch_first=True).double()
    with torch.no_grad():
        mha.in_proj_weight.copy_(
            torch.tensor(np.concatenate([params[f"{name}.W_{k}"] for k in "qkv"]))
        )
        mha.in_proj_bias.copy_(
            torch.tensor(np.concatenate([params[f"{name}.b_{k}"] for k in "qkv"]))
        )
        mha.out_proj.weight.copy_(torch.tensor(params[f"{name}.W_o"]))
        mha.out_proj.bias.copy_(torch.tensor(params[f"{name}.b_o"]))
    mask = torch.triu(torch.ones(T, T, dtype=torch.bool), 1) if causal else None
    x = torch.tensor(X)
    return mha, mha(x, x, x, attn_mask=mask, need_weights=False)[0]


@needs_torch
@pytest.mark.parametrize(("heads", "causal"), [(1, False), (2, False), (2, True)])
def test_self_attention_matches_pytorch(heads, causal):
    rng = np.random.default_rng(0)
    T, d, N = 3, 4, 5
    model = nn.Sequential(
        nn.SelfAttention(heads, causal), nn.Flatten(), loss="mse", input_shape=(T, d)
    )
    params = model.init(0)
    params = {k: v + rng.normal(size=v.shape) * 0.3 for k, v in params.items()}  # biases too
    X, Y = rng.normal(size=(N, T, d)), rng.normal(size=(N, T * d))
    loss, grads = model.compile().loss_and_grads(params, X, Y)
    mha, out = attention_reference(params, "attention_1", X, heads, causal)
    reference = ((out.reshape(N, -1) - torch.tensor(Y)) ** 2).mean()
    reference.backward()
    assert loss == pytest.approx(reference.item(), rel=1e-12)
    expected_in = mha.in_proj_weight.grad.numpy()
    mine = np.concatenate([grads[f"attention_1.W_{k}"] for k in "qkv"])
    np.testing.assert_allclose(mine, expected_in, rtol=1e-8, atol=1e-12)
    mine = np.concatenate([grads[f"attention_1.b_{k}"] for k in "qkv"])
    np.testing.assert_allclose(mine, mha.in_proj_bias.grad.numpy(), rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(
        grads["attention_1.W_o"], mha.out_proj.weight.grad.numpy(), rtol=1e-8
    )
    np.testing.assert_allclose(grads["attention_1.b_o"], mha.out_proj.bias.grad.numpy(), rtol=1e-8)


@needs_torch
def test_embedding_matches_pytorch():
    rng = np.random.default_rng(1)
    V, T, d, N = 5, 3, 2, 4
    model = nn.Sequential(nn.Embedding(V, d), nn.Flatten(), loss="mse", input_shape=(T, V))
    params = model.init(0)
    tokens, Y = rng.integers(0, V, size=(N, T)), rng.normal(size=(N, T * d))
    loss, grads = model.compile().loss_and_grads(params, nn.one_hot(tokens, V), Y)
    embedding = torch.nn.Embedding(V, d).double()
    with torch.no_grad():
        embedding.weight.copy_(torch.tensor(params["embedding_1.E"].T))
    out = embedding(torch.tensor(tokens)).reshape(N, -1)
    reference = ((out - torch.tensor(Y)) ** 2).mean()
    reference.backward()
    assert loss == pytest.approx(reference.item(), rel=1e-12)
    np.testing.assert_allclose(grads["embedding_1.E"], embedding.weight.grad.numpy().T, rtol=1e-10)


@needs_torch
def test_a_transformer_block_matches_pytorchs_encoder_layer():
    rng = np.random.default_rng(2)
    T, d, hidden, N = 3, 4, 6, 3
    model = nn.Sequential(
        *nn.transformer_block(d, 2, hidden), nn.Flatten(), loss="mse", input_shape=(T, d)
    )
    params = {k: v + 0.1 * rng.normal(size=v.shape) for k, v in model.init(0).items()}
    X, Y = rng.normal(size=(N, T, d)), rng.normal(size=(N, T * d))
    loss, grads = model.compile().loss_and_grads(params, X, Y)
    layer = torch.nn.TransformerEncoderLayer(d, 2, hidden, dropout=0.0, batch_first=True).double()
    attention, norm1, dense1, dense2, norm2 = (
        "attention_1",
        "token_norm_1",
        "token_dense_1",
        "token_dense_2",
        "token_norm_2",
    )
    with torch.no_grad():
        sa = layer.self_attn
        sa.in_proj_weight.copy_(
            torch.tensor(np.concatenate([params[f"{attention}.W_{k}"] for k in "qkv"]))
        )
        sa.in_proj_bias.copy_(
            torch.tensor(np.concatenate([params[f"{attention}.b_{k}"] for k in "qkv"]))
        )
        sa.out_proj.weight.copy_(torch.tensor(params[f"{attention}.W_o"]))
        sa.out_proj.bias.copy_(torch.tensor(params[f"{attention}.b_o"]))
        for lin, mine in ((layer.linear1, dense1), (layer.linear2, dense2)):
            lin.weight.copy_(torch.tensor(params[f"{mine}.W"]))
            lin.bias.copy_(torch.tensor(params[f"{mine}.b"]))
        for norm, mine in ((layer.norm1, norm1), (layer.norm2, norm2)):
            norm.weight.copy_(torch.tensor(params[f"{mine}.gamma"]))
            norm.bias.copy_(torch.tensor(params[f"{mine}.beta"]))
    layer.train()
    out = layer(torch.tensor(X)).reshape(N, -1)
    reference = ((out - torch.tensor(Y)) ** 2).mean()
    reference.backward()
    assert loss == pytest.approx(reference.item(), rel=1e-10)
    sa = layer.self_attn
    W_in, b_in = sa.in_proj_weight.grad.numpy(), sa.in_proj_bias.grad.numpy()
    expected = {f"{attention}.W_{k}": W_in[i * d : (i + 1) * d] for i, k in enumerate("qkv")}
    expected |= {f"{attention}.b_{k}": b_in[i * d : (i + 1) * d] for i, k in enumerate("qkv")}
    expected |= {
        f"{attention}.W_o": sa.out_proj.weight.grad,
        f"{attention}.b_o": sa.out_proj.bias.grad,
    }
    for lin, mine in ((layer.linear1, dense1), (layer.linear2, dense2)):
        expected |= {f"{mine}.W": lin.weight.grad, f"{mine}.b": lin.bias.grad}
    for norm, mine in ((layer.norm1, norm1), (layer.norm2, norm2)):
        expected |= {f"{mine}.gamma": norm.weight.grad, f"{mine}.beta": norm.bias.grad}
    assert set(expected) == set(grads)
    for name, g in expected.items():
        np.testing.assert_allclose(grads[name], np.asarray(g), rtol=1e-7, atol=1e-12, err_msg=name)


def test_positional_encoding_is_a_constant_shift():
    model = nn.Sequential(
        nn.PositionalEncoding(), nn.Flatten(), nn.Dense(12), loss="mse", input_shape=(3, 4)
    )
    compiled = model.compile()
    X = np.zeros((2, 3, 4))
    identity = {"dense_1.W": np.eye(12), "dense_1.b": np.zeros(12)}
    loss = compiled.loss(identity, X, np.zeros((2, 12)))
    assert loss == pytest.approx(np.mean(nn.attention.sinusoidal(3, 4) ** 2))


@needs_torch
def test_a_sequence_to_sequence_transformer_matches_pytorch():
    """scripts/transformer_sort.py's graph at small sizes (embedding, positions, a block, a
    dense layer on every token, one cross-entropy per position), every gradient."""
    rng = np.random.default_rng(3)
    T, V, d, hidden, N = 3, 4, 4, 6, 5
    x = nn.Input((T, V))
    h = nn.PositionalEncoding()(nn.Embedding(V, d)(x))
    for layer in nn.transformer_block(d, 2, hidden):
        h = layer(h)
    logits = nn.TokenDense(V)(h)
    model = nn.Model(x, [nn.Token(t)(logits) for t in range(T)], loss="cross_entropy")
    params = {k: v + 0.2 * rng.normal(size=v.shape) for k, v in model.init(0).items()}
    tokens = rng.integers(0, V, size=(N, T))
    targets = np.sort(tokens, axis=1)
    loss, grads = model.compile().loss_and_grads(params, nn.one_hot(tokens, V), targets)

    embedding = torch.nn.Embedding(V, d).double()
    block = torch.nn.TransformerEncoderLayer(d, 2, hidden, dropout=0.0, batch_first=True)
    block, out = block.double(), torch.nn.Linear(d, V).double()
    t = {k: torch.tensor(v) for k, v in params.items()}
    with torch.no_grad():
        embedding.weight.copy_(t["embedding_1.E"].T)
        sa = block.self_attn
        sa.in_proj_weight.copy_(torch.cat([t[f"attention_1.W_{k}"] for k in "qkv"]))
        sa.in_proj_bias.copy_(torch.cat([t[f"attention_1.b_{k}"] for k in "qkv"]))
        sa.out_proj.weight.copy_(t["attention_1.W_o"])
        sa.out_proj.bias.copy_(t["attention_1.b_o"])
        linears = {"token_dense_1": block.linear1, "token_dense_2": block.linear2}
        linears["token_dense_3"] = out
        for mine, lin in linears.items():
            lin.weight.copy_(t[f"{mine}.W"])
            lin.bias.copy_(t[f"{mine}.b"])
        norms = {"token_norm_1": block.norm1, "token_norm_2": block.norm2}
        for mine, norm in norms.items():
            norm.weight.copy_(t[f"{mine}.gamma"])
            norm.bias.copy_(t[f"{mine}.beta"])
    positions = torch.tensor(nn.attention.sinusoidal(T, d))
    z = out(block(embedding(torch.tensor(tokens)) + positions))
    y = torch.tensor(targets)
    reference = sum(torch.nn.functional.cross_entropy(z[:, p], y[:, p]) for p in range(T))
    reference.backward()
    assert loss == pytest.approx(reference.item(), rel=1e-10)
    W_in, b_in = sa.in_proj_weight.grad.numpy(), sa.in_proj_bias.grad.numpy()
    expected = {"embedding_1.E": embedding.weight.grad.numpy().T}
    expected |= {f"attention_1.W_{k}": W_in[i * d : (i + 1) * d] for i, k in enumerate("qkv")}
    expected |= {f"attention_1.b_{k}": b_in[i * d : (i + 1) * d] for i, k in enumerate("qkv")}
    expected |= {
        "attention_1.W_o": sa.out_proj.weight.grad,
        "attention_1.b_o": sa.out_proj.bias.grad,
    }
    for mine, lin in linears.items():
        expected |= {f"{mine}.W": lin.weight.grad, f"{mine}.b": lin.bias.grad}
    for mine, norm in norms.items():
        expected |= {f"{mine}.gamma": norm.weight.grad, f"{mine}.beta": norm.bias.grad}
    assert set(expected) == set(grads)
    for name, g in expected.items():
        np.testing.assert_allclose(grads[name], np.asarray(g), rtol=1e-7, atol=1e-12, err_msg=name)
