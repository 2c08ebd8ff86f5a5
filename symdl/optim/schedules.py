"""Learning-rate schedules: step, exponential, cosine and linear warm-up, each a function of
the number of updates taken and an equation in t."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

import sympy

from symdl.optim.rules import (
    OptimizerError,
    _check_range,
    _sym,
    eta,
    eta_t,
    t,
)


class Schedule(ABC):
    """A learning rate as a function of the number of optimizer steps already taken.

    `schedule(k)` is η for the update that follows `k` earlier updates (0 for the first).
    Schedules count optimizer steps (mini-batches), not epochs.
    """

    @abstractmethod
    def __call__(self, k: int) -> float:
        """η for the update after `k` earlier ones."""

    @abstractmethod
    def equation(self) -> sympy.Eq:
        """The schedule as `Eq(eta_t, expression in t)`, t counting updates from 1."""


def _as_schedule(lr: float | Schedule) -> Schedule:
    if isinstance(lr, Schedule):
        return lr
    return _Constant(_check_range("optimizer", "lr", lr, 0))


class _Constant(Schedule):
    def __init__(self, lr: float):
        self.lr = lr

    def __call__(self, k: int) -> float:
        return self.lr

    def equation(self) -> sympy.Eq:
        return sympy.Eq(eta_t, eta)

    def __repr__(self) -> str:
        return repr(self.lr)


class StepLR(Schedule):
    r"""$\eta_t = \eta\,\gamma^{\lfloor (t-1)/s \rfloor}$: multiply by `gamma` every `step_size` steps.

    >>> [StepLR(1.0, step_size=2, gamma=0.5)(k) for k in range(5)]
    [1.0, 1.0, 0.5, 0.5, 0.25]
    """

    def __init__(self, lr: float, step_size: int, gamma: float = 0.1):
        if not isinstance(step_size, int) or step_size < 1:
            raise OptimizerError(f"StepLR: step_size must be an integer >= 1, got {step_size!r}")
        self.lr, self.step_size = _check_range("StepLR", "lr", lr, 0), step_size
        self.gamma = _check_range("StepLR", "gamma", gamma, 0)

    def __call__(self, k: int) -> float:
        return self.lr * self.gamma ** (k // self.step_size)

    def equation(self) -> sympy.Eq:
        s, gamma = sympy.Symbol("s", positive=True, integer=True), _sym("gamma", positive=True)
        return sympy.Eq(eta_t, eta * gamma ** sympy.floor((t - 1) / s))


class ExponentialLR(Schedule):
    r"""$\eta_t = \eta\,\gamma^{t-1}$.

    >>> ExponentialLR(2.0, gamma=0.5)(3)
    0.25
    """

    def __init__(self, lr: float, gamma: float):
        self.lr = _check_range("ExponentialLR", "lr", lr, 0)
        self.gamma = _check_range("ExponentialLR", "gamma", gamma, 0)

    def __call__(self, k: int) -> float:
        return self.lr * self.gamma**k

    def equation(self) -> sympy.Eq:
        return sympy.Eq(eta_t, eta * _sym("gamma", positive=True) ** (t - 1))


class CosineLR(Schedule):
    r"""Cosine annealing from `lr` to `min_lr` over `total_steps`, then constant at `min_lr`.

    $\eta_t = \eta_{min} + \tfrac12(\eta - \eta_{min})(1 + \cos(\pi (t-1) / T))$ for $t-1 \le T$.

    >>> CosineLR(1.0, total_steps=4)(2)
    0.5
    """

    def __init__(self, lr: float, total_steps: int, min_lr: float = 0.0):
        if not isinstance(total_steps, int) or total_steps < 1:
            raise OptimizerError(
                f"CosineLR: total_steps must be an integer >= 1, got {total_steps!r}"
            )
        self.lr, self.total_steps = _check_range("CosineLR", "lr", lr, 0), total_steps
        self.min_lr = _check_range("CosineLR", "min_lr", min_lr, 0)

    def __call__(self, k: int) -> float:
        k = min(k, self.total_steps)
        cosine = 1 + math.cos(math.pi * k / self.total_steps)
        return self.min_lr + (self.lr - self.min_lr) * cosine / 2

    def equation(self) -> sympy.Eq:
        T, eta_min = sympy.Symbol("T", positive=True, integer=True), _sym("eta_min")
        k = sympy.Min(t - 1, T)
        return sympy.Eq(eta_t, eta_min + (eta - eta_min) * (1 + sympy.cos(sympy.pi * k / T)) / 2)


class LinearWarmup(Schedule):
    r"""Ramp linearly up to `after` over `warmup_steps`, then follow `after` from its start.

    $\eta_t = \tfrac{t}{w}\,\eta^{after}_1$ for $t \le w$, and $\eta^{after}_{t-w}$ afterwards.

    Args:
        after: a number or the Schedule that takes over after the warm-up.
        warmup_steps: w, the number of warm-up updates (the w-th uses the full rate).

    >>> [round(LinearWarmup(1.0, 4)(k), 2) for k in range(6)]
    [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    >>> [LinearWarmup(StepLR(1.0, 1, 0.5), 2)(k) for k in range(5)]
    [0.5, 1.0, 1.0, 0.5, 0.25]
    """

    def __init__(self, after: float | Schedule, warmup_steps: int):
        if not isinstance(warmup_steps, int) or warmup_steps < 1:
            raise OptimizerError(
                f"LinearWarmup: warmup_steps must be an integer >= 1, got {warmup_steps!r}"
            )
        self.after, self.warmup_steps = _as_schedule(after), warmup_steps

    def __call__(self, k: int) -> float:
        if k < self.warmup_steps:
            return self.after(0) * (k + 1) / self.warmup_steps
        return self.after(k - self.warmup_steps)

    def equation(self) -> sympy.Eq:
        w = sympy.Symbol("w", positive=True, integer=True)
        rhs = self.after.equation().rhs
        return sympy.Eq(
            eta_t, sympy.Piecewise((rhs.subs(t, 1) * t / w, t <= w), (rhs.subs(t, t - w), True))
        )


# ---------------------------------------------------------------- optimizers
