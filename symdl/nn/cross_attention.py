r"""Cross-attention: queries from one sequence attend to the keys and values of another (an
encoder's output read by a decoder), as PyTorch's `nn.MultiheadAttention(query, key, value)`
with key = value, written as symdl.nn.attention writes self-attention."""

from __future__ import annotations

import numpy as np

from symdl.nn.attention import (
    _attend,
    _fixed_mask,
    _fixed_mask_value,
    _projection_symbols,
    _set_masks,
    _token_columns,
)
from symdl.nn.layers import Layer, ShapeError
from symdl.ops import untokens


class CrossAttention(Layer):
    r"""Multi-head scaled dot-product attention of a query sequence over a second sequence, its
    keys and values: `nn.CrossAttention(heads)(x, memory)` with x of shape (T_q, d) and memory
    of shape (T_k, e). Per head $h$ of size $d_k = d/H$: $Q = W_q \tilde{X} + b_q\mathbf{1}^\top$,
    $K = W_k \tilde{Y} + b_k\mathbf{1}^\top$, $V = W_v \tilde{Y} + b_v\mathbf{1}^\top$ ($W_k$,
    $W_v$ of shape d x e), scores $S_h = \operatorname{bmm}(K_h^\top, Q_h)/\sqrt{d_k}$ (each
    example's T_k x T_q), $P_h$ their softmax over the keys, $O_h = \operatorname{bmm}(V_h, P_h)$,
    then $W_o [O_1; \dots; O_H] + b_o$: the output has the queries' shape (T_q, d).

    PyTorch's `nn.MultiheadAttention(d, H, kdim=e, vdim=e)` computes the same: its
    `in_proj_weight` is $[W_q; W_k; W_v]$ when e = d, else `q_proj_weight`, `k_proj_weight`
    and `v_proj_weight`; `in_proj_bias` is $[b_q; b_k; b_v]$.

    Masks, as for `SelfAttention`: `mask`, a fixed (T_q, T_k) array (booleans, True: query t
    may not see key u, or additive floats); a per-example mask as a third input,
    `attention(x, memory, m)`, of shape (T_k,) (key padding) or (T_q, T_k), boolean unless
    `mask_input="additive"`.
    """

    kind = "cross_attention"

    def __init__(self, heads: int = 1, name=None, *, mask=None, mask_input: str = "boolean"):
        super().__init__(name)
        self.heads = int(heads)
        _set_masks(self, mask, mask_input)

    def _output_shape(self, input_shape):
        raise ShapeError(
            "CrossAttention: takes two sequences, the queries and the keys/values, as graph "
            "tensors: nn.CrossAttention(heads)(x, memory)"
        )

    def build_many(self, shapes):
        """Built on the queries (T_q, d), the keys/values (T_k, e) and, optionally, a mask."""
        if len(shapes) not in (2, 3):
            raise ShapeError(
                f"CrossAttention: takes queries, keys/values and optionally a mask, got "
                f"{len(shapes)} inputs"
            )
        queries, memory = (tuple(s) for s in shapes[:2])
        if len(queries) != 2 or len(memory) != 2:
            raise ShapeError(
                f"CrossAttention: needs sequences of shape (T, d), got {queries} and {memory}"
            )
        (T_q, d), (T_k, e) = queries, memory
        if d % self.heads:
            raise ShapeError(f"CrossAttention: {d} features do not split into {self.heads} heads")
        self.steps, self.features, self.key_steps, self.key_features = T_q, d, T_k, e
        self.added = _fixed_mask(self, T_q, T_k)
        if len(shapes) == 3:
            mask = tuple(shapes[2])
            if mask not in ((T_k,), (T_q, T_k)):
                raise ShapeError(
                    f"CrossAttention: a mask input of shape {mask} for {T_q} queries and {T_k} "
                    f"keys; give ({T_k},) to mask keys (padding) or ({T_q}, {T_k}) per "
                    "(query, key)"
                )
            self.mask_shape = mask
        self.input_shape = tuple(tuple(s) for s in shapes)
        self.output_shape = (T_q, d)
        return self.output_shape

    def extra_input_value(self, key, shape, train, rng, state):
        """The fixed mask's additive constants, row t·T_k + u for query t and key u."""
        return _fixed_mask_value(self, key, shape, train, rng, state)

    def natural_shapes(self):
        d, e = self.features, self.key_features
        shapes = {"W_q": (d, d), "W_k": (d, e), "W_v": (d, e), "W_o": (d, d)}
        return shapes | {f"b_{k}": (d,) for k in "qkvo"}

    def parameters(self, index):
        return _projection_symbols(self, index)

    def init(self, rng):
        """Glorot-uniform weights (PyTorch's xavier_uniform_ on each projection), zero biases."""
        weights = {}
        for key, shape in self.natural_shapes().items():
            if key.startswith("W"):
                limit = np.sqrt(6.0 / sum(shape))
                weights[key] = rng.uniform(-limit, limit, size=shape)
            else:
                weights[key] = np.zeros(shape)
        return weights

    def forward(self, A, params, context):
        queries, memory, *mask = A
        T_q, T_k = self.steps, self.key_steps
        X = _token_columns(self, queries, T_q, self.features, context)
        Y = _token_columns(self, memory, T_k, self.key_features, context, "Y")
        M = mask[0] if mask else None
        return None, untokens(_attend(self, X, Y, (T_q, T_k), M, params, context), T_q)


__all__ = ["CrossAttention"]
