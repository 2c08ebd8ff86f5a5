"""Gallery entries for optimisation: the Adam and RMSProp updates, L1 and L2 penalties, and the
vanishing-gradient bound of deep sigmoid networks."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import sympy
from sympy import MatrixSymbol, Rational, Symbol, sqrt

import symdl as sd
from gallery.entry import Entry, dL, entry, in_order, part
from gallery.reference import Claim, ExplicitDiff, Property, substitute
from symdl import optim
from symdl.core.matrices import elementwise
from symdl.ops import elementary
from symdl.render.latex import Block, Equation
from symdl.render.linebreak import rows_of


def _update_rule(optimizer: optim.Optimizer) -> Block:
    """The optimizer's own equations, one row each."""
    rows = (row.split(" &= ") for row in rows_of(optimizer.to_latex()))
    return part("Update rule", *(Equation(lhs, (rhs,)) for lhs, rhs in rows))


def _by_name(equations: Sequence[sympy.Eq]) -> dict[str, Symbol]:
    symbols = set().union(*(e.free_symbols | {e.lhs} for e in equations))
    return {str(s): s for s in symbols}


def _composed(equations: Sequence[sympy.Eq]) -> sympy.Expr:
    """The last equation's right-hand side with every earlier equation substituted in."""
    return substitute(equations[-1].rhs, {e.lhs: e.rhs for e in equations[:-1]})


def _same_update(optimizer, published: Callable[[dict], sympy.Expr]) -> Callable:
    """A test: optimizer.equations(), composed, equal `published` (built from the symbols by name)."""

    def test() -> tuple[bool, str]:
        equations = optimizer.equations()
        difference = sympy.simplify(_composed(equations) - published(_by_name(equations)))
        return difference == 0, f"difference simplifies to {difference}"

    return test


def _same_steps(optimizer, equations: Sequence[sympy.Eq], steps: int = 3) -> Callable:
    """A test: `steps` updates of `optimizer` on random arrays equal the equations evaluated."""

    def test() -> tuple[bool, str]:
        rng = np.random.default_rng(0)
        theta = rng.normal(size=5)
        params = {"w": theta.copy()}
        by_name = _by_name(equations)
        buffers = [str(e.lhs).removesuffix("_t") for e in equations if f"{e.lhs}-1" in by_name]
        state = {k: np.zeros(5) for k in buffers if k != "theta"}  # buffers start at 0
        worst = 0.0
        for step in range(1, steps + 1):
            g = rng.normal(size=5)
            known = optimizer.hyperparameters() | {by_name["g_t"]: g, by_name["theta_t-1"]: theta}
            known |= {optim.t: step} | {by_name[f"{k}_t-1"]: v for k, v in state.items()}
            for e in equations:  # in order: each uses the ones before it
                value = sympy.lambdify(sorted(e.rhs.free_symbols, key=str), e.rhs)
                known[e.lhs] = value(*(known[s] for s in sorted(e.rhs.free_symbols, key=str)))
            state = {k: known[by_name[f"{k}_t"]] for k in state}
            theta = known[by_name["theta_t"]]
            optimizer.step(params, {"w": g})
            worst = max(worst, float(np.max(np.abs(params["w"] - theta))))
        return worst < 1e-12, f"largest difference {worst:.1e} over {steps} steps"

    return test


@entry
def adam() -> Entry:
    def published(s):  # Kingma and Ba (2015), Algorithm 1, written out
        b1, b2, g, t = s["beta_1"], s["beta_2"], s["g_t"], optim.t
        m = b1 * s["m_t-1"] + (1 - b1) * g
        v = b2 * s["v_t-1"] + (1 - b2) * g**2
        return s["theta_t-1"] - s["eta"] * (m / (1 - b1**t)) / (
            sqrt(v / (1 - b2**t)) + s["epsilon"]
        )

    optimizer = optim.Adam()
    return Entry(
        title="The Adam update",
        prose=(
            "Adam keeps exponential averages of the gradient ($m$) and of its square ($v$), "
            "corrects their bias towards 0 in the first steps, and divides one by the square "
            "root of the other, so each parameter moves about $\\eta$ per step whatever its "
            "gradient's scale. These are the equations symdl.optim.Adam runs."
        ),
        parts=(_update_rule(optimizer),),
        checks=(
            Property(
                "sympy.simplify",
                "of the composed update against Algorithm 1 of Kingma and Ba (2015)",
                _same_update(optimizer, published),
            ),
            Property(
                "NumPy",
                "running three steps of symdl.optim.Adam against the equations evaluated",
                _same_steps(optim.Adam(lr=0.1), optimizer.equations()),
            ),
        ),
    )


