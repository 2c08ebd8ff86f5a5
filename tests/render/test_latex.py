"""The LaTeX layout of derivations: environments, parts and layers, notations, line breaking."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest
import sympy
from sympy import HadamardProduct, MatrixSymbol, Symbol

import symdl as sd
from symdl.cli.demo import small_network
from symdl.core.derivation import Adjoint
from symdl.core.program import Step
from symdl.render.latex import (
    Equation,
    LayoutError,
    equation_rows,
    equations_to_latex,
    latex,
    layer_of,
)
from symdl.render.linebreak import break_expression, latex_width, rows_of, split_top

W, B, X, Y = sympy.symbols("w b x y", real=True)


@pytest.fixture(scope="module")
def neuron():
    z = W * X + B
    return sd.derive(sd.mse(sd.sigmoid(z), Y), [W, B], names={z: "z"})


@pytest.fixture(scope="module")
def network():
    loss, params, names = small_network()
    return sd.derive(loss, params, names=names)


def math_rows(tex: str) -> list[str]:
    return [r for r in rows_of(tex) if not r.startswith(r"\intertext")]


def titles(tex: str) -> list[str]:
    return [r[len(r"\intertext{") : -1] for r in rows_of(tex) if r.startswith(r"\intertext")]


def sections(tex: str) -> dict[str, list[str]]:
    """Math rows under each (part, layer) heading, in document order."""
    out: dict[str, list[str]] = {}
    part = layer = ""
    for row in rows_of(tex):
        bold = re.fullmatch(r"\\intertext\{\\textbf\{(.*)\}\}", row)
        plain = re.fullmatch(r"\\intertext\{(.*)\}", row)
        if bold:
            part, layer = bold[1], ""
        elif plain:
            layer = plain[1]
        else:
            out.setdefault(f"{part}/{layer}", []).append(row)
    return out


def test_align_environment_with_three_labelled_parts_and_a_row_per_step(neuron):
    tex = neuron.to_latex(width=1000)
    assert tex.startswith(r"\begin{align*}") and tex.endswith(r"\end{align*}")
    assert titles(tex) == [
        r"\textbf{Forward pass}",
        r"\textbf{Backward pass (adjoints)}",
        r"\textbf{Gradients}",
    ]
    rows = math_rows(tex)
    adjoints_of_steps = [a for a in neuron.adjoints if a.primal not in neuron.wrt]
    assert len(rows) == len(neuron.forward) + len(adjoints_of_steps) + len(neuron.wrt)
    assert all(len(split_top(r, "&")) == 2 for r in rows)
    assert rows[0] == "z &= b + w x"
    assert rows[-1].startswith(r"\frac{\partial L}{\partial b} &= \bar{z}")


def test_rows_end_with_a_line_break_except_the_last(neuron):
    lines = neuron.to_latex().splitlines()[1:-1]
    math = [line for line in lines if not line.startswith(r"\intertext")]
    assert all(line.endswith(r" \\") for line in math[:-1])
    assert not math[-1].endswith(r"\\")


def test_aligned_for_jupyter_and_markdown(neuron):
    shown = neuron._repr_latex_()
    assert shown.startswith(r"$$\begin{aligned}") and shown.endswith(r"\end{aligned}$$")
    assert r"\intertext" not in shown and r"&\textbf{Gradients} \\" in shown
    md = neuron.to_markdown()
    assert r"\intertext" not in md and md.count(r"\begin{aligned}") == 3
    assert [line for line in md.splitlines() if line.startswith("#")] == [
        "### Forward pass",
        "### Backward pass (adjoints)",
        "### Gradients",
    ]


def test_a_network_is_grouped_per_layer(network):
    tex = network.to_latex()
    parts = sections(tex)
    assert list(parts) == [
        "Forward pass/Layer 1",
        "Forward pass/Layer 2",
        "Forward pass/Output",
        "Backward pass (adjoints)/Layer 2",
        "Backward pass (adjoints)/Layer 1",
        "Gradients/Layer 1",
        "Gradients/Layer 2",
    ]
    for key, rows in parts.items():
        layer = key.partition("/Layer ")[2]
        lhs = [split_top(r, "&")[0] for r in rows if not r.startswith("&")]
        if layer:
            assert all(layer_of(Symbol(side)) == int(layer) for side in lhs), (key, lhs)
    assert parts["Forward pass/Output"] == [
        r"L &= \operatorname{BCE}_{\text{logits}}\left(z^{(2)}, y\right)"
    ]
    assert len(parts["Gradients/Layer 1"]) == 6 and len(parts["Gradients/Layer 2"]) == 3


def test_grouping_can_be_turned_off_and_on(network, neuron):
    assert "Layer" not in network.to_latex(by_layer=False)
    assert "Layer" not in neuron.to_latex()
    md = network.to_markdown()
    assert "#### Layer 1" in md and md.index("### Backward") < md.index(
        "#### Layer 2", md.index("### Backward")
    )


def test_partial_notation_writes_every_adjoint_as_a_derivative(network):
    tex = network.to_latex(notation="partial")
    assert r"\bar" not in tex
    backward = sum((rows for k, rows in sections(tex).items() if k.startswith("Backward")), [])
    assert all(r.startswith(r"\frac{\partial L}{\partial ") for r in backward)
    seed = next(r for r in backward if r.startswith(r"\frac{\partial L}{\partial z^{(2)}} &="))
    assert seed.count(r"\frac{\partial L}{\partial z^{(2)}}") == 1  # not "X = X = value"
    assert (
        r"\frac{\partial L}{\partial a^{(1)}_{1}} &= \frac{\partial L}{\partial z^{(2)}}\,"
        r"\frac{\partial z^{(2)}}{\partial a^{(1)}_{1}}" in tex
    )


def test_delta_notation_is_the_textbook_one(network):
    tex = network.to_latex(notation="delta")
    assert r"\bar" not in tex
    rows = math_rows(tex)
    lhs = [split_top(r, "&")[0].strip() for r in rows]
    assert r"\delta^{(2)}" in lhs and r"\delta^{(1)}_{1}" in lhs and r"\delta^{(1)}_{2}" in lhs
    assert r"\frac{\partial L}{\partial a^{(1)}_{1}}" in lhs  # not a pre-activation: no delta
    assert (
        r"\frac{\partial L}{\partial w^{(1)}_{12}} &= \delta^{(1)}_{1}\,"
        r"\frac{\partial z^{(1)}_{1}}{\partial w^{(1)}_{12}} = \delta^{(1)}_{1} x_{2}" in rows
    )


def test_adjoint_notations_of_single_symbols():
    z1, big = Symbol("z^{(1)}_{2}"), Symbol("Z^{(3)}")
    assert latex(Adjoint(z1)) == r"\bar{z}^{(1)}_{2}"
    assert latex(Adjoint(z1), "delta") == r"\delta^{(1)}_{2}"
    assert latex(Adjoint(big), "delta") == r"\Delta^{(3)}"
    assert latex(Adjoint(Symbol("a_1")), "delta") == r"\frac{\partial L}{\partial a_{1}}"
    assert latex(Adjoint(Symbol("zeta")), "delta") == r"\frac{\partial L}{\partial \zeta}"
    squared = latex(Adjoint(Symbol("u")) ** 2, "partial")
    assert squared == r"\left(\frac{\partial L}{\partial u}\right)^{2}"


def test_options_are_checked(neuron):
    with pytest.raises(LayoutError, match=r"notation='nabla'.*'bar', 'partial', 'delta'"):
        neuron.to_latex(notation="nabla")
    with pytest.raises(LayoutError, match="environment='equation'"):
        neuron.to_latex(environment="equation")


def test_chain_can_be_left_out(neuron):
    rows = math_rows(neuron.to_latex(chain=False))
    assert not any(r"\frac{\partial z}" in r for r in rows)
    assert r"\frac{\partial L}{\partial w} &= \bar{z} x" in rows


def test_symdl_functions_print_as_in_a_textbook():
    x = sympy.symbols("x_1:4", real=True)
    loss = sd.cross_entropy([sd.relu(x[0]), sd.sigmoid(x[1]), x[2]], 0)
    tex = sd.derive(loss, list(x)).to_latex()
    assert r"\operatorname{ReLU}\left(x_{1}\right)" in tex and r"\sigma\left(x_{2}\right)" in tex
    assert r"\operatorname{softmax}" in tex or r"\log" in tex


# ---------------------------------------------------------------- long right-hand sides


@pytest.fixture(scope="module")
def wide():
    ws, xs = sympy.symbols("w_1:31", real=True), sympy.symbols("x_1:31", real=True)
    z = sum(w * x for w, x in zip(ws, xs, strict=True)) + B
    return sd.derive(sd.mse(sd.sigmoid(z), Y), [*ws, B], names={z: "z"}), z


def test_a_long_sum_is_broken_over_lines_and_keeps_every_term(wide):
    derivation, z = wide
    rows = math_rows(derivation.to_latex(width=60))
    start = rows.index(next(r for r in rows if r.startswith("z &=")))
    end = start + 1
    while rows[end].startswith(r"&\quad"):
        end += 1
    z_rows = rows[start:end]
    assert len(z_rows) >= 3
    assert all(r.startswith(r"&\quad + ") for r in z_rows[1:])
    joined = " ".join(split_top(r, "&")[1].removeprefix("=").removeprefix(r"\quad") for r in z_rows)
    assert re.sub(r"\s+", " ", joined).strip() == sympy.latex(z)
    for term in z.args:
        assert (
            sum(r.count(sympy.latex(term) + " ") + r.endswith(sympy.latex(term)) for r in z_rows)
            == 1
        )
    lhs = max(latex_width(split_top(r, "&")[0]) for r in rows)
    assert all(latex_width(split_top(r, "&")[1]) <= 60 - lhs for r in z_rows)


def test_lines_are_balanced_not_greedy():
    terms = [f"a_{{{k}}}" for k in range(1, 21)]
    lines = break_expression(" + ".join(terms), width=40)
    widths = [latex_width(line) for line in lines]
    assert len(lines) == 3 and max(widths) - min(widths) <= latex_width("+ a_{10}") + 1


def test_never_breaks_inside_left_right_groups():
    xs = sympy.symbols("x_1:26", real=True)
    expr = sd.sigmoid(sum(xs)) * Y + sum(x**2 for x in xs[:10])
    lines = break_expression(sympy.latex(expr), width=30)
    assert len(lines) > 1
    for line in lines:
        assert line.count(r"\left(") == line.count(r"\right)")
        assert line.count("{") == line.count("}")
    assert any(len(line) > 30 and r"\sigma\left(" in line for line in lines)  # kept whole


def test_a_long_product_is_broken_between_factors():
    xs = sympy.symbols("x_1:16", real=True)
    expr = sympy.Mul(*(sd.sigmoid(x) for x in xs))
    lines = break_expression(sympy.latex(expr), width=25)
    assert len(lines) >= 3 and all(line.startswith(r"\cdot ") for line in lines[1:])
    assert all(latex_width(line) <= 25 for line in lines)
    text = " ".join(lines)
    assert all(text.count(sympy.latex(sd.sigmoid(x))) == 1 for x in xs)


def test_equation_rows_put_each_side_of_a_long_chain_on_its_own_row():
    long = " + ".join(f"u_{{{k}}} v_{{{k}}}" for k in range(12))
    rows = equation_rows(
        Equation(r"\bar{a}", (r"\bar{z}\,\frac{\partial z}{\partial a}", long)), 50
    )
    assert rows[0] == r"\bar{a} &= \bar{z}\,\frac{\partial z}{\partial a}"
    assert rows[1].startswith(" &= u_{0} v_{0}") and rows[2].startswith(r"&\quad + ")


def test_width_is_measured_on_what_is_rendered():
    assert latex_width("abc") == 3
    assert latex_width(r"\sigma") == latex_width("s")
    assert latex_width(r"\operatorname{softmax}") == len("softmax")
    assert latex_width(r"x^{(1)}_{2}") < latex_width(r"x^{(1)}") + latex_width("_{2}") + 1e-9
    assert latex_width(r"\frac{\partial L}{\partial w}") < latex_width(r"\partial L \partial w")
    matrix = r"\left[\begin{matrix}a & b\\c & d\end{matrix}\right]"
    assert latex_width(matrix) < latex_width("a b c d") + 2


# ---------------------------------------------------------------- matrix expressions


def test_matrix_expressions_lay_out_like_scalars():
    w1, x, b1 = MatrixSymbol("W^{(1)}", 3, 2), MatrixSymbol("X", 2, 5), MatrixSymbol("B", 3, 5)
    delta = MatrixSymbol(r"\Delta^{(1)}", 3, 5)
    z = w1 * x + b1
    tex = equations_to_latex(
        [
            ("Z^{(1)}", z),
            (r"\bar{W}^{(1)}", delta * x.T),
            (r"\bar{X}", HadamardProduct(w1.T * delta, x * x.T * MatrixSymbol("D", 2, 5))),
        ]
    )
    rows = math_rows(tex)
    assert rows[0] == r"Z^{(1)} &= B + W^{(1)} X"
    assert rows[1] == r"\bar{W}^{(1)} &= \Delta^{(1)} X^{T}"
    assert r"\circ" in rows[2] and r"\left(W^{(1)}\right)^{T}" in rows[2]
    many = sympy.MatAdd(
        *(MatrixSymbol(f"A_{k}", 3, 3) * MatrixSymbol(f"C_{k}", 3, 3) for k in range(20))
    )
    rows = math_rows(equations_to_latex([("S", many)], width=40))
    assert len(rows) > 2 and all(r.startswith(r"&\quad + ") for r in rows[1:])


def test_regression_a_negated_matrix_product_keeps_its_parentheses():
    """SymPy printed -A (B ∘ C) as "- A B \\circ C", which reads (-A B) ∘ C."""
    A, B, C = (MatrixSymbol(name, 3, 3) for name in "ABC")
    assert latex(-A * HadamardProduct(B, C)) == r"- A \left(B \circ C\right)"
    assert latex(B - A * HadamardProduct(B, C)) == r"B - A \left(B \circ C\right)"
    assert latex(-sympy.Rational(1, 2) * A * B) == r"- \frac{1}{2} A B"
    assert latex(-(Symbol("a") + 1) * A.T) == r"- \left(a + 1\right) A^{T}"


class _MatrixAdjointSymbol(MatrixSymbol):
    """An adjoint of a matrix step, as matrix calculus may name it (it carries `.primal`)."""

    @property
    def primal(self):
        return MatrixSymbol(self.name.removeprefix("bar_"), *self.shape)


def _bar(m: MatrixSymbol) -> _MatrixAdjointSymbol:
    return _MatrixAdjointSymbol(f"bar_{m.name}", *m.shape)


@dataclass(frozen=True)
class _MatrixAdjoint:
    primal: MatrixSymbol
    uses: tuple


@dataclass
class _MatrixDerivation:
    """What the layout reads from a Derivation, with matrix-valued steps (as matrix calculus
    will produce): forward steps, adjoint steps and their right-hand sides, gradients."""

    forward: tuple
    adjoints: tuple
    rhs: dict
    wrt: tuple
    gradient_symbols: dict
    output: Symbol

    def adjoint_rhs(self, step):
        return self.rhs[step.primal]


def test_a_matrix_derivation_lays_out_without_scalar_assumptions():
    n = 4
    w, x = MatrixSymbol("W^{(1)}", 3, 2), MatrixSymbol("X", 2, n)
    z, a = MatrixSymbol("Z^{(1)}", 3, n), MatrixSymbol("A^{(1)}", 3, n)
    g_a, g_z = _bar(a), _bar(z)
    L = Symbol("L")
    forward = (Step(z, w * x), Step(a, HadamardProduct(z, z)), Step(L, sympy.Trace(a * a.T)))
    adjoints = (_MatrixAdjoint(a, (L,)), _MatrixAdjoint(z, (a,)), _MatrixAdjoint(w, (z,)))
    rhs = {a: 2 * a, z: 2 * HadamardProduct(g_a, z), w: g_z * x.T}
    d = _MatrixDerivation(forward, adjoints, rhs, (w,), {w: _bar(w)}, L)
    tex = sd.Derivation.to_latex(d)  # the very entry point, on a Derivation-like object
    parts = sections(tex)
    assert list(parts) == [
        "Forward pass/Layer 1",
        "Forward pass/Output",
        "Backward pass (adjoints)/Layer 1",
        "Gradients/Layer 1",
    ]
    backward = parts["Backward pass (adjoints)/Layer 1"]
    assert backward[0] == r"\bar{A}^{(1)} &= 2 A^{(1)}"
    assert backward[1] == r"\bar{Z}^{(1)} &= 2 \left(Z^{(1)} \circ \bar{A}^{(1)}\right)"
    assert r"\frac{\partial Z" not in tex  # no chain of 4-tensor Jacobians
    assert parts["Gradients/Layer 1"] == [
        r"\frac{\partial L}{\partial W^{(1)}} &= \bar{Z}^{(1)} X^{T}"
    ]
    transposed = latex(g_z.T * w, "partial")
    assert transposed == r"\left(\frac{\partial L}{\partial Z^{(1)}}\right)^{T} W^{(1)}"
    assert latex(g_z.T, "delta") == r"{\Delta^{(1)}}^{T}"  # never a double superscript
    delta = math_rows(sd.Derivation.to_latex(d, notation="delta"))
    assert (
        r"\Delta^{(1)} &= 2 \left(Z^{(1)} \circ \frac{\partial L}{\partial A^{(1)}}\right)" in delta
    )
    assert delta[-1] == r"\frac{\partial L}{\partial W^{(1)}} &= \Delta^{(1)} X^{T}"


def test_rows_of_splits_environments_and_intertext():
    tex = "\\begin{align*}\n\\intertext{\\textbf{A}\\newline B} x &= \\left[\\begin{matrix}1 \\\\ 2\\end{matrix}\\right] \\\\[1ex]\ny &= 2\n\\end{align*}"
    assert rows_of(tex) == [
        r"\intertext{\textbf{A}}",
        r"\intertext{B}",
        r"x &= \left[\begin{matrix}1 \\ 2\end{matrix}\right]",
        "y &= 2",
    ]
