"""The derivation gallery: every entry verified by symdl against an independent reference, its
.tex compiled by pdflatex, its PNG drawn, and docs/gallery/ up to date with the script."""

from __future__ import annotations

import sympy
from sympy import MatrixSymbol

from symdl.export import png_bytes
from symdl.latex import latex
from symdl.nn.ops import Geometry, channel_sum, conv2d, conv2d_input_grad, conv2d_kernel_grad


def test_regression_convolution_gradients_print_one_subscript():
    """The input gradient printed two subscripts (conv_{full}_{s=2,p=1}), which neither
    pdflatex nor mathtext accepts; the bias gradient printed its map count as an argument."""
    g = Geometry(1, 5, 5, 3, 3, 2, 2, 1, 1).as_tuple()
    N = sympy.Symbol("N", integer=True, positive=True)
    X, K, b = MatrixSymbol("X", 25, N), MatrixSymbol("K", 2, 9), MatrixSymbol("b", 2, 1)
    G = MatrixSymbol("G", *conv2d(X, K, b, g).shape)
    full = latex(conv2d_input_grad(G, K, g))
    assert full == (
        r"\operatorname{conv}_{\mathrm{full},s=2,p=1}"
        r"\left(G, \operatorname{rot}_{180}\left(K\right)\right)"
    )
    assert latex(channel_sum(G, 2)) == r"\Sigma_{\text{maps}}\left(G\right)"
    rows = [f"A &= {latex(e)}" for e in (conv2d_input_grad(G, K, g), conv2d_kernel_grad(G, X, g))]
    assert png_bytes(rows).startswith(b"\x89PNG")  # mathtext refuses a double subscript
