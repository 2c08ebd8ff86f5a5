r"""Attention over sequences of T tokens: embedding, sinusoidal positions, multi-head
self-attention with causal, fixed and per-example masks, position-wise dense layers and layer
normalisation per token, and a transformer block built from them.

A sequence is stored as every sequence layer stores it (symdl.nn.recurrent): T tokens of d
features, token t in rows $td .. (t+1)d - 1$ of each example's column. The layers here work on
the tokens as columns, $\tilde{X} = \operatorname{tokens}(X)$ (d x T·N), so that one product
$W\tilde{X}$ projects every token of every example. For head h, with
$Q = W_q \tilde{X} + b_q \mathbf{1}^\top$ ($K$, $V$ alike) and $Q_h$ its rows of the head,
the scores of each example are $S_h = K_h^\top Q_h / \sqrt{d_k}$ (keys by rows, queries by
columns), $P_h = \operatorname{softmax}(S_h)$ over the keys and $O_h = V_h P_h$: products of
each example's own matrices (`symdl.ops.bmm`).
"""

from __future__ import annotations

import numpy as np
import sympy
from sympy import MatrixSymbol, OneMatrix

from symdl.core.matrices import hadamard, matadd, matmul, scale
from symdl.nn.layers import Layer, ShapeError, get_activation
from symdl.nn.residual import Residual
from symdl.ops import bmm, row_block, tokens, untokens, vstack
from symdl.ops import mean as feature_mean
from symdl.ops.vector import MatSoftmax


def _check_rows(layer, A, T, d):
    if A.shape[0] != T * d:
        raise ShapeError(f"{layer.name}: input has {A.shape[0]} rows, expected {T}x{d}")


def _token_columns(layer, A, T, d, context, name="X"):
    r"""The tokens of sequences A (T·d x N) as the columns of $\tilde{X}^{(l)}$ (d x T·N)."""
    _check_rows(layer, A, T, d)
    X = tokens(A, T)
    context.names.setdefault(X, rf"\tilde{{{name}}}^{{({context.index})}}")
    return X


def _tokens(layer, A, T, d):
    _check_rows(layer, A, T, d)
    return [row_block(A, t * d, (t + 1) * d) for t in range(T)]


class _Sequence(Layer):
    """A layer over (T, d) sequences."""

    def _output_shape(self, input_shape):
        if len(input_shape) != 2:
            raise ShapeError(
                f"{type(self).__name__}: needs sequences of shape (T, d), got {input_shape}"
            )
        self.steps, self.features = input_shape
        return self._sequence_shape(self.steps, self.features)

    def _sequence_shape(self, T, d):
        return (T, d)


class Embedding(_Sequence):
    r"""Token embedding $e_t = E x_t$ of one-hot tokens $x_t$ (input (T, V), see `one_hot`): the
    columns of E (d x V) are the tokens' vectors (PyTorch's `nn.Embedding.weight` is $E^\top$)."""

    kind = "embedding"

    def __init__(self, vocabulary: int, dim: int, name=None):
        super().__init__(name)
        self.vocabulary, self.dim = int(vocabulary), int(dim)

    def _sequence_shape(self, T, V):
        if V != self.vocabulary:
            raise ShapeError(f"Embedding: tokens are one-hot over {V}, not {self.vocabulary}")
        return (T, self.dim)

    def parameters(self, index):
        return {"E": MatrixSymbol(f"E^{{({index})}}", self.dim, self.vocabulary)}

    def natural_shapes(self):
        return {"E": (self.dim, self.vocabulary)}

    def init(self, rng):
        return {"E": rng.normal(size=(self.dim, self.vocabulary))}

    def forward(self, A, params, context):
        X = _token_columns(self, A, self.steps, self.features, context)
        return None, untokens(matmul(params["E"], X), self.steps)


def one_hot(tokens, vocabulary: int) -> np.ndarray:
    """Integer tokens (N, T) as one-hot sequences (N, T, vocabulary), an Embedding's input."""
    tokens = np.asarray(tokens, dtype=int)
    if tokens.size and (tokens.min() < 0 or tokens.max() >= vocabulary):
        raise ValueError(
            f"one_hot: tokens run {tokens.min()}..{tokens.max()}, not 0..{vocabulary - 1}"
        )
    return np.eye(vocabulary)[tokens]


