"""Max and average pooling as matrix ops, with their gradients as ops: max pooling routes
the gradient to the arg-max of each window, average pooling spreads it evenly."""

from __future__ import annotations

from typing import ClassVar

import sympy
from sympy import ImmutableMatrix

from symdl.ops.window import (
    _EXAMPLE_POOL,
    Geometry,
    _batch,
    _columns,
    _example,
    _module,
    _WindowOp,
)


def _mean(*values):
    return sympy.Add(*values) / len(values)


class _Pool(_WindowOp):
    """Pooling over windows (kh x kw, stride) of each map: `reduce` gives an output entry
    from its window's entries; the NumPy kernel of the same name computes it."""

    reduce: ClassVar

    @property
    def shape(self):
        g = self.geometry
        return (g.C * g.Ho * g.Wo, self.args[0].shape[1])

    @classmethod
    def example(cls):
        g = _EXAMPLE_POOL
        X = _batch(g.C * g.H * g.W)
        return _example(cls(X, g.as_tuple()), wrt=[X])

    def explicit(self, X, geometry):
        g = Geometry.of(geometry)
        rows = [_pooled(x, g, type(self).reduce) for x in _columns(X, g.C * g.H * g.W)]
        return ImmutableMatrix(rows).T

    def _latex_body(self, printer):
        g = self.geometry
        window = rf"{g.kh}\times{g.kw}" + (f",{g.describe()}" if g.describe() else "")
        tex = rf"{self.latex_name}_{{{window}}}\left({printer._print(self.args[0])}\right)"
        return tex

    def _numpycode(self, printer):
        X = printer._print(self.args[0])
        return f"{_module(printer)}.{self.name}_columns({X}, {_pool_layout(self.geometry)})"


class max_pool2d(_Pool):
    r"""Max pooling over windows (kh x kw, stride) of each map; the gradient goes to the arg-max."""

    name = "max_pool2d"
    latex_name = r"\operatorname{maxpool}"
    reduce = sympy.Max

    def vjp(self, index, G, out):
        # the pooled output goes along: the gradient finds each window's maximum by comparing
        # with it instead of searching the window again (`out` is None inside a larger step)
        return max_pool2d_grad(G, self.args[0], self if out is None else out, self.args[1])


class avg_pool2d(_Pool):
    r"""Average pooling over windows of each map; the gradient is spread evenly over the window."""

    name = "avg_pool2d"
    latex_name = r"\operatorname{avgpool}"
    reduce = _mean

    def vjp(self, index, G, out):
        return avg_pool2d_grad(G, self.args[1])


def _pooled(x, g: Geometry, reduce):
    return [
        reduce(
            *(
                x[(c * g.H + oh * g.sh + i) * g.W + ow * g.sw + j]
                for i in range(g.kh)
                for j in range(g.kw)
            )
        )
        for c in range(g.C)
        for oh in range(g.Ho)
        for ow in range(g.Wo)
    ]


class max_pool2d_grad(_WindowOp):
    r"""The gradient of max pooling: each window's upstream gradient routed to its arg-max.

    Args: G (C·Ho·Wo x N), the pooling's input X and its output Y (the maxima, which the
    NumPy kernel compares with rather than searching each window again), geometry.
    """

    name = "max_pool2d_grad"
    latex_name = r"\operatorname{route}_{\arg\max}"

    @property
    def shape(self):
        return self.args[1].shape

    def explicit(self, G, X, Y, geometry):
        g = Geometry.of(geometry)
        xs, gs = _columns(X, g.C * g.H * g.W), _columns(G, g.C * g.Ho * g.Wo)
        result = []
        for x, grad in zip(xs, gs, strict=True):
            dx = [sympy.S.Zero] * len(x)
            for c in range(g.C):
                for oh in range(g.Ho):
                    for ow in range(g.Wo):
                        window = [
                            (c * g.H + oh * g.sh + i) * g.W + ow * g.sw + j
                            for i in range(g.kh)
                            for j in range(g.kw)
                        ]
                        # the first maximum in row-major order, as the NumPy kernel and PyTorch
                        best = max(window, key=lambda k: (x[k], -k))
                        dx[best] += grad[(c * g.Ho + oh) * g.Wo + ow]
            result.append(dx)
        return ImmutableMatrix(result).T

    def _latex_body(self, printer):
        G, X = (printer._print(a) for a in self.args[:2])
        tex = rf"{self.latex_name}\left({G}; {X}\right)"
        return tex

    def _numpycode(self, printer):
        G, X, Y = (printer._print(a) for a in self.args[:3])
        layout = _pool_layout(self.geometry)
        return f"{_module(printer)}.max_pool2d_columns_grad({G}, {X}, {Y}, {layout})"


class avg_pool2d_grad(_WindowOp):
    r"""The gradient of average pooling: each window's upstream gradient spread evenly."""

    name = "avg_pool2d_grad"
    latex_name = r"\operatorname{spread}_{\mathrm{avg}}"

    @property
    def shape(self):
        g = self.geometry
        return (g.C * g.H * g.W, self.args[0].shape[1])

    def explicit(self, G, geometry):
        g = Geometry.of(geometry)
        result = []
        for grad in _columns(G, g.C * g.Ho * g.Wo):
            dx = [sympy.S.Zero] * (g.C * g.H * g.W)
            for c in range(g.C):
                for oh in range(g.Ho):
                    for ow in range(g.Wo):
                        share = grad[(c * g.Ho + oh) * g.Wo + ow] / (g.kh * g.kw)
                        for i in range(g.kh):
                            for j in range(g.kw):
                                dx[(c * g.H + oh * g.sh + i) * g.W + ow * g.sw + j] += share
            result.append(dx)
        return ImmutableMatrix(result).T

    def _latex_body(self, printer):
        tex = rf"{self.latex_name}\left({printer._print(self.args[0])}\right)"
        return tex

    def _numpycode(self, printer):
        G = printer._print(self.args[0])
        return f"{_module(printer)}.avg_pool2d_columns_grad({G}, {_pool_layout(self.geometry)})"


def _pool_layout(g: Geometry) -> str:
    """NumPy source: the image, window and stride arguments of a column pooling kernel."""
    return f"({g.C}, {g.H}, {g.W}), ({g.kh}, {g.kw}), ({g.sh}, {g.sw})"
