r"""Convolution and pooling as symdl matrix ops, with their vector-Jacobian rules.

A batch of feature maps is a matrix with one example per column, each column the maps
flattened channel by channel (C·H·W rows), so these ops compose with every other matrix
expression. 1-D layers are the 2-D ops on a height of 1. The rules are the textbook ones:
the kernel gradient correlates the input with the upstream gradient, the input gradient is the
full convolution of the upstream gradient with the flipped kernel, and max pooling routes the
gradient to the arg-max of each window.
"""

from __future__ import annotations

from typing import ClassVar, NamedTuple

import sympy
from sympy import ImmutableMatrix, Integer, Tuple
from sympy.matrices.expressions import MatrixExpr, MatrixSymbol

from symdl.ops.matrix import MatrixOp


class Geometry(NamedTuple):
    """Sizes of a window operation: input C x H x W, window kh x kw, stride, zero padding."""

    C: int
    H: int
    W: int
    kh: int
    kw: int
    sh: int = 1
    sw: int = 1
    ph: int = 0
    pw: int = 0

    @property
    def Ho(self) -> int:
        return (self.H + 2 * self.ph - self.kh) // self.sh + 1

    @property
    def Wo(self) -> int:
        return (self.W + 2 * self.pw - self.kw) // self.sw + 1

    def as_tuple(self) -> Tuple:
        return Tuple(*(Integer(v) for v in self))

    @classmethod
    def of(cls, args: Tuple) -> Geometry:
        return cls(*(int(v) for v in args))

    def describe(self) -> str:
        parts = []
        if (self.sh, self.sw) != (1, 1):
            parts.append(f"s={self.sh}" if self.sh == self.sw else f"s=({self.sh},{self.sw})")
        if (self.ph, self.pw) != (0, 0):
            parts.append(f"p={self.ph}" if self.ph == self.pw else f"p=({self.ph},{self.pw})")
        return ",".join(parts)


def _columns(M, rows_per_example: int):
    """The examples (columns) of explicit matrix M as lists of entries."""
    return [[M[i, n] for i in range(rows_per_example)] for n in range(M.shape[1])]


def _module(printer) -> str:
    return printer._module_format("symdl.nn.kernels")


def columns(images):
    """An (N, ...) array of images as a matrix with one flattened image per column."""
    return images.reshape(images.shape[0], -1).T


def _images(printer, X, shape: str) -> str:
    """NumPy source: the columns of matrix X as an (N, ...) array of images."""
    return f"({printer._print(X)}).T.reshape({shape})"


def _matrix(code: str, printer) -> str:
    """NumPy source: an (N, ...) array back to one flattened example per column."""
    return f"{printer._module_format('symdl.nn.ops.columns')}({code})"


# the examples below feed the test that checks every op's vector-Jacobian rule against
# sympy.diff of its explicit form: Trace(Cᵀ op(...)) is a scalar whose gradient is the rule
# applied to C
_EXAMPLE_CONV = Geometry(C=2, H=4, W=3, kh=2, kw=2, sh=2, sw=1, ph=1, pw=0)  # Ho 3, Wo 2
_EXAMPLE_POOL = Geometry(C=1, H=4, W=3, kh=2, kw=2, sh=2, sw=1)  # Ho 2, Wo 2
_UNIT = (-1.0, 1.0)


def _example(op, wrt):
    C = MatrixSymbol("C", *op.shape)
    return sympy.Trace(C.T * op), list(wrt), {m: _UNIT for m in (*wrt, C)}


def _batch(rows: int, name: str = "X"):
    return MatrixSymbol(name, rows, 2)


