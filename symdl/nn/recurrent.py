r"""Recurrent layers over sequences of fixed length T: Elman RNN, GRU and LSTM, unrolled.

Sequences follow the batch convention of every layer: X of shape (N, T, F) is fed as one
(T·F) x N matrix, example n in column n, its step $x_t$ in rows $tF .. (t+1)F - 1$
(`X.reshape(N, -1).T`). The state starts at $h_0 = 0$. Unrolled, the chain rule over the
steps is backpropagation through time: $\delta_t$ flows back from $h_t$ to $h_{t-1}$, and a
weight used at every step gathers $\partial L / \partial W_h = \sum_t \delta_t h_{t-1}^\top$.

Gates follow PyTorch's equations (GRU: r, z, n with the recurrent bias of n inside the reset;
LSTM: i, f, g, o), so weights carry over from `torch.nn.RNN/GRU/LSTM` gate by gate, with the
LSTM's and the RNN's two bias vectors summed into one.
"""

from __future__ import annotations

import numpy as np
import sympy
from sympy import MatrixSymbol, OneMatrix

from symdl.core.matrices import elementwise, hadamard, matadd, matmul, scale
from symdl.nn.layers import Layer, ShapeError
from symdl.nn.scan import CELLS, Spec, cell, recurrent_scan
from symdl.ops import row_block, sigmoid, vstack


def _tanh(Z):
    return elementwise(sympy.tanh, Z)


def _sigmoid(Z):
    return elementwise(sigmoid, Z)


class _Recurrent(Layer):
    """Shared parts: shapes (T, F) -> (H,) or (T, H), one W (input), U (recurrent) and b per
    gate, initialised uniform in ±1/√H as PyTorch does."""

    gates: tuple[str, ...] = ()
    recurrent_biases: tuple[str, ...] = ()  # gates with a second bias inside (GRU's n)
    # the shortest sequence whose compiled steps loop over time by default (unroll=None), or
    # None for never: where bench/recurrent_loop.py measured the loop's step as fast as the
    # unrolled one (docs/benchmarks.md, "Recurrent steps")
    loop_from_steps: int | None = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "kind" in vars(cls):  # a subclass that keeps its parent's kind keeps its cell
            CELLS[cls.kind] = cls

    def __init__(
        self, units: int, return_sequences: bool = False, name=None, unroll: bool | None = None
    ):
        super().__init__(name)
        if int(units) < 1:
            raise ValueError(f"{type(self).__name__}: units must be positive, got {units}")
        self.units, self.return_sequences = int(units), bool(return_sequences)
        self.unroll = None if unroll is None else bool(unroll)

    def loops(self) -> bool:
        """Whether the compiled steps loop over time (the derivation is unrolled always):
        `unroll=False`, or by default (`unroll=None`) sequences of `loop_from_steps` steps or
        more (GRU and LSTM from 32; an RNN stays unrolled)."""
        if self.unroll is None:
            first = type(self).loop_from_steps
            return first is not None and self.steps >= first
        return not self.unroll

    def _output_shape(self, input_shape):
        if len(input_shape) != 2:
            raise ShapeError(
                f"{type(self).__name__}: needs sequences of shape (T, F), got {input_shape}; "
                "give the model input_shape=(steps, features)"
            )
        self.steps, self.features = input_shape
        return (self.steps, self.units) if self.return_sequences else (self.units,)

    def natural_shapes(self):
        H, F = self.units, self.features
        shapes = {}
        for g in self.gates:
            shapes |= {f"W_{g}": (H, F), f"U_{g}": (H, H), f"b_{g}": (H,)}
        return shapes | {f"c_{g}": (H,) for g in self.recurrent_biases}

    def parameters(self, index):
        symbols = {}
        for key, shape in self.natural_shapes().items():
            letter, gate = key.split("_")
            rows, cols = shape if len(shape) == 2 else (shape[0], 1)
            symbols[key] = MatrixSymbol(f"{letter}_{{{gate}}}^{{({index})}}", rows, cols)
        return symbols

    def init(self, rng):
        bound = 1 / np.sqrt(self.units)
        return {
            key: rng.uniform(-bound, bound, size=shape)
            for key, shape in self.natural_shapes().items()
        }

    def forward(self, A, params, context):
        T, F = self.steps, self.features
        if A.shape[0] != T * F:
            raise ShapeError(f"{self.name}: input has {A.shape[0]} rows, expected {T}x{F}")
        if getattr(context, "loops", False) and self.loops():
            return None, self._scan(A, params, context)
        ones = OneMatrix(1, context.batch)
        state, outputs = None, []
        for t in range(1, T + 1):
            x = self._name(context, row_block(A, (t - 1) * F, t * F), "x", t)

            def affine(gate, h, x=x):  # W x_t + U h_{t-1} + b 1ᵀ
                terms = [matmul(params[f"W_{gate}"], x)]
                if h is not None and gate not in self.recurrent_biases:
                    terms.append(matmul(params[f"U_{gate}"], h))
                return matadd(*terms, matmul(params[f"b_{gate}"], ones))

            state = self.step(affine, state, params, ones, t, context)
            h = state[0] if isinstance(state, tuple) else state
            outputs.append(h)
        out = vstack(*outputs) if self.return_sequences else outputs[-1]
        return None, out

    def _scan(self, A, params, context):
        """The layer as one op whose code loops over time (symdl.nn.scan)."""
        context.looped.append(self)
        cell(self.kind, self.units)  # derived and compiled now, with the model
        keys = [f"W_{g}" for g in self.gates] + [f"b_{g}" for g in self.gates]
        keys += [f"U_{g}" for g in self.gates] + [f"c_{g}" for g in self.recurrent_biases]
        spec = Spec(
            self.kind, self.name, self.steps, self.features, self.units, self.return_sequences
        )
        return recurrent_scan(A, *(params[k] for k in keys), spec.as_tuple())

    def _name(self, context, expr, letter, t):
        context.names.setdefault(expr, f"{letter}_{{{t}}}^{{({context.index})}}")
        return expr


