"""2-D convolution as a matrix op, with its input, kernel and bias gradients as ops: the
kernel gradient correlates the input with the upstream gradient, the input gradient is the
full convolution of the upstream gradient with the flipped kernel."""

from __future__ import annotations

import sympy
from sympy import ImmutableMatrix
from sympy.matrices.expressions import MatrixSymbol

from symdl.ops.base import MatrixOp
from symdl.ops.window import (
    _EXAMPLE_CONV,
    Geometry,
    _batch,
    _columns,
    _example,
    _module,
    _WindowOp,
)


class conv2d(_WindowOp):
    r"""Convolution (cross-correlation) of a batch $X$ with kernels $K$, plus a bias per map.

    Args: X (C·H·W x N), K (F x C·kh·kw), b (F x 1), geometry. Output (F·Ho·Wo x N).
    """

    name = "conv2d"
    latex_name = r"\operatorname{conv}"

    @property
    def shape(self):
        g, K = self.geometry, self.args[1]
        return (K.shape[0] * g.Ho * g.Wo, self.args[0].shape[1])

    def vjp(self, index, G, out):
        X, K, b, geometry = self.args
        if index == 0:
            return conv2d_input_grad(G, K, geometry)
        if index == 1:
            return conv2d_kernel_grad(G, X, geometry)
        return channel_sum(G, K.shape[0])

    @classmethod
    def example(cls):
        g = _EXAMPLE_CONV
        X, K, b = (
            _batch(g.C * g.H * g.W),
            MatrixSymbol("K", 2, g.C * g.kh * g.kw),
            MatrixSymbol("b", 2, 1),
        )
        return _example(cls(X, K, b, g.as_tuple()), wrt=[X, K, b])

    def explicit(self, X, K, b, geometry):
        g = Geometry.of(geometry)
        F = K.shape[0]
        columns = []
        for x in _columns(X, g.C * g.H * g.W):
            y = []
            for f in range(F):
                for oh in range(g.Ho):
                    for ow in range(g.Wo):
                        y.append(b[f, 0] + _window_sum(x, K, f, oh, ow, g))
            columns.append(y)
        return ImmutableMatrix(columns).T

    def _latex_body(self, printer):
        X, K, b, _ = (printer._print(a) for a in self.args)
        tex = rf"\left({K} \star{self._subscript()} {X} + {b}\right)"
        return tex

    def numeric_form(self):
        X, K, b, geometry = self.args
        return conv2d_windowed(conv2d_windows(X, geometry), K, b, geometry)

    def _numpycode(self, printer):
        return printer._print(self.numeric_form())


def _padded(x, g: Geometry, c: int, i: int, j: int):
    """Entry (c, i, j) of the zero-padded input image x (a flat list)."""
    i, j = i - g.ph, j - g.pw
    if 0 <= i < g.H and 0 <= j < g.W:
        return x[(c * g.H + i) * g.W + j]
    return sympy.S.Zero


def _window_sum(x, K, f, oh, ow, g: Geometry):
    return sympy.Add(
        *(
            K[f, (c * g.kh + i) * g.kw + j] * _padded(x, g, c, oh * g.sh + i, ow * g.sw + j)
            for c in range(g.C)
            for i in range(g.kh)
            for j in range(g.kw)
        )
    )


class conv2d_input_grad(_WindowOp):
    r"""The input gradient of a convolution: the upstream gradient $G$ (stride-dilated)
    convolved in full with the kernel flipped in both spatial axes, $\operatorname{rot}_{180}(K)$."""

    name = "conv2d_input_grad"
    latex_name = r"\operatorname{conv}"

    @property
    def shape(self):
        g = self.geometry
        return (g.C * g.H * g.W, self.args[0].shape[1])

    def explicit(self, G, K, geometry):
        g = Geometry.of(geometry)
        F = K.shape[0]
        columns = []
        for grad in _columns(G, F * g.Ho * g.Wo):
            x = []
            for c in range(g.C):
                for i in range(g.H):
                    for j in range(g.W):
                        # full convolution with the flipped kernel, written as the sum over the
                        # outputs whose window covers input (i, j)
                        terms = []
                        for f in range(F):
                            for a in range(g.kh):
                                for bb in range(g.kw):
                                    oh, rh = divmod(i + g.ph - a, g.sh)
                                    ow, rw = divmod(j + g.pw - bb, g.sw)
                                    if rh or rw or not (0 <= oh < g.Ho and 0 <= ow < g.Wo):
                                        continue
                                    k = K[f, (c * g.kh + a) * g.kw + bb]
                                    terms.append(grad[(f * g.Ho + oh) * g.Wo + ow] * k)
                        x.append(sympy.Add(*terms))
            columns.append(x)
        return ImmutableMatrix(columns).T

    def _latex_body(self, printer):
        G, K, _ = (printer._print(a) for a in self.args)
        sub = self._subscript(r"\mathrm{full}")
        tex = (
            rf"{self.latex_name}{sub}\left({G}, \operatorname{{rot}}_{{180}}\left({K}\right)\right)"
        )
        return tex

    def _numpycode(self, printer):
        G, K, _ = self.args
        G, K = printer._print(G), printer._print(K)
        return f"{_module(printer)}.conv2d_columns_grad_input({G}, {K}, {_layout(self.geometry)})"