class _WindowOp(MatrixOp):
    @property
    def geometry(self) -> Geometry:
        return Geometry.of(self.args[-1])

    def _subscript(self, *first: str) -> str:
        """One subscript for the name's own marks and the geometry (two would not compile)."""
        text = ",".join(part for part in (*first, self.geometry.describe()) if part)
        return f"_{{{text}}}" if text else ""


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

    def _latex(self, printer, exp=None):
        X, K, b, _ = (printer._print(a) for a in self.args)
        tex = rf"\left({K} \star{self._subscript()} {X} + {b}\right)"
        return rf"{tex}^{{{exp}}}" if exp is not None else tex

    def _numpycode(self, printer):
        X, K, b, _ = self.args
        g = self.geometry
        images = _images(printer, X, f"-1, {g.C}, {g.H}, {g.W}")
        kernel = f"({printer._print(K)}).reshape({K.shape[0]}, {g.C}, {g.kh}, {g.kw})"
        y = f"{_module(printer)}.conv2d({images}, {kernel}, ({g.sh}, {g.sw}), ({g.ph}, {g.pw}))"
        bias = (
            f"{printer._module_format('numpy.repeat')}({printer._print(b)}, {g.Ho * g.Wo}, axis=0)"
        )
        return f"({_matrix(y, printer)} + {bias})"


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

    def _latex(self, printer, exp=None):
        G, K, _ = (printer._print(a) for a in self.args)
        sub = self._subscript(r"\mathrm{full}")
        tex = (
            rf"{self.latex_name}{sub}\left({G}, \operatorname{{rot}}_{{180}}\left({K}\right)\right)"
        )
        return rf"\left({tex}\right)^{{{exp}}}" if exp is not None else tex

    def _numpycode(self, printer):
        G, K, _ = self.args
        g = self.geometry
        F = K.shape[0]
        grad = _images(printer, G, f"-1, {F}, {g.Ho}, {g.Wo}")
        kernel = f"({printer._print(K)}).reshape({F}, {g.C}, {g.kh}, {g.kw})"
        shape = f"(({printer._print(G)}).shape[1], {g.C}, {g.H}, {g.W})"
        call = (
            f"{_module(printer)}.conv2d_grad_input({grad}, {kernel}, {shape}, "
            f"({g.sh}, {g.sw}), ({g.ph}, {g.pw}))"
        )
        return _matrix(call, printer)


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

    def _latex(self, printer, exp=None):
        G, X, _ = (printer._print(a) for a in self.args)
        tex = rf"{self.latex_name}{self._subscript()}\left({X}, {G}\right)"
        return rf"\left({tex}\right)^{{{exp}}}" if exp is not None else tex

    def _numpycode(self, printer):
        G, X, _ = self.args
        g = self.geometry
        F = self.shape[0]
        grad = _images(printer, G, f"-1, {F}, {g.Ho}, {g.Wo}")
        images = _images(printer, X, f"-1, {g.C}, {g.H}, {g.W}")
        call = (
            f"{_module(printer)}.conv2d_grad_kernel({grad}, {images}, ({F}, {g.C}, {g.kh}, {g.kw}), "
            f"({g.sh}, {g.sw}), ({g.ph}, {g.pw}))"
        )
        return f"({call}).reshape({F}, -1)"


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

    def _latex(self, printer, exp=None):
        tex = rf"{self.latex_name}\left({printer._print(self.args[0])}\right)"  # F is in G's shape
        return rf"\left({tex}\right)^{{{exp}}}" if exp is not None else tex

    def _numpycode(self, printer):
        G, F = printer._print(self.args[0]), int(self.args[1])
        return f"({G}).reshape({F}, -1).sum(axis=1, keepdims=True)"