class RNN(_Recurrent):
    r"""Elman RNN: $h_t = \tanh(W x_t + U h_{t-1} + b)$, $h_0 = 0$; the output is $h_T$ (or every
    $h_t$ stacked, with `return_sequences=True`)."""

    kind = "rnn"
    gates = ("h",)

    def step(self, affine, h, params, ones, t, context):
        z = self._name(context, affine("h", h), "z", t)
        return self._name(context, _tanh(z), "h", t)


class GRU(_Recurrent):
    r"""Gated recurrent unit (PyTorch's equations):
    $r_t = \sigma(W_r x_t + U_r h_{t-1} + b_r)$, $z_t = \sigma(W_z x_t + U_z h_{t-1} + b_z)$,
    $n_t = \tanh(W_n x_t + b_n + r_t \circ (U_n h_{t-1} + c_n))$,
    $h_t = (1 - z_t) \circ n_t + z_t \circ h_{t-1}$."""

    kind = "gru"
    gates = ("r", "z", "n")
    loop_from_steps = 32
    recurrent_biases = ("n",)

    def step(self, affine, h, params, ones, t, context):
        r = self._name(context, _sigmoid(affine("r", h)), "r", t)
        z = self._name(context, _sigmoid(affine("z", h)), "z", t)
        inner = matmul(params["c_n"], ones)
        if h is not None:
            inner = matadd(matmul(params["U_n"], h), inner)
        n = self._name(context, _tanh(matadd(affine("n", h), hadamard(r, inner))), "n", t)
        keep = sympy.MatAdd(OneMatrix(*z.shape), scale(-1, z))
        h_new = hadamard(keep, n) if h is None else matadd(hadamard(keep, n), hadamard(z, h))
        return self._name(context, h_new, "h", t)


class LSTM(_Recurrent):
    r"""Long short-term memory (PyTorch's gate order i, f, g, o):
    $i_t = \sigma(\cdot)$, $f_t = \sigma(\cdot)$, $g_t = \tanh(\cdot)$, $o_t = \sigma(\cdot)$ of
    $W x_t + U h_{t-1} + b$ each; $c_t = f_t \circ c_{t-1} + i_t \circ g_t$,
    $h_t = o_t \circ \tanh(c_t)$; $h_0 = c_0 = 0$."""

    kind = "lstm"
    gates = ("i", "f", "g", "o")
    loop_from_steps = 32

    def step(self, affine, state, params, ones, t, context):
        h, c = state if state is not None else (None, None)
        i = self._name(context, _sigmoid(affine("i", h)), "i", t)
        g = self._name(context, _tanh(affine("g", h)), "g", t)
        o = self._name(context, _sigmoid(affine("o", h)), "o", t)
        c_new = hadamard(i, g)
        if c is not None:
            f = self._name(context, _sigmoid(affine("f", h)), "f", t)
            c_new = matadd(hadamard(f, c), c_new)
        c_new = self._name(context, c_new, "c", t)
        return self._name(context, hadamard(o, _tanh(c_new)), "h", t), c_new