@entry
def rmsprop() -> Entry:
    def published(s):  # Tieleman and Hinton (2012), lecture 6e, with epsilon outside the root
        v = s["alpha"] * s["v_t-1"] + (1 - s["alpha"]) * s["g_t"] ** 2
        return s["theta_t-1"] - s["eta"] * s["g_t"] / (sqrt(v) + s["epsilon"])

    optimizer = optim.RMSProp()
    return Entry(
        title="The RMSProp update",
        prose=(
            "RMSProp divides the gradient by the root of a running average of its square, so "
            "steep and shallow directions move at similar speeds. These are the equations "
            "symdl.optim.RMSProp runs (PyTorch's defaults)."
        ),
        parts=(_update_rule(optimizer),),
        checks=(
            Property(
                "sympy.simplify",
                "of the composed update against Tieleman and Hinton (2012), lecture 6e",
                _same_update(optimizer, published),
            ),
            Property(
                "NumPy",
                "running three steps of symdl.optim.RMSProp against the equations evaluated",
                _same_steps(optim.RMSProp(lr=0.1), optimizer.equations()),
            ),
        ),
    )


@entry
def weight_penalties() -> Entry:
    m, n = sympy.symbols("m n", integer=True, positive=True)
    W = MatrixSymbol("W", m, n)
    lambda_1, lambda_2 = sympy.symbols("lambda_1 lambda_2", positive=True)
    penalty = lambda_1 * sd.l1(W) + lambda_2 / 2 * sd.l2(W)
    gradient = lambda_1 * elementwise(sympy.sign, W) + lambda_2 * W
    claim = Claim(dL("W", "R"), gradient, penalty, W, "Goodfellow et al. (2016), Sec. 7.1")

    eta, g = sympy.symbols(r"eta \nabla_{W}J", real=True)
    before, after = sympy.symbols("W_{t-1} W_{t}", real=True)
    with sympy.evaluate(False):  # printed in the order written
        step = before - eta * (g + lambda_2 * before)  # descent on J + R, entry by entry
        decayed = (1 - eta * lambda_2) * before - eta * g

    def weight_decay() -> tuple[bool, str]:
        difference = sympy.expand(step - decayed)
        return difference == 0, f"difference expands to {difference}"

    return Entry(
        title="L1 and L2 penalties",
        prose=(
            "The penalty $R(W) = \\lambda_1 \\lVert W \\rVert_1 + \\frac{\\lambda_2}{2} "
            "\\lVert W \\rVert_F^2$ adds $\\lambda_1 \\operatorname{sign}(W) + \\lambda_2 W$ to "
            "the gradient (the L1 term taken as 0 at 0). In gradient descent the L2 term "
            "shrinks the weights by a factor $1 - \\eta\\lambda_2$ each step: weight decay."
        ),
        derivation=sd.derive(penalty, W, names={penalty: "R"}),
        parts=(
            part("Published form (verified)", claim.equation),
            part("Gradient descent on J + R (verified)", (after, *map(in_order, (step, decayed)))),
        ),
        checks=(
            claim,
            ExplicitDiff(penalty, (W,), sizes={m: 2, n: 3}),
            Property(
                "sympy.expand", "of a gradient step on $J + R$ against weight decay", weight_decay
            ),
        ),
    )


