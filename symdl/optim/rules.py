"""The vocabulary of update rules: the symbols of `equations()`, unevaluated arithmetic
that prints in textbook order, and the checks of hyper-parameters."""

from __future__ import annotations

import math

import sympy


class OptimizerError(ValueError):
    """A hyper-parameter out of range, or parameters and gradients that do not match."""


def _sym(name: str, **assumptions) -> sympy.Symbol:
    return sympy.Symbol(name, real=True, **assumptions)


# The names below are the vocabulary of `equations()`: a buffer `k` of the state dict is the
# pair of symbols `k_t` (after the step) and `k_t-1` (before it).
t = sympy.Symbol("t", integer=True, positive=True)
eta, eta_t = _sym("eta", positive=True), _sym("eta_t", positive=True)
beta_1, beta_2 = _sym("beta_1", positive=True), _sym("beta_2", positive=True)
epsilon, lam = _sym("epsilon", positive=True), _sym("lambda", nonnegative=True)
mu, alpha, delta = _sym("mu", nonnegative=True), _sym("alpha", positive=True), _sym("delta")


def _now(name: str) -> sympy.Symbol:
    return _sym(f"{name}_t")


def _before(name: str) -> sympy.Symbol:
    return _sym(f"{name}_t-1")


# Update rules are built unevaluated so that they print in textbook order
# (`to_latex` prints with order="none"); they evaluate numerically all the same.
def _add(*terms) -> sympy.Expr:
    return sympy.Add(*terms, evaluate=False)


def _mul(*factors) -> sympy.Expr:
    return sympy.Mul(*factors, evaluate=False)


def _sub(a, b) -> sympy.Expr:
    return _add(a, _mul(-1, b))


def _average(rate, old, new) -> sympy.Expr:
    """The exponential moving average `rate * old + (1 - rate) * new`."""
    return _add(_mul(rate, old), _mul(1 - rate, new))


def _scaled(g, second_moment) -> sympy.Expr:
    return g / _add(sympy.sqrt(second_moment), epsilon)


def _check_range(
    owner: str, name: str, value, low: float, high: float | None = None, *, upper_open=True
) -> float:
    ok = isinstance(value, int | float) and math.isfinite(value) and value >= low
    if ok and high is not None:
        ok = value < high if upper_open else value <= high
    if not ok:
        bound = "" if high is None else f" and {'<' if upper_open else '<='} {high}"
        raise OptimizerError(f"{owner}: {name} must be a number >= {low}{bound}, got {value!r}")
    return float(value)
