"""Shared test helpers: numeric evaluation of SymPy expressions that contain symdl ops."""

from __future__ import annotations

import numpy as np
import pytest
import sympy

from symdl.compile.codegen import SymdlNumPyPrinter
from symdl.ops import elementary


def expand_ops(expr):
    """`expr` with every symdl op replaced by its elementary definition (the reference)."""
    return elementary(expr)


def evaluate(expr, point: dict) -> float:
    """`expr` at `point` through NumPy (ops print their own NumPy forms)."""
    symbols = sorted(point, key=str)
    f = sympy.lambdify(symbols, expr, modules=["scipy", "numpy"], printer=SymdlNumPyPrinter)
    with np.errstate(all="ignore"):
        return float(np.asarray(f(*(point[s] for s in symbols)), dtype=float))


def evaluate_exact(expr, point: dict) -> float:
    """`expr` at `point` by SymPy's arbitrary-precision evalf of the elementary definitions."""
    value = expand_ops(expr).evalf(30, subs=point)
    return float(value)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