class map_reduce(MatrixOp):
    r"""Per map: the rows of each of the $C$ maps of $A$ (C·P x M, P positions per map)
    summed, giving C x M; its adjoint is map_repeat."""

    name = "map_reduce"
    latex_name = r"\Sigma_{\text{positions}}"

    @property
    def shape(self):
        A, P = self.args
        return (A.shape[0] // P, A.shape[1])

    @classmethod
    def example(cls):
        A = MatrixSymbol("A", 6, 2)
        return _example(cls(A, Integer(3)), wrt=[A])

    def explicit(self, A, P):
        P = int(P)
        return ImmutableMatrix(
            A.shape[0] // P,
            A.shape[1],
            lambda c, n: sympy.Add(*(A[c * P + p, n] for p in range(P))),
        )

    def vjp(self, index, G, out):
        return map_repeat(G, self.args[1])

    def _latex(self, printer, exp=None):
        tex = rf"{self.latex_name}\left({printer._print(self.args[0])}\right)"
        return rf"\left({tex}\right)^{{{exp}}}" if exp is not None else tex

    def _numpycode(self, printer):
        A, P = printer._print(self.args[0]), int(self.args[1])
        C = self.shape[0]
        return f"({A}).reshape({C}, {P}, -1).sum(axis=1)"


class map_repeat(MatrixOp):
    r"""Per map: each row of $v$ (C x M) repeated for the P positions of its map, giving
    C·P x M (a per-channel value spread over an image); its adjoint is map_reduce."""

    name = "map_repeat"
    latex_name = r"\operatorname{expand}"

    @property
    def shape(self):
        v, P = self.args
        return (v.shape[0] * P, v.shape[1])

    @classmethod
    def example(cls):
        v = MatrixSymbol("v", 2, 2)
        return _example(cls(v, Integer(3)), wrt=[v])

    def explicit(self, v, P):
        P = int(P)
        return ImmutableMatrix(v.shape[0] * P, v.shape[1], lambda r, n: v[r // P, n])

    def vjp(self, index, G, out):
        return map_reduce(G, self.args[1])

    _latex = map_reduce._latex

    def _numpycode(self, printer):
        v, P = printer._print(self.args[0]), int(self.args[1])
        return f"{printer._module_format('numpy.repeat')}({v}, {P}, axis=0)"


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

    def _latex(self, printer, exp=None):
        g = self.geometry
        window = rf"{g.kh}\times{g.kw}" + (f",{g.describe()}" if g.describe() else "")
        tex = rf"{self.latex_name}_{{{window}}}\left({printer._print(self.args[0])}\right)"
        return rf"\left({tex}\right)^{{{exp}}}" if exp is not None else tex

    def _numpycode(self, printer):
        g = self.geometry
        images = _images(printer, self.args[0], f"-1, {g.C}, {g.H}, {g.W}")
        window = f"({g.kh}, {g.kw}), ({g.sh}, {g.sw})"
        return _matrix(f"{_module(printer)}.{self.name}({images}, {window})", printer)


class max_pool2d(_Pool):
    r"""Max pooling over windows (kh x kw, stride) of each map; the gradient goes to the arg-max."""

    name = "max_pool2d"
    latex_name = r"\operatorname{maxpool}"
    reduce = sympy.Max

    def vjp(self, index, G, out):
        return max_pool2d_grad(G, self.args[0], self.args[1])


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
    r"""The gradient of max pooling: each window's upstream gradient routed to its arg-max."""

    name = "max_pool2d_grad"
    latex_name = r"\operatorname{route}_{\arg\max}"

    @property
    def shape(self):
        return self.args[1].shape

    def explicit(self, G, X, geometry):
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

    def _latex(self, printer, exp=None):
        G, X, _ = (printer._print(a) for a in self.args)
        tex = rf"{self.latex_name}\left({G}; {X}\right)"
        return rf"\left({tex}\right)^{{{exp}}}" if exp is not None else tex

    def _numpycode(self, printer):
        G, X, _ = self.args
        g = self.geometry
        grad = _images(printer, G, f"-1, {g.C}, {g.Ho}, {g.Wo}")
        images = _images(printer, X, f"-1, {g.C}, {g.H}, {g.W}")
        call = f"{_module(printer)}.max_pool2d_grad({grad}, {images}, ({g.kh}, {g.kw}), ({g.sh}, {g.sw}))"
        return _matrix(call, printer)


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

    def _latex(self, printer, exp=None):
        tex = rf"{self.latex_name}\left({printer._print(self.args[0])}\right)"
        return rf"\left({tex}\right)^{{{exp}}}" if exp is not None else tex

    def _numpycode(self, printer):
        G, _ = self.args
        g = self.geometry
        grad = _images(printer, G, f"-1, {g.C}, {g.Ho}, {g.Wo}")
        shape = f"(({printer._print(G)}).shape[1], {g.C}, {g.H}, {g.W})"
        call = f"{_module(printer)}.avg_pool2d_grad({grad}, {shape}, ({g.kh}, {g.kw}), ({g.sh}, {g.sw}))"
        return _matrix(call, printer)


def is_window_op(expr: MatrixExpr) -> bool:
    return isinstance(expr, _WindowOp)


class mean(MatrixOp):
    r"""The mean of each row (axis 1: over the batch, a column vector) or of each column
    (axis 0: over the features, a row vector) of a matrix."""

    name = "mean"

    @property
    def axis(self) -> int:
        return int(self.args[1])

    @property
    def shape(self):
        rows, cols = self.args[0].shape
        return (rows, sympy.S.One) if self.axis == 1 else (sympy.S.One, cols)

    @classmethod
    def example(cls):
        A, R, S = MatrixSymbol("A", 3, 2), MatrixSymbol("R", 3, 1), MatrixSymbol("S", 1, 2)
        f = sympy.Trace(R.T * cls(A, Integer(1))) + sympy.Trace(S.T * cls(A, Integer(0)))
        return f, [A], {A: _UNIT, R: _UNIT, S: _UNIT}

    def explicit(self, A, axis):
        if int(axis) == 1:
            return ImmutableMatrix([[sympy.Add(*A.row(i)) / A.shape[1]] for i in range(A.shape[0])])
        return ImmutableMatrix([[sympy.Add(*A.col(j)) / A.shape[0] for j in range(A.shape[1])]])

    def vjp(self, index, G, out):
        from sympy.matrices.expressions import OneMatrix

        from symdl.ops.matrix import scale

        rows, cols = self.args[0].shape
        if self.axis == 1:  # every entry of a row shares its mean: G 1ᵀ / N
            return scale(1 / cols, G * OneMatrix(1, cols))
        return scale(1 / rows, OneMatrix(rows, 1) * G)

    def _latex(self, printer, exp=None):
        over = r"\text{batch}" if self.axis == 1 else r"\text{features}"
        tex = rf"\operatorname{{mean}}_{{{over}}}\left({printer._print(self.args[0])}\right)"
        return rf"\left({tex}\right)^{{{exp}}}" if exp is not None else tex

    def _sympystr(self, printer):
        return f"mean({printer._print(self.args[0])}, axis={self.axis})"

    def _numpycode(self, printer):
        return f"({printer._print(self.args[0])}).mean(axis={self.axis}, keepdims=True)"
