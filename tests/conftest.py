"""Shared test helpers: numeric evaluation of SymPy expressions that contain symdl ops."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest
import sympy

from symdl.compile.codegen import SymdlNumPyPrinter
from symdl.ops import elementary


def optional(module: str):
    """The optional `module` (torch, jax), or None when it is not installed: the tests that need
    it carry `needs(module)` and skip, and the rest of their file still runs."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError:
        return None


def needs(module, name: str):
    """A mark that skips a test when the optional module `name` (from `optional`) is missing."""
    return pytest.mark.skipif(
        module is None, reason=f"{name} is not installed: pip install symdl[export]"
    )


def fuzz_script():
    """scripts/fuzz.py as the module `fuzz`: its random DAGs and matrix expressions are the ones
    tests/test_fuzz.py and tests/core/test_jacobian_hessian.py draw from."""
    if "fuzz" not in sys.modules:
        path = Path(__file__).resolve().parents[1] / "scripts" / "fuzz.py"
        spec = importlib.util.spec_from_file_location("fuzz", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules["fuzz"] = module  # dataclasses look their module up
        spec.loader.exec_module(module)
    return sys.modules["fuzz"]


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
