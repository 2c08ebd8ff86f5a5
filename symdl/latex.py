"""Layout of derivations as LaTeX and Markdown: forward steps, adjoints, then gradients."""

from __future__ import annotations

import sympy
from sympy import Symbol

from symdl.derivation import Adjoint, Derivation


def latex(expr) -> str:
    """SymPy's LaTeX of `expr`; symdl's ops print themselves (σ, ReLU, softmax, ...)."""
    return sympy.latex(expr)


def _partial(u: Symbol, v: Symbol) -> str:
    return rf"\frac{{\partial {latex(u)}}}{{\partial {latex(v)}}}"


def _adjoint_line(derivation: Derivation, step) -> str:
    return rf"{latex(step.name)} &= {_chain(derivation, step)}"


def _chain(derivation: Derivation, step) -> str:
    """`ū ∂u/∂v + ... = <the same with the local partials written out>`."""
    symbolic = " + ".join(
        _partial(u, step.primal)
        if u == derivation.output
        else rf"{latex(Adjoint(u))}\,{_partial(u, step.primal)}"
        for u in step.uses
    )
    return rf"{symbolic} = {latex(derivation.adjoint_rhs(step))}"


def _gradient_line(derivation: Derivation, v: Symbol, g) -> str:
    lhs = _partial(derivation.output, v)
    if g == 0:
        return rf"{lhs} &= 0"
    step = next(a for a in derivation.adjoints if a.name == g)
    return rf"{lhs} &= {_chain(derivation, step)}"


def derivation_lines(derivation: Derivation) -> dict[str, list[str]]:
    """The LaTeX lines of each part: forward, backward (adjoints), gradient."""
    leaves = set(derivation.wrt)
    return {
        "forward": [rf"{latex(s.name)} &= {latex(s.rhs)}" for s in derivation.forward],
        "backward": [
            _adjoint_line(derivation, a) for a in derivation.adjoints if a.primal not in leaves
        ],
        "gradient": [
            _gradient_line(derivation, v, g) for v, g in derivation.gradient_symbols.items()
        ],
    }


_TITLES = {
    "forward": "Forward pass",
    "backward": "Backward pass (adjoints)",
    "gradient": "Gradients",
}


def derivation_to_latex(derivation: Derivation, environment: str = "align") -> str:
    """One `align` (or `aligned`) environment, a line per step, the three parts labelled."""
    body = []
    for part, lines in derivation_lines(derivation).items():
        if not lines:
            continue
        if environment == "align":
            body.append(rf"\intertext{{{_TITLES[part]}}}")
            body += [line + r" \\" for line in lines]
        else:
            body += [line + r" \\" for line in lines]
            body[-1] += "[1ex]"
    if body:
        body[-1] = body[-1].removesuffix("[1ex]").removesuffix(r" \\")
    star = "*" if environment == "align" else ""
    return "\n".join([rf"\begin{{{environment}{star}}}", *body, rf"\end{{{environment}{star}}}"])


def derivation_to_markdown(derivation: Derivation) -> str:
    """Markdown: a heading and a `$$\\begin{aligned}...$$` block per part (renders on GitHub)."""
    out = []
    for part, lines in derivation_lines(derivation).items():
        if not lines:
            continue
        out += [f"### {_TITLES[part]}", "", "$$", r"\begin{aligned}"]
        out += [line + r" \\" for line in lines[:-1]] + [lines[-1]]
        out += [r"\end{aligned}", "$$", ""]
    return "\n".join(out)


def standalone_document(body: str, title: str | None = None) -> str:
    """A complete LaTeX document around `body` that compiles with pdflatex."""
    head = [
        r"\documentclass[11pt]{article}",
        r"\usepackage[margin=2cm]{geometry}",
        r"\usepackage{amsmath,amssymb}",
        r"\allowdisplaybreaks",
        r"\begin{document}",
    ]
    if title:
        head.append(rf"\section*{{{title}}}")
    return "\n".join([*head, body, r"\end{document}", ""])