def sinusoidal(T: int, d: int) -> np.ndarray:
    r"""The (T, d) sinusoidal positions: $\sin(t / 10000^{2i/d})$ in even features, cos in odd."""
    position = np.arange(T)[:, None]
    rate = 1.0 / 10000 ** (np.arange(0, d, 2) / d)
    P = np.zeros((T, d))
    P[:, 0::2] = np.sin(position * rate)
    P[:, 1::2] = np.cos(position * rate[: d // 2])
    return P


class PositionalEncoding(_Sequence):
    r"""$x_t + p_t$ with the sinusoidal positions $p_t$ (a constant, no parameters)."""

    kind = "positions"

    def forward(self, A, params, context):
        P = MatrixSymbol(f"P^{{({context.index})}}", self.steps * self.features, 1)
        _constant_input(self, context, "positions", P)
        return None, sympy.MatAdd(A, matmul(P, OneMatrix(1, context.batch)))

    def extra_input_value(self, key, shape, train, rng, state):
        """The positions, a column: token t's in rows td .. (t+1)d - 1."""
        return sinusoidal(self.steps, self.features).reshape(-1, 1)


def _constant_input(layer, context, key: str, symbol: MatrixSymbol) -> None:
    """`symbol` a constant of `layer`, fed as an extra input (its `extra_input_value`) so that
    it comes in the parameters' dtype: a float64 constant would make a float32 model compute
    in float64 from where it is added on. A layer used twice declares it once."""
    if symbol.name not in context.inputs:
        context.extra_input(layer, key, symbol)


class TokenDense(_Sequence):
    r"""The same dense layer on every token: $y_t = f(W x_t + b)$."""

    kind = "token_dense"

    def __init__(self, units: int, activation=None, name=None):
        super().__init__(name)
        self.units, self.activation = int(units), get_activation(activation)

    def _sequence_shape(self, T, d):
        return (T, self.units)

    def natural_shapes(self):
        return {"W": (self.units, self.features), "b": (self.units,)}

    def parameters(self, index):
        return {
            "W": MatrixSymbol(f"W^{{({index})}}", self.units, self.features),
            "b": MatrixSymbol(f"b^{{({index})}}", self.units, 1),
        }

    def init(self, rng):
        limit = np.sqrt(6.0 / (self.units + self.features))
        W = rng.uniform(-limit, limit, size=(self.units, self.features))
        return {"W": W, "b": np.zeros(self.units)}

    def forward(self, A, params, context):
        T = self.steps
        X = _token_columns(self, A, T, self.features, context)
        bias = matmul(params["b"], OneMatrix(1, T * context.batch))
        Z = matadd(matmul(params["W"], X), bias)
        out = self.activation(Z)
        if out != Z:  # Z named, as a dense layer's: f'(Z) reads it
            context.names.setdefault(Z, f"Z^{{({context.index})}}")
        return None, untokens(out, T)


class TokenLayerNorm(_Sequence):
    r"""Layer normalisation of each token over its d features (as in transformers), then
    $\gamma \circ \hat{x}_t + \beta$, γ and β shared by the tokens."""

    kind = "token_norm"

    def __init__(self, eps: float = 1e-5, name=None):
        super().__init__(name)
        self.eps = float(eps)

    def natural_shapes(self):
        return {"gamma": (self.features,), "beta": (self.features,)}

    def parameters(self, index):
        d = self.features
        return {
            "gamma": MatrixSymbol(f"gamma^{{({index})}}", d, 1),
            "beta": MatrixSymbol(f"beta^{{({index})}}", d, 1),
        }

    def init(self, rng):
        return {"gamma": np.ones(self.features), "beta": np.zeros(self.features)}

    def forward(self, A, params, context):
        T, d, index = self.steps, self.features, context.index
        X = _token_columns(self, A, T, d, context)
        epsilon = sympy.Symbol(f"epsilon^{{({index})}}", positive=True)
        context.constants[epsilon] = self.eps
        column, ones = OneMatrix(d, 1), OneMatrix(1, T * context.batch)
        mean = feature_mean(X, 0)
        centred = sympy.MatAdd(X, scale(-1, matmul(column, mean)))
        var = feature_mean(hadamard(centred, centred), 0)
        inverse = sympy.HadamardPower(
            matadd(var, scale(epsilon, OneMatrix(*var.shape))), sympy.Rational(-1, 2)
        )
        x_hat = hadamard(centred, matmul(column, inverse))
        names = {mean: "mu^{", centred: "C^{", var: "sigma^{2", inverse: "s^{", x_hat: r"\hat{X}^{"}
        for expr, name in names.items():  # as LayerNorm names them: x̂ a step the adjoints read
            context.names.setdefault(expr, f"{name}({index})}}")
        gamma, beta = matmul(params["gamma"], ones), matmul(params["beta"], ones)
        # γ ∘ x̂ kept as two factors (not flattened into x̂'s own product): x̂ stays a step
        out = matadd(sympy.HadamardProduct(gamma, x_hat), beta)
        return None, untokens(out, T)


MASKED = sympy.Float(-1e30)
"""What a boolean mask input adds to a masked score: a softmax weight of exactly 0 beside any
visible key in float64 and float32, with no −∞ in the graph (−∞ · 0 would be NaN where the
mask is 0)."""


class SelfAttention(_Sequence):
    r"""Multi-head self-attention over the tokens (PyTorch's `nn.MultiheadAttention` with
    query = key = value): per head $h$ of size $d_k = d/H$, scores $q_t^\top k_u/\sqrt{d_k}$,
    softmax over u, $o_t = \sum_u a_{tu} v_u$; heads stacked, then $W_o [o^1_t; \dots] + b_o$.
    With one head it is scaled dot-product attention of the projected tokens. Each is one
    matrix expression over the whole batch: $S_h = \operatorname{bmm}(K_h^\top, Q_h)/\sqrt{d_k}$
    holds every example's T x T scores, $O_h = \operatorname{bmm}(V_h, P_h)$ its outputs.

    Masks, as PyTorch's `attn_mask` and `key_padding_mask` say them:

    - `causal=True`: token t attends to tokens u ≤ t only.
    - `mask`: a fixed (T, T) array, row t for query t: boolean (True: t may not attend to u) or
      additive floats (−∞: may not; a finite value is added to the score). A masked score is
      left out of the softmax, which is what adding −∞ to it computes; causal and mask combine.
    - a per-example mask as a second input of a graph model, `attention(x, m)`: `m` of shape
      (T,) masks keys (padding: the same keys for every query), of shape (T, T) masks
      (query, key) pairs. Its values are boolean (1: masked) unless `mask_input="additive"`,
      where they are added to the scores (0 or −∞ as PyTorch's float masks). A boolean input
      adds $-10^{30}\,m_{tu}$ to each score, which gives a masked key exactly weight 0; a
      query whose keys are all masked gets the mean of every value where PyTorch gives NaN.

    Every query must keep at least one key of the fixed masks (else a ShapeError names it).
    """

    kind = "attention"

    def __init__(
        self,
        heads: int = 1,
        causal: bool = False,
        name=None,
        *,
        mask=None,
        mask_input: str = "boolean",
    ):
        super().__init__(name)
        self.heads, self.causal = int(heads), bool(causal)
        _set_masks(self, mask, mask_input)

    def build_many(self, shapes):
        """Built on a sequence and a per-example mask (a graph model's second input)."""
        if len(shapes) != 2:
            raise ShapeError(
                f"SelfAttention: takes a sequence and a mask, got {len(shapes)} inputs"
            )
        out = self.build(shapes[0])
        T, mask = self.steps, tuple(shapes[1])
        if mask not in ((T,), (T, T)):
            raise ShapeError(
                f"SelfAttention: a mask input of shape {mask} for {T} tokens; give (T,) = "
                f"({T},) to mask keys (padding) or (T, T) = ({T}, {T}) per (query, key)"
            )
        self.input_shape, self.mask_shape = (tuple(shapes[0]), mask), mask
        return out

    def _sequence_shape(self, T, d):
        if d % self.heads:
            raise ShapeError(f"SelfAttention: {d} features do not split into {self.heads} heads")
        self.added = _fixed_mask(self, T, T, self.causal)
        return (T, d)

    def extra_input_value(self, key, shape, train, rng, state):
        """The fixed masks' additive constants, row t·T + u for query t and key u."""
        return _fixed_mask_value(self, key, shape, train, rng, state)

    def natural_shapes(self):
        d = self.features
        shapes = {f"W_{k}": (d, d) for k in "qkvo"}
        return shapes | {f"b_{k}": (d,) for k in "qkvo"}

    def parameters(self, index):
        return _projection_symbols(self, index)

    def init(self, rng):
        d = self.features
        limit = np.sqrt(6.0 / (2 * d))
        weights = {f"W_{k}": rng.uniform(-limit, limit, size=(d, d)) for k in "qkvo"}
        return weights | {f"b_{k}": np.zeros(d) for k in "qkvo"}

    def forward(self, A, params, context):
        T = self.steps
        A, M = A if self.mask_shape is not None else (A, None)
        X = _token_columns(self, A, T, self.features, context)
        return None, untokens(_attend(self, X, X, (T, T), M, params, context), T)


def _fixed_mask(layer, T_q, T_k, causal=False):
    """The (T_q, T_k) constants a layer's fixed masks add to the scores, row t for query t."""
    kind, mask = type(layer).__name__, layer.mask
    added = np.zeros((T_q, T_k))
    if mask is not None:
        if mask.shape != (T_q, T_k):
            raise ShapeError(f"{kind}: mask of shape {mask.shape}, expected ({T_q}, {T_k})")
        if mask.dtype == bool:
            added[mask] = -np.inf
        elif mask.dtype.kind != "f":
            raise TypeError(
                f"{kind}: a mask of {mask.dtype} is ambiguous; give booleans "
                "(True: masked) or additive floats (-inf: masked), as PyTorch's attn_mask"
            )
        else:
            added = mask.astype(float)
            if np.isnan(added).any() or (added == np.inf).any():
                raise ValueError(f"{kind}: an additive mask holds NaN or +inf")
    if causal:
        added[np.triu_indices(T_q, 1, T_k)] = -np.inf
    for t in range(T_q):
        if (added[t] == -np.inf).all():
            raise ShapeError(
                f"{kind}: query {t} may attend to no key (its row of the mask is all "
                "masked), which PyTorch turns into NaN; keep at least one key per row"
            )
    return added


def _set_masks(layer, mask, mask_input: str) -> None:
    """An attention layer's fixed mask and the kind of its per-example mask input."""
    layer.mask = None if mask is None else np.asarray(mask)
    if mask_input not in ("boolean", "additive"):
        raise ValueError(
            f"{type(layer).__name__}: mask_input is 'boolean' or 'additive', not {mask_input!r}"
        )
    layer.mask_input = mask_input
    layer.mask_shape = None  # of a per-example mask input, when called with one


def _projection_symbols(layer, index) -> dict:
    """W_q^{(l)}, ..., b_o^{(l)}: an attention layer's projections, a bias a column."""
    return {
        key: MatrixSymbol(
            f"{key[0]}_{{{key[2]}}}^{{({index})}}", shape[0], shape[1] if len(shape) > 1 else 1
        )
        for key, shape in layer.natural_shapes().items()
    }


def _fixed_mask_value(layer, key, shape, train, rng, state):
    """An attention layer's extra input: its fixed masks' constants, row t·T_k + u for query
    t and key u."""
    return layer.added.reshape(-1, 1)


def _attend(layer, X, Y, steps, M, params, context):
    r"""Multi-head attention of the queries $W_q X + b_q$ over the keys and values of $Y$ (X and
    Y tokens as columns, `steps` their token counts), before the output's untokens: the
    d x T_q·N matrix $W_o [O_1; \dots; O_H] + b_o \mathbf{1}^\top$."""
    (T_q, T_k), H, index = steps, layer.heads, context.index
    dk = layer.features // H

    def named(expr, name):
        context.names.setdefault(expr, f"{name}^{{({index})}}")
        return expr

    def projected(key, inputs, T):
        ones = OneMatrix(1, T * context.batch)
        Z = matadd(matmul(params[f"W_{key}"], inputs), matmul(params[f"b_{key}"], ones))
        return named(Z, key.upper())

    Q, K, V = projected("q", X, T_q), projected("k", Y, T_k), projected("v", Y, T_k)
    added = _added_scores(layer, steps, M, context)
    heads = []
    for h in range(H):
        mark = f"_{{{h + 1}}}" if H > 1 else ""
        q, k, v = (
            named(row_block(P, h * dk, (h + 1) * dk), f"{name}{mark}") if H > 1 else P
            for P, name in ((Q, "Q"), (K, "K"), (V, "V"))
        )
        S = scale(1 / sympy.sqrt(dk), bmm(k, q, T_k, T_q, transpose_a=True))
        S = named(sympy.MatAdd(S, added) if added is not None else S, f"S{mark}")  # M kept whole
        P = named(MatSoftmax(S), f"P{mark}")
        heads.append(named(bmm(v, P, T_k, T_q), f"O{mark}"))
    stacked = named(vstack(*heads), "O") if H > 1 else heads[0]
    ones = OneMatrix(1, T_q * context.batch)
    return named(matadd(matmul(params["W_o"], stacked), matmul(params["b_o"], ones)), "Z")


def _added_scores(layer, steps, M, context):
    """What the masks add to the scores, keys by rows and (query, example) by columns as the
    scores are: the fixed masks' constants (−∞ where masked) and a mask input."""
    (T_q, T_k), terms = steps, []
    if layer.added.any():
        fixed = MatrixSymbol(f"m^{{({context.index})}}", T_q * T_k, 1)
        _constant_input(layer, context, "mask", fixed)  # see _fixed_mask_value
        terms.append(tokens(matmul(fixed, OneMatrix(1, context.batch)), T_q))
    if M is not None:
        rows = vstack(*[M] * T_q) if layer.mask_shape == (T_k,) else M  # keys: every query
        m = tokens(rows, T_q)
        terms.append(m if layer.mask_input == "additive" else scale(MASKED, m))
    if not terms:
        return None
    added = matadd(*terms)
    context.names.setdefault(added, f"M^{{({context.index})}}")
    return added


class Token(_Sequence):
    """Token `t` (from 0) of a sequence, its d features: for a loss on each position, as
    several outputs of a graph model."""

    kind = "token"

    def __init__(self, t: int, name=None):
        super().__init__(name)
        self.t = int(t)

    def _sequence_shape(self, T, d):
        if not 0 <= self.t < T:
            raise ShapeError(f"Token: position {self.t} is outside a sequence of {T} tokens")
        return (d,)

    def forward(self, A, params, context):
        return None, _tokens(self, A, self.steps, self.features)[self.t]


def transformer_block(dim: int, heads: int, hidden: int, causal: bool = False) -> list[Layer]:
    """A post-norm transformer encoder block over tokens of `dim` features, as layers to put in
    a model: self-attention with a residual connection and layer normalisation, then a ReLU MLP
    (`hidden` units) on every token with a residual connection and layer normalisation
    (PyTorch's TransformerEncoderLayer without dropout)."""
    return [
        Residual(SelfAttention(heads, causal)),
        TokenLayerNorm(),
        Residual(TokenDense(hidden, "relu"), TokenDense(dim)),
        TokenLayerNorm(),
    ]


__all__ = [
    "Embedding",
    "PositionalEncoding",
    "MASKED",
    "SelfAttention",
    "Token",
    "TokenDense",
    "TokenLayerNorm",
    "one_hot",
    "sinusoidal",
    "transformer_block",
]
