"""Optimizers that update a dict of NumPy arrays in place and state their update rule as
SymPy equations: SGD (momentum, Nesterov), Adam, AdamW, Adagrad, RMSProp."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import ClassVar

import numpy as np
import sympy

from symdl.optim.rules import (
    OptimizerError,
    _add,
    _average,
    _before,
    _check_range,
    _mul,
    _now,
    _scaled,
    _sub,
    alpha,
    beta_1,
    beta_2,
    delta,
    epsilon,
    eta,
    lam,
    mu,
    t,
)
from symdl.optim.schedules import Schedule, _as_schedule

_REGISTERED: dict[str, type[Optimizer]] = {}


def registered() -> dict[str, type[Optimizer]]:
    """Every optimizer class by its lowercase name ("adam"): a subclass of Optimizer joins by
    being declared, and `symdl train --optimizer NAME` finds it here."""
    return dict(_REGISTERED)


def get_optimizer(name: str) -> type[Optimizer]:
    """The optimizer class registered as `name` (any case).

    Raises:
        OptimizerError: no optimizer has that name; the message lists the known ones.
    """
    cls = _REGISTERED.get(name.lower())
    if cls is None:
        raise OptimizerError(
            f"unknown optimizer {name!r}; the known ones are {', '.join(sorted(_REGISTERED))}"
        )
    return cls


class Optimizer(ABC):
    """An update rule over a dict of NumPy arrays, with its state and its equations.

    `step(params, grads)` updates `params` IN PLACE (each array is modified; the dict keeps its
    arrays) and returns None. Per-parameter buffers (e.g. Adam's m and v) are created on the
    first step, zero unless stated otherwise.
    """

    buffers: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if not cls.__name__.startswith("_"):
            _REGISTERED[cls.__name__.lower()] = cls

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
        pairs = _checked_pairs(type(self).__name__, params, grads)
        lr = self.lr
        self.steps += 1
        self._apply(pairs, lr)

    def _apply(self, pairs: list[tuple[str, np.ndarray, np.ndarray]], lr: float) -> None:
        """`_update` of each (name, parameter, gradient in its dtype); a subclass may do it in
        one loop."""
        for name, p, g in pairs:
            self._update(name, p, g, lr)

    @abstractmethod
    def _update(self, name: str, p: np.ndarray, g: np.ndarray, lr: float) -> None:
        """One step on one array `p`, in place, with gradient `g` and learning rate `lr`."""

    def _scratch(self, name: str, like: np.ndarray) -> np.ndarray:
        """A work array shaped and typed as `like`, kept between steps (not state: it holds
        nothing from one step to the next), so an update allocates no temporaries."""
        scratch = self.__dict__.setdefault("_scratch_arrays", {})
        buffer = scratch.get(name)
        if buffer is None or buffer.shape != like.shape or buffer.dtype != like.dtype:
            buffer = scratch[name] = np.empty_like(like)
        return buffer

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

    @abstractmethod
    def equations(self) -> list[sympy.Eq]:
        """The update rule of one step as equations, in the order they are evaluated.

        The gradient is `g_t`, the parameter `theta_t-1` before and `theta_t` after the step,
        each buffer `k` is `k_t-1` before and `k_t` after; hyper-parameters are symbols
        (`eta`, `beta_1`, `beta_2`, `epsilon`, `lambda`, `mu`, `alpha`, `delta`; values in
        `hyperparameters()`), `t` counts steps from 1.
        """

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

    def _apply(self, pairs, lr):
        if self.momentum or self.weight_decay:
            super()._apply(pairs, lr)
            return
        for _, p, g in pairs:  # plain SGD, as a person writes it
            p -= lr * g

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
        work = self._scratch(name, p)  # the same operations in the same order, in place
        m *= b1
        m += np.multiply(1 - b1, g, out=work)
        v *= b2
        np.multiply(1 - b2, g, out=work)
        work *= g
        v += work
        bias1, bias2 = 1 - b1**self.steps, 1 - b2**self.steps
        np.sqrt(v, out=work)
        work /= math.sqrt(bias2)
        work += self.eps
        np.divide(m, work, out=work)
        work *= lr / bias1
        p -= work

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


def _checked_pairs(owner: str, params: dict, grads: Mapping) -> list[tuple]:
    """(name, parameter, gradient as an array of the parameter's dtype) for each parameter,
    every one checked before any is updated. The common call (both arrays, one shape, one
    dtype) costs one test per parameter: a small network's update is a few µs."""
    pairs = []
    ndarray = np.ndarray
    for name, p in params.items():
        g = grads.get(name) if isinstance(grads, dict) else None
        if type(g) is ndarray and type(p) is ndarray and g.shape == p.shape and g.dtype == p.dtype:
            if p.dtype.kind == "f":
                pairs.append((name, p, g))
                continue
        _check_param(owner, name, p, grads)
        pairs.append((name, p, np.asarray(grads[name], dtype=p.dtype)))
    return pairs


def _check_param(owner: str, name: str, p, grads: Mapping) -> None:
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