@entry
def vanishing_gradient() -> Entry:
    depth = 4
    y = Symbol("y", real=True)
    w = {k: Symbol(f"w_{k}", real=True) for k in range(2, depth + 1)}
    a = {k: Symbol(f"a^{{({k})}}", real=True) for k in range(1, depth + 1)}
    z = {k: Symbol(f"z^{{({k})}}", real=True) for k in range(2, depth + 1)}
    where = {a[k]: sd.sigmoid(z[k]) for k in z} | {z[k]: w[k] * a[k - 1] for k in z}
    network = substitute(a[depth], where)
    loss = (network - y) ** 2 / 2
    names = {substitute(v, where): str(v) for k in z for v in (z[k], a[k])}
    chain = (a[depth] - y) * sympy.Mul(*(w[k] * a[k] * (1 - a[k]) for k in z))
    claim = Claim(dL("a^{(1)}"), chain, loss, a[1], "the chain rule, layer by layer", where)
    first, last = dL("a^{(1)}"), dL("a^{(L)}")
    weights = r"\prod_{l=2}^{L} \left|w_{l}\right|"

    def derivative_bound() -> tuple[bool, str]:
        t = Symbol("t", real=True)
        s_ = 1 / (1 + sympy.exp(-t))
        difference = sympy.simplify(
            sympy.diff(s_, t) - (Rational(1, 4) - (s_ - Rational(1, 2)) ** 2)
        )
        return difference == 0, f"difference simplifies to {difference}"

    def bound_holds() -> tuple[bool, str]:
        rng = np.random.default_rng(0)
        inputs = [a[1], y, *w.values()]
        exact = sympy.lambdify(inputs, sympy.diff(elementary(loss), a[1]))
        top = sympy.lambdify(inputs, elementary(network) - y)
        values = [rng.uniform(-3, 3, 10_000), rng.uniform(0, 1, 10_000)]
        values += [rng.normal(0, 3, 10_000) for _ in w]
        weights = np.prod(np.abs(values[2:]), axis=0)
        ratio = np.abs(exact(*values)) / (0.25 ** (depth - 1) * weights * np.abs(top(*values)))
        return bool(np.all(ratio <= 1)), f"largest ratio to the bound {ratio.max():.3f}"

    return Entry(
        title="Vanishing gradients in deep sigmoid networks",
        prose=(
            "A chain of sigmoid layers $a^{(l)} = \\sigma(w_l a^{(l-1)})$. The gradient reaching "
            "the first layer is a product of one factor $w_l \\sigma'(z^{(l)})$ per layer, and "
            "$\\sigma' \\le 1/4$, so unless the weights are large it shrinks geometrically "
            "with the depth $L$ (here $L = 4$)."
        ),
        derivation=sd.derive(loss, a[1], names=names),
        notation="partial",
        parts=(
            part("The chain product (verified at depth 4)", claim.equation),
            part(
                "Any depth L (checked at L = 4)",
                (first, rf"{last} \prod_{{l=2}}^{{L}} w_{{l}}\, \sigma'\left(z^{{(l)}}\right)"),
                (
                    r"\sigma'(z)",
                    r"\sigma(z)\left(1 - \sigma(z)\right)",
                    r"\frac{1}{4} - \left(\sigma(z) - \frac{1}{2}\right)^{2} \leq \frac{1}{4}",
                ),
                (
                    rf"\left|{first}\right| \Big/ \left|{last}\right|",
                    rf"{weights} \sigma'\left(z^{{(l)}}\right) \leq \left(\frac{{1}}{{4}}\right)^{{L-1}} {weights}",
                ),
            ),
        ),
        checks=(
            claim,
            Property(
                "sympy.simplify",
                "of $\\sigma'(z) = \\frac{1}{4} - (\\sigma(z) - \\frac{1}{2})^2$, "
                "with $\\sigma'$ from sympy.diff of $1/(1 + e^{-z})$",
                derivative_bound,
            ),
            Property(
                "NumPy",
                "evaluating the bound at depth 4 at 10,000 random points, the gradient from sympy.diff",
                bound_holds,
            ),
        ),
    )
