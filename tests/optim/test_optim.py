"""Optimizers and schedules: NumPy steps against their own SymPy equations (lambdified) and
against PyTorch's optimizers and schedulers; state round-trips through .npz."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import sympy

from symdl import optim

CONFIGS = {
    "sgd": lambda: optim.SGD(lr=0.1),
    "sgd_wd": lambda: optim.SGD(lr=0.1, weight_decay=0.05),
    "sgd_momentum": lambda: optim.SGD(lr=0.1, momentum=0.9),
    "sgd_nesterov_wd": lambda: optim.SGD(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.1),
    "adam": lambda: optim.Adam(lr=0.01),
    "adam_wd": lambda: optim.Adam(lr=0.01, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.1),
    "adamw": lambda: optim.AdamW(lr=0.01),
    "adamw_no_decay": lambda: optim.AdamW(lr=0.02, weight_decay=0.0),
    "adagrad": lambda: optim.Adagrad(lr=0.1),
    "adagrad_all": lambda: optim.Adagrad(
        lr=0.1, lr_decay=0.05, weight_decay=0.01, initial_accumulator_value=0.3, eps=1e-6
    ),
    "rmsprop": lambda: optim.RMSProp(lr=0.01),
    "rmsprop_centered": lambda: optim.RMSProp(lr=0.01, alpha=0.9, centered=True),
    "rmsprop_momentum_wd": lambda: optim.RMSProp(lr=0.01, momentum=0.7, weight_decay=0.1),
    "rmsprop_all": lambda: optim.RMSProp(lr=0.01, alpha=0.8, momentum=0.5, centered=True),
}

# The test's own reading of each hyper-parameter symbol (independent of hyperparameters()).
HYPER = {
    "eta": lambda o, step: o.schedule(step - 1),
    "beta_1": lambda o, step: o.betas[0],
    "beta_2": lambda o, step: o.betas[1],
    "epsilon": lambda o, step: o.eps,
    "lambda": lambda o, step: o.weight_decay,
    "mu": lambda o, step: o.momentum,
    "alpha": lambda o, step: o.alpha,
    "delta": lambda o, step: o.lr_decay,
    "t": lambda o, step: step,
}


def _params(rng):
    return {"dense_1.W": rng.normal(size=(3, 4)), "dense_1.b": rng.normal(size=4)}


def _grads(rng):
    return {"dense_1.W": rng.normal(size=(3, 4)), "dense_1.b": rng.normal(size=4)}


def _evaluate_equations(equations, known: dict[str, object]) -> dict[str, object]:
    """Evaluate `equations` in order by lambdify, each left side joining the known values."""
    values = dict(known)
    for eq in equations:
        symbols = sorted(eq.rhs.free_symbols, key=str)
        missing = [s.name for s in symbols if s.name not in values]
        assert not missing, f"{eq} uses unknown symbols {missing}"
        f = sympy.lambdify(symbols, eq.rhs, modules="numpy")
        values[eq.lhs.name] = f(*(values[s.name] for s in symbols))
    return values


def _initial(opt, kind):
    return opt.initial_accumulator_value if kind == "s" else 0.0


@pytest.mark.parametrize("config", CONFIGS)
def test_numpy_step_follows_the_equations(config, rng):
    opt = CONFIGS[config]()
    params = _params(rng)
    equations = opt.equations()
    for step in range(1, 4):
        grads = _grads(rng)
        before = {name: p.copy() for name, p in params.items()}
        state = opt.state_dict()
        opt.step(params, grads)
        after = opt.state_dict()
        for name in params:
            known = {"theta_t-1": before[name], "g_t": grads[name]}
            for kind in opt.buffers:
                known[f"{kind}_t-1"] = state.get(f"{kind}/{name}", _initial(opt, kind))
            symbols = {s.name for eq in equations for s in eq.rhs.free_symbols}
            known |= {s: HYPER[s](opt, step) for s in symbols if s in HYPER}
            values = _evaluate_equations(equations, known)
            np.testing.assert_allclose(params[name], values["theta_t"], rtol=1e-12, atol=1e-15)
            for kind in opt.buffers:
                np.testing.assert_allclose(
                    after[f"{kind}/{name}"], values[f"{kind}_t"], rtol=1e-12, atol=1e-15
                )
    assert int(after["step"]) == 3


def test_equations_print_as_latex():
    tex = optim.Adam(weight_decay=0.1).to_latex()
    for part in (r"\hat{m}_{t}", r"\beta_{1}", r"\sqrt{\hat{v}_{t}}", r"\epsilon", r"\lambda"):
        assert part in tex
    assert r"\theta_{t-1}" in sympy.latex(optim.SGD(momentum=0.9).equations()[-1])
    assert r"\bar{g}_{t}" in optim.RMSProp(centered=True).to_latex()
    assert r"\theta_{t} &= \theta_{t-1} - \eta g_{t}" in optim.SGD().to_latex()


def test_hyperparameters_give_numbers_for_every_symbol_of_the_equations():
    for make in CONFIGS.values():
        opt = make()
        free = {s for eq in opt.equations() for s in eq.rhs.free_symbols}
        named = {s.name for s in free} - {"t", "g_t", "theta_t-1"}
        named -= {eq.lhs.name for eq in opt.equations()}
        named -= {f"{k}_t-1" for k in opt.buffers}
        assert named <= {s.name for s in opt.hyperparameters()}


def test_step_updates_in_place_and_keeps_dtype(rng):
    w = rng.normal(size=3).astype(np.float32)
    params = {"w": w}
    optim.Adam().step(params, {"w": np.ones(3)})
    assert params["w"] is w and w.dtype == np.float32


@pytest.mark.parametrize("config", ["sgd_nesterov_wd", "adam_wd", "adagrad_all", "rmsprop_all"])
def test_state_round_trips_through_npz(config, rng):
    params, grads = _params(rng), [_grads(rng) for _ in range(6)]
    straight, opt = {k: v.copy() for k, v in params.items()}, CONFIGS[config]()
    for g in grads:
        opt.step(straight, g)
    resumed, first = {k: v.copy() for k, v in params.items()}, CONFIGS[config]()
    for g in grads[:3]:
        first.step(resumed, g)
    buffer = io.BytesIO()
    np.savez(buffer, **first.state_dict())
    buffer.seek(0)
    second = CONFIGS[config]()
    with np.load(buffer) as saved:
        second.load_state_dict(saved)
    for g in grads[3:]:
        second.step(resumed, g)
    for name in params:
        assert np.array_equal(straight[name], resumed[name])


# ---------------------------------------------------------------- schedules


def test_schedules_follow_their_formulas():
    warm = optim.LinearWarmup(optim.CosineLR(0.1, total_steps=10, min_lr=0.01), warmup_steps=4)
    expected = [0.1 * (k + 1) / 4 for k in range(4)]
    expected += [0.01 + 0.09 * (1 + math.cos(math.pi * min(k, 10) / 10)) / 2 for k in range(12)]
    assert [warm(k) for k in range(16)] == pytest.approx(expected, rel=1e-14)
    assert optim.StepLR(1.0, 3, 0.5)(7) == 0.25
    assert optim.ExponentialLR(1.0, 0.9)(2) == pytest.approx(0.81)


@pytest.mark.parametrize(
    "schedule, values",
    [
        (optim.StepLR(0.3, step_size=3, gamma=0.5), {"eta": 0.3, "s": 3, "gamma": 0.5}),
        (optim.ExponentialLR(0.3, gamma=0.9), {"eta": 0.3, "gamma": 0.9}),
        (
            optim.CosineLR(0.3, total_steps=7, min_lr=0.05),
            {"eta": 0.3, "T": 7, "eta_min": 0.05},
        ),
        (optim.LinearWarmup(0.3, warmup_steps=3), {"eta": 0.3, "w": 3}),
        (
            optim.LinearWarmup(optim.StepLR(0.3, step_size=2, gamma=0.1), warmup_steps=4),
            {"eta": 0.3, "w": 4, "s": 2, "gamma": 0.1},
        ),
    ],
    ids=["step", "exponential", "cosine", "warmup", "warmup_then_step"],
)
def test_schedule_equation_agrees_with_its_numbers(schedule, values):
    eq = schedule.equation()
    assert eq.lhs.name == "eta_t"
    for k in range(12):
        subs = {s: values[s.name] for s in eq.rhs.free_symbols if s != optim.t}
        assert float(eq.rhs.subs(subs | {optim.t: k + 1})) == pytest.approx(schedule(k), rel=1e-12)


def test_optimizer_reads_its_schedule_per_step():
    params = {"w": np.zeros(1)}
    opt = optim.SGD(lr=optim.StepLR(1.0, step_size=1, gamma=0.5))
    for _ in range(3):
        opt.step(params, {"w": np.ones(1)})
    assert params["w"][0] == -(1 + 0.5 + 0.25)
    assert opt.lr == 0.125


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize("make", [optim.SGD, lambda: optim.SGD(momentum=0.9), optim.Adam])
def test_a_bad_gradient_moves_no_parameter(make):
    """Every gradient is checked (and converted) before the first parameter is updated."""
    params = {"a": np.ones(2), "b": np.ones(2), "c": np.ones(2)}
    for bad in (
        {"a": np.ones(2), "b": np.ones(2), "c": np.ones(3)},
        {"a": np.ones(2), "b": ["x", "y"], "c": np.ones(2)},
    ):
        with pytest.raises((optim.OptimizerError, ValueError)):
            make().step(params, bad)
        assert all((v == 1).all() for v in params.values())
    mixed = {"a": np.ones(2, dtype=np.float32), "b": [1.0, 1.0], "c": np.ones(2)}
    make().step(params, mixed)  # a float32 gradient and a list are taken in the parameter's dtype
    assert all(v.dtype == np.float64 and (v < 1).all() for v in params.values())


def test_bad_input_is_named():
    with pytest.raises(optim.OptimizerError, match=r"'b' has no gradient"):
        optim.SGD().step({"b": np.zeros(2)}, {})
    with pytest.raises(optim.OptimizerError, match=r"gradient of 'w' has shape \(3,\).*\(2,\)"):
        optim.Adam().step({"w": np.zeros(2)}, {"w": np.zeros(3)})
    with pytest.raises(optim.OptimizerError, match="floating-point"):
        optim.SGD().step({"w": np.zeros(2, dtype=int)}, {"w": np.zeros(2)})
    with pytest.raises(optim.OptimizerError, match=r"betas\[1\] must be"):
        optim.Adam(betas=(0.9, 1.0))
    with pytest.raises(optim.OptimizerError, match="lr must be"):
        optim.SGD(lr=-1.0)
    with pytest.raises(optim.OptimizerError, match="nesterov"):
        optim.SGD(nesterov=True)
    adam = optim.Adam()
    adam.step({"w": np.zeros(2)}, {"w": np.ones(2)})
    with pytest.raises(optim.OptimizerError, match="unexpected entry 'm/w'"):
        optim.SGD(momentum=0.9).load_state_dict(adam.state_dict())


# ---------------------------------------------------------------- PyTorch


def _torch_optimizer(config, torch, tensors):
    opt = CONFIGS[config]()
    kind = {
        optim.SGD: "SGD",
        optim.Adam: "Adam",
        optim.AdamW: "AdamW",
        optim.Adagrad: "Adagrad",
        optim.RMSProp: "RMSprop",
    }[type(opt)]
    kwargs = {"lr": opt.lr, "weight_decay": opt.weight_decay}
    if kind == "SGD":
        kwargs |= {"momentum": opt.momentum, "nesterov": opt.nesterov}
    if kind in ("Adam", "AdamW"):
        kwargs |= {"betas": opt.betas, "eps": opt.eps}
    if kind == "Adagrad":
        kwargs |= {
            "lr_decay": opt.lr_decay,
            "initial_accumulator_value": opt.initial_accumulator_value,
            "eps": opt.eps,
        }
    if kind == "RMSprop":
        kwargs |= {
            "alpha": opt.alpha,
            "eps": opt.eps,
            "momentum": opt.momentum,
            "centered": opt.centered,
        }
    return opt, getattr(torch.optim, kind)(tensors, **kwargs)


@pytest.mark.parametrize("config", CONFIGS)
def test_matches_pytorch(config, rng):
    torch = pytest.importorskip("torch")
    params = _params(rng)
    tensors = [torch.tensor(p, requires_grad=True) for p in params.values()]
    opt, reference = _torch_optimizer(config, torch, tensors)
    for _ in range(5):
        grads = _grads(rng)
        opt.step(params, grads)
        for tensor, g in zip(tensors, grads.values(), strict=True):
            tensor.grad = torch.tensor(g)
        reference.step()
    for p, tensor in zip(params.values(), tensors, strict=True):
        np.testing.assert_allclose(p, tensor.detach().numpy(), rtol=1e-12, atol=1e-14)


def test_defaults_match_pytorch():
    torch = pytest.importorskip("torch")
    w = [torch.zeros(1, requires_grad=True)]
    pairs = [
        (optim.SGD(), torch.optim.SGD(w)),
        (optim.Adam(), torch.optim.Adam(w)),
        (optim.AdamW(), torch.optim.AdamW(w)),
        (optim.Adagrad(), torch.optim.Adagrad(w)),
        (optim.RMSProp(), torch.optim.RMSprop(w)),
    ]
    names = ["lr", "betas", "eps", "weight_decay", "momentum", "alpha", "lr_decay", "centered"]
    names += ["nesterov", "initial_accumulator_value"]
    for ours, theirs in pairs:
        defaults = theirs.defaults
        for name in names:
            if name in defaults and hasattr(ours, name):
                assert getattr(ours, name) == defaults[name], (type(ours).__name__, name)


@pytest.mark.parametrize(
    "ours, make_theirs",
    [
        (optim.StepLR(0.5, step_size=3, gamma=0.3), lambda s, o: s.StepLR(o, 3, gamma=0.3)),
        (optim.ExponentialLR(0.5, gamma=0.8), lambda s, o: s.ExponentialLR(o, gamma=0.8)),
        (
            optim.CosineLR(0.5, total_steps=6, min_lr=0.1),
            lambda s, o: s.CosineAnnealingLR(o, T_max=6, eta_min=0.1),
        ),
        (
            optim.LinearWarmup(0.5, warmup_steps=4),
            lambda s, o: s.LinearLR(o, start_factor=0.25, total_iters=3),
        ),
    ],
    ids=["step", "exponential", "cosine", "warmup"],
)
def test_schedules_match_pytorch(ours, make_theirs):
    torch = pytest.importorskip("torch")
    reference = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.5)
    scheduler = make_theirs(torch.optim.lr_scheduler, reference)
    for k in range(7):
        assert ours(k) == pytest.approx(reference.param_groups[0]["lr"], rel=1e-12), k
        reference.step()
        scheduler.step()
