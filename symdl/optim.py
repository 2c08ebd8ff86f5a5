"""Optimizers (SGD, Adam, AdamW, Adagrad, RMSProp) and learning-rate schedules.

Each optimizer updates a dict of NumPy arrays in place and states its update rule as SymPy
equations, so the rule that trains is the rule that prints.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import ClassVar

import numpy as np
import sympy

__all__ = [
    "SGD",
    "Adagrad",
    "Adam",
    "AdamW",
    "CosineLR",
    "ExponentialLR",
    "LinearWarmup",
    "Optimizer",
    "OptimizerError",
    "RMSProp",
    "RMSprop",
    "Schedule",
    "StepLR",
]


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


# ---------------------------------------------------------------- schedules


class Schedule:
    """A learning rate as a function of the number of optimizer steps already taken.

    `schedule(k)` is η for the update that follows `k` earlier updates (0 for the first).
    Schedules count optimizer steps (mini-batches), not epochs.
    """

    def __call__(self, k: int) -> float:
        raise NotImplementedError

    def equation(self) -> sympy.Eq:
        """The schedule as `Eq(eta_t, expression in t)`, t counting updates from 1."""
        raise NotImplementedError


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


class Optimizer:
    """An update rule over a dict of NumPy arrays, with its state and its equations.

    `step(params, grads)` updates `params` IN PLACE (each array is modified; the dict keeps its
    arrays) and returns None. Per-parameter buffers (e.g. Adam's m and v) are created on the
    first step, zero unless stated otherwise.
    """

    buffers: ClassVar[tuple[str, ...]] = ()

    def __init__(self, lr: float | Schedule, weight_decay: float = 0.0):
        self.schedule = _as_schedule(lr)
        self.weight_decay = _check_range(type(self).__name__, "weight_decay", weight_decay, 0)
        self.steps = 0
        self.state: dict[str, dict[str, np.ndarray]] = {}

    @property
    def lr(self) -> float:
        """The learning rate of the next update."""
        return self.schedule(self.steps)

    def step(self, params: dict[str, np.ndarray], grads: Mapping[str, np.ndarray]) -> None:
        """Apply one update to every array in `params`, in place.

        Raises:
            OptimizerError: a parameter without gradient, shapes that differ, or an array that
                cannot be updated in place (not floating point).
        """
        _check_params(type(self).__name__, params, grads)
        lr = self.lr
        self.steps += 1
        for name, p in params.items():
            self._update(name, p, np.asarray(grads[name], dtype=p.dtype), lr)

    def _update(self, name: str, p: np.ndarray, g: np.ndarray, lr: float) -> None:
        raise NotImplementedError

    def _buffer(self, kind: str, name: str, like: np.ndarray, fill: float = 0.0) -> np.ndarray:
        store = self.state.setdefault(kind, {})
        if name not in store:
            store[name] = np.full_like(like, fill)
        return store[name]

    def _decayed(self, p: np.ndarray, g: np.ndarray) -> np.ndarray:
        """The gradient with L2 weight decay folded in (coupled decay, as PyTorch does)."""
        return g + self.weight_decay * p if self.weight_decay else g

    def state_dict(self) -> dict[str, np.ndarray]:
        """Copies of the step count (key "step") and every buffer (key "kind/name").

        The result holds NumPy arrays only, so `np.savez(file, **opt.state_dict())` stores it.
        """
        state = {"step": np.asarray(self.steps, dtype=np.int64)}
        for kind, store in self.state.items():
            state |= {f"{kind}/{name}": a.copy() for name, a in store.items()}
        return state

    def load_state_dict(self, state: Mapping[str, np.ndarray]) -> None:
        """Restore what `state_dict()` returned (a dict, or the arrays loaded from an .npz).

        Raises:
            OptimizerError: a key that is neither "step" nor a buffer of this optimizer.
        """
        if "step" not in state:
            raise OptimizerError(f"{type(self).__name__}.load_state_dict: no 'step' entry")
        buffers: dict[str, dict[str, np.ndarray]] = {b: {} for b in self.buffers}
        for key in state:
            if key == "step":
                continue
            kind, _, name = key.partition("/")
            if kind not in buffers or not name:
                raise OptimizerError(
                    f"{type(self).__name__}.load_state_dict: unexpected entry {key!r}; "
                    f"expected 'step' or one of {', '.join(f'{b}/<name>' for b in self.buffers)}"
                    " (was the state saved by another optimizer?)"
                )
            buffers[kind][name] = np.array(state[key], copy=True)
        self.steps, self.state = int(state["step"]), buffers

    def equations(self) -> list[sympy.Eq]:
        """The update rule of one step as equations, in the order they are evaluated.

        The gradient is `g_t`, the parameter `theta_t-1` before and `theta_t` after the step,
        each buffer `k` is `k_t-1` before and `k_t` after; hyper-parameters are symbols
        (`eta`, `beta_1`, `beta_2`, `epsilon`, `lambda`, `mu`, `alpha`, `delta`; values in
        `hyperparameters()`), `t` counts steps from 1.
        """
        raise NotImplementedError

    def hyperparameters(self) -> dict[sympy.Symbol, float]:
        """The value of each hyper-parameter symbol of `equations()` (η as of the next step)."""
        return {eta: self.lr}

    def to_latex(self) -> str:
        r"""The update rule as a LaTeX `aligned` block, one equation per line."""
        lines = [
            rf"{sympy.latex(e.lhs)} &= {sympy.latex(e.rhs, order='none')}" for e in self.equations()
        ]
        return "\\begin{aligned}\n" + " \\\\\n".join(lines) + "\n\\end{aligned}"

    def _gradient_equations(self) -> tuple[list[sympy.Eq], sympy.Symbol]:
        g = _now("g")
        if not self.weight_decay:
            return [], g
        return [sympy.Eq(_now("gtilde"), _add(g, _mul(lam, _before("theta"))))], _now("gtilde")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(lr={self.schedule!r})"


class SGD(Optimizer):
    r"""Stochastic gradient descent, with optional (Nesterov) momentum and L2 weight decay.

    $b_t = \mu b_{t-1} + g_t$, $\theta_t = \theta_{t-1} - \eta b_t$ (Nesterov:
    $\theta_t = \theta_{t-1} - \eta (g_t + \mu b_t)$); defaults as ``torch.optim.SGD``.

    >>> p = {"w": np.array([1.0, 2.0])}
    >>> SGD(lr=0.5).step(p, {"w": np.array([2.0, -2.0])})
    >>> p["w"]
    array([0., 3.])
    """

    def __init__(
        self,
        lr: float | Schedule = 1e-3,
        momentum: float = 0.0,
        nesterov: bool = False,
        weight_decay: float = 0.0,
    ):
        super().__init__(lr, weight_decay)
        self.momentum = _check_range("SGD", "momentum", momentum, 0, 1, upper_open=False)
        if nesterov and not momentum:
            raise OptimizerError("SGD: nesterov=True needs momentum > 0")
        self.nesterov = nesterov

    @property
    def buffers(self) -> tuple[str, ...]:
        return ("b",) if self.momentum else ()

    def _update(self, name, p, g, lr):
        g = self._decayed(p, g)
        if self.momentum:
            b = self._buffer("b", name, p)
            b *= self.momentum
            b += g
            g = g + self.momentum * b if self.nesterov else b
        p -= lr * g

    def equations(self):
        eqs, g = self._gradient_equations()
        theta, theta_prev = _now("theta"), _before("theta")
        if not self.momentum:
            return [*eqs, sympy.Eq(theta, _sub(theta_prev, _mul(eta, g)))]
        b = _now("b")
        direction = _add(g, _mul(mu, b)) if self.nesterov else b
        return [
            *eqs,
            sympy.Eq(b, _add(_mul(mu, _before("b")), g)),
            sympy.Eq(theta, _sub(theta_prev, _mul(eta, direction))),
        ]

    def hyperparameters(self):
        return super().hyperparameters() | {lam: self.weight_decay, mu: self.momentum}


class Adam(Optimizer):
    r"""Adam (Kingma & Ba, 2015) with bias correction and optional coupled L2 weight decay.

    $m_t = \beta_1 m_{t-1} + (1-\beta_1) g_t$, $v_t = \beta_2 v_{t-1} + (1-\beta_2) g_t^2$,
    $\theta_t = \theta_{t-1} - \eta\,\hat m_t / (\sqrt{\hat v_t} + \epsilon)$;
    defaults as ``torch.optim.Adam``.
    """

    buffers = ("m", "v")

    def __init__(
        self,
        lr: float | Schedule = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ):
        super().__init__(lr, weight_decay)
        name = type(self).__name__
        self.betas = (
            _check_range(name, "betas[0]", betas[0], 0, 1),
            _check_range(name, "betas[1]", betas[1], 0, 1),
        )
        self.eps = _check_range(name, "eps", eps, 0)

    def _update(self, name, p, g, lr):
        b1, b2 = self.betas
        g = self._adam_gradient(p, g, lr)
        m, v = self._buffer("m", name, p), self._buffer("v", name, p)
        m *= b1
        m += (1 - b1) * g
        v *= b2
        v += (1 - b2) * g * g
        bias1, bias2 = 1 - b1**self.steps, 1 - b2**self.steps
        p -= (lr / bias1) * (m / (np.sqrt(v) / math.sqrt(bias2) + self.eps))

    def _adam_gradient(self, p, g, lr):
        return self._decayed(p, g)

    def equations(self):
        eqs, g = self._gradient_equations()
        m, v, mhat, vhat = _now("m"), _now("v"), _now("mhat"), _now("vhat")
        return [
            *eqs,
            sympy.Eq(m, _average(beta_1, _before("m"), g)),
            sympy.Eq(v, _average(beta_2, _before("v"), g**2)),
            sympy.Eq(mhat, m / (1 - beta_1**t)),
            sympy.Eq(vhat, v / (1 - beta_2**t)),
            sympy.Eq(_now("theta"), self._theta_rhs(_scaled(mhat, vhat))),
        ]

    def _theta_rhs(self, direction):
        return _sub(_before("theta"), _mul(eta, direction))

    def hyperparameters(self):
        return super().hyperparameters() | {
            beta_1: self.betas[0],
            beta_2: self.betas[1],
            epsilon: self.eps,
            lam: self.weight_decay,
        }


class AdamW(Adam):
    r"""Adam with decoupled weight decay (Loshchilov & Hutter, 2019).

    $\theta_t = \theta_{t-1} - \eta\,(\hat m_t / (\sqrt{\hat v_t} + \epsilon) +
    \lambda\theta_{t-1})$; defaults as ``torch.optim.AdamW`` (weight_decay 0.01).
    """

    def __init__(
        self,
        lr: float | Schedule = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
    ):
        super().__init__(lr, betas, eps, weight_decay)

    def _adam_gradient(self, p, g, lr):
        if self.weight_decay:
            p *= 1 - lr * self.weight_decay
        return g

    def _gradient_equations(self):
        return [], _now("g")

    def _theta_rhs(self, direction):
        theta_prev = _before("theta")
        if not self.weight_decay:
            return _sub(theta_prev, _mul(eta, direction))
        return _sub(theta_prev, _mul(eta, _add(direction, _mul(lam, theta_prev))))


class Adagrad(Optimizer):
    r"""Adagrad (Duchi et al., 2011): $s_t = s_{t-1} + g_t^2$,
    $\theta_t = \theta_{t-1} - \eta_t\, g_t / (\sqrt{s_t} + \epsilon)$.

    With `lr_decay` δ the rate is $\eta / (1 + (t-1)\delta)$; `initial_accumulator_value` is
    $s_0$. Defaults as ``torch.optim.Adagrad``.
    """

    buffers = ("s",)

    def __init__(
        self,
        lr: float | Schedule = 1e-2,
        lr_decay: float = 0.0,
        weight_decay: float = 0.0,
        initial_accumulator_value: float = 0.0,
        eps: float = 1e-10,
    ):
        super().__init__(lr, weight_decay)
        self.lr_decay = _check_range("Adagrad", "lr_decay", lr_decay, 0)
        self.initial_accumulator_value = _check_range(
            "Adagrad", "initial_accumulator_value", initial_accumulator_value, 0
        )
        self.eps = _check_range("Adagrad", "eps", eps, 0)

    def _update(self, name, p, g, lr):
        g = self._decayed(p, g)
        s = self._buffer("s", name, p, self.initial_accumulator_value)
        s += g * g
        clr = lr / (1 + (self.steps - 1) * self.lr_decay)
        p -= clr * (g / (np.sqrt(s) + self.eps))

    def equations(self):
        eqs, g = self._gradient_equations()
        s = _now("s")
        rate = eta / _add(1, _mul(delta, _add(t, -1))) if self.lr_decay else eta
        return [
            *eqs,
            sympy.Eq(s, _add(_before("s"), g**2)),
            sympy.Eq(_now("theta"), _sub(_before("theta"), _mul(rate, _scaled(g, s)))),
        ]

    def hyperparameters(self):
        return super().hyperparameters() | {
            epsilon: self.eps,
            lam: self.weight_decay,
            delta: self.lr_decay,
        }


class RMSProp(Optimizer):
    r"""RMSProp (Tieleman & Hinton, 2012): $v_t = \alpha v_{t-1} + (1-\alpha) g_t^2$,
    $\theta_t = \theta_{t-1} - \eta\, g_t / (\sqrt{v_t} + \epsilon)$.

    `centered` divides by the estimated standard deviation $\sqrt{v_t - \bar g_t^2}$ instead;
    `momentum` μ accumulates $b_t = \mu b_{t-1} + g_t / (\ldots)$ and steps by $\eta b_t$.
    Defaults as ``torch.optim.RMSprop``.
    """

    def __init__(
        self,
        lr: float | Schedule = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum: float = 0.0,
        centered: bool = False,
    ):
        super().__init__(lr, weight_decay)
        self.alpha = _check_range("RMSProp", "alpha", alpha, 0, 1, upper_open=False)
        self.eps = _check_range("RMSProp", "eps", eps, 0)
        self.momentum = _check_range("RMSProp", "momentum", momentum, 0)
        self.centered = centered

    @property
    def buffers(self) -> tuple[str, ...]:
        return ("v",) + (("gbar",) if self.centered else ()) + (("b",) if self.momentum else ())

    def _update(self, name, p, g, lr):
        a = self.alpha
        g = self._decayed(p, g)
        v = self._buffer("v", name, p)
        v *= a
        v += (1 - a) * g * g
        if self.centered:
            gbar = self._buffer("gbar", name, p)
            gbar *= a
            gbar += (1 - a) * g
            denominator = np.sqrt(v - gbar * gbar) + self.eps
        else:
            denominator = np.sqrt(v) + self.eps
        if self.momentum:
            b = self._buffer("b", name, p)
            b *= self.momentum
            b += g / denominator
            p -= lr * b
        else:
            p -= lr * (g / denominator)

    def equations(self):
        eqs, g = self._gradient_equations()
        v = _now("v")
        eqs.append(sympy.Eq(v, _average(alpha, _before("v"), g**2)))
        if self.centered:
            gbar = _now("gbar")
            eqs.append(sympy.Eq(gbar, _average(alpha, _before("gbar"), g)))
            scaled = _scaled(g, _sub(v, gbar**2))
        else:
            scaled = _scaled(g, v)
        if self.momentum:
            eqs.append(sympy.Eq(_now("b"), _add(_mul(mu, _before("b")), scaled)))
            scaled = _now("b")
        return [*eqs, sympy.Eq(_now("theta"), _sub(_before("theta"), _mul(eta, scaled)))]

    def hyperparameters(self):
        return super().hyperparameters() | {
            alpha: self.alpha,
            epsilon: self.eps,
            lam: self.weight_decay,
            mu: self.momentum,
        }


RMSprop = RMSProp  # PyTorch's spelling


# ---------------------------------------------------------------- checks


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


def _check_params(owner: str, params: dict, grads: Mapping) -> None:
    for name, p in params.items():
        if name not in grads:
            raise OptimizerError(f"{owner}.step: parameter {name!r} has no gradient in grads")
        g = grads[name]
        g_shape = g.shape if isinstance(g, np.ndarray) else np.shape(g)
        if not isinstance(p, np.ndarray) or p.dtype.kind != "f":  # (issubdtype costs 1 us)
            raise OptimizerError(
                f"{owner}.step: parameter {name!r} must be a floating-point NumPy array to be "
                f"updated in place, got {type(p).__name__} {getattr(p, 'dtype', '')}".rstrip()
            )
        if g_shape != p.shape:
            raise OptimizerError(
                f"{owner}.step: gradient of {name!r} has shape {g_shape} but the parameter "
                f"has shape {p.shape}"
            )