class conv2d_kernel_grad(_WindowOp):
    r"""The kernel gradient of a convolution: the input correlated with the upstream gradient,
    summed over the batch."""

    name = "conv2d_kernel_grad"
    latex_name = r"\operatorname{corr}"

    @property
    def shape(self):
        g = self.geometry
        return (self.args[0].shape[0] // (g.Ho * g.Wo), g.C * g.kh * g.kw)

    def explicit(self, G, X, geometry):
        g = Geometry.of(geometry)
        F = G.shape[0] // (g.Ho * g.Wo)
        xs, gs = _columns(X, g.C * g.H * g.W), _columns(G, F * g.Ho * g.Wo)
        rows = []
        for f in range(F):
            row = []
            for c in range(g.C):
                for a in range(g.kh):
                    for bb in range(g.kw):
                        row.append(
                            sympy.Add(
                                *(
                                    grad[(f * g.Ho + oh) * g.Wo + ow]
                                    * _padded(x, g, c, oh * g.sh + a, ow * g.sw + bb)
                                    for x, grad in zip(xs, gs, strict=True)
                                    for oh in range(g.Ho)
                                    for ow in range(g.Wo)
                                )
                            )
                        )
            rows.append(row)
        return ImmutableMatrix(rows)

    def _latex_body(self, printer):
        G, X, _ = (printer._print(a) for a in self.args)
        tex = rf"{self.latex_name}{self._subscript()}\left({X}, {G}\right)"
        return tex

    def numeric_form(self):
        G, X, geometry = self.args
        return conv2d_windowed_kernel_grad(G, conv2d_windows(X, geometry), geometry)

    def _numpycode(self, printer):
        return printer._print(self.numeric_form())


# ---------------------------------------------------------------- how the code computes them
# conv2d and conv2d_kernel_grad both contract the window matrix of the same input (im2col);
# their numeric forms read it from one conv2d_windows node, which the compiler's common-
# subexpression pass then computes once per step. These ops appear only in generated code.


class conv2d_windows(_WindowOp):
    r"""The window matrix of a batch $X$ (im2col): one row per (channel, kernel offset), one
    column per (output position, example); each backend's kernels decide its layout (the
    NumPy one builds it, the JAX and PyTorch ones keep the images and convolve natively)."""

    name = "conv2d_windows"
    latex_name = r"\operatorname{windows}"

    @property
    def shape(self):
        g = self.geometry
        return (g.C * g.kh * g.kw, g.Ho * g.Wo * self.args[0].shape[1])

    def _latex_body(self, printer):
        return rf"{self.latex_name}{self._subscript()}\left({printer._print(self.args[0])}\right)"

    def _numpycode(self, printer):
        X = printer._print(self.args[0])
        return f"{_module(printer)}.conv2d_windows({X}, {_layout(self.geometry)})"


class conv2d_windowed(_WindowOp):
    r"""`conv2d` computed from the window matrix of its input: $K W + b$, one product."""

    name = "conv2d_windowed"
    latex_name = r"\operatorname{conv}"

    @property
    def shape(self):
        g, windows, K = self.geometry, self.args[0], self.args[1]
        return (K.shape[0] * g.Ho * g.Wo, windows.shape[1] / (g.Ho * g.Wo))

    def _numpycode(self, printer):
        windows, K, b = (printer._print(a) for a in self.args[:3])
        # the bias added in place to the product, not as a second full-size array
        layout = _layout(self.geometry)
        return f"{_module(printer)}.conv2d_windowed({windows}, {K}, {layout}, bias={b})"


class conv2d_windowed_kernel_grad(_WindowOp):
    r"""`conv2d_kernel_grad` from the window matrix of the input: $G W^\top$, one product."""

    name = "conv2d_windowed_kernel_grad"
    latex_name = r"\operatorname{corr}"

    @property
    def shape(self):
        g = self.geometry
        return (self.args[0].shape[0] // (g.Ho * g.Wo), g.C * g.kh * g.kw)

    def _numpycode(self, printer):
        G, windows = (printer._print(a) for a in self.args[:2])
        layout = _layout(self.geometry)
        return f"{_module(printer)}.conv2d_windowed_grad_kernel({G}, {windows}, {layout})"


class channel_sum(MatrixOp):
    r"""Sum of each of $F$ maps over its positions and the batch: the gradient of a bias per map."""

    name = "channel_sum"
    latex_name = r"\Sigma_{\text{maps}}"

    @property
    def shape(self):
        return (self.args[1], sympy.S.One)

    def explicit(self, G, F):
        F = int(F)
        per_map = G.shape[0] // F
        return ImmutableMatrix(
            [
                [
                    sympy.Add(
                        *(G[f * per_map + p, n] for p in range(per_map) for n in range(G.shape[1]))
                    )
                ]
                for f in range(F)
            ]
        )

    def _latex_body(self, printer):
        tex = rf"{self.latex_name}\left({printer._print(self.args[0])}\right)"  # F is in G's shape
        return tex

    def _numpycode(self, printer):
        G, F = printer._print(self.args[0]), int(self.args[1])
        # one reduction over a reshape that is free for the C-ordered adjoints a step computes
        return f"({G}).reshape({F}, -1).sum(axis=1, keepdims=True)"


def _layout(g: Geometry) -> str:
    """NumPy source: the image, window, stride and padding arguments of a column kernel."""
    return f"({g.C}, {g.H}, {g.W}), ({g.kh}, {g.kw}), ({g.sh}, {g.sw}), ({g.ph}, {g.pw})"
