r"""Layout of derivations as LaTeX and Markdown: forward steps, adjoints, then gradients.

Parts are labelled and, for networks, grouped per layer; adjoints are written $\bar{v}$,
$\partial L / \partial v$ or $\delta^{(l)}$; long right-hand sides are broken over lines.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import sympy
from sympy import Basic, MatAdd, MatMul, Symbol
from sympy.printing.latex import LatexPrinter, translate
from sympy.printing.precedence import PRECEDENCE

from symdl.core.derivation import Adjoint, _bar
from symdl.render.linebreak import WIDTH, LayoutError, break_expression, latex_width

__all__ = [
    "NOTATIONS",
    "WIDTH",
    "Block",
    "Equation",
    "LayoutError",
    "derivation_blocks",
    "derivation_to_latex",
    "derivation_to_markdown",
    "equation_rows",
    "equations_to_latex",
    "latex",
    "layer_of",
    "render_latex",
    "render_markdown",
    "standalone_document",
]

NOTATIONS = ("bar", "partial", "delta")
ENVIRONMENTS = ("align", "aligned")
_L = Symbol("L")
_NEWLINE = "\\\\"
_EQUALS = 3.0  # the width of " = " in `latex_width` units


@dataclass(frozen=True)
class Equation:
    """`lhs = sides[0] = sides[1] = ...`, each side already LaTeX."""

    lhs: str
    sides: tuple[str, ...]


@dataclass(frozen=True)
class Block:
    """A titled run of equations; `level` 1 is a part (forward, ...), 2 a layer inside it."""

    title: str
    equations: tuple[Equation, ...] = ()
    level: int = 1


_BRACED_NAME = re.compile(r"^([A-Za-z]+)([\^_]\{.*)$")


class _Printer(LatexPrinter):
    """SymPy's LaTeX printer writing adjoints in the chosen notation."""

    def __init__(self, notation: str = "bar", output: Basic = _L):
        super().__init__()
        self.notation = _choice("notation", notation, NOTATIONS)
        self.output = output

    def _deal_with_super_sub(self, string, style="plain"):
        # SymPy leaves a name with braces, such as gamma^{(1)}, as it is: its Greek base
        # letter is translated here, so that it prints \gamma^{(1)}
        match = _BRACED_NAME.match(string)
        if match:
            return translate(match[1]) + match[2]
        return super()._deal_with_super_sub(string, style=style)

    def _print(self, expr, **kwargs):
        primal = _primal(expr)
        if primal is None or (self.notation == "bar" and isinstance(expr, Adjoint)):
            return super()._print(expr, **kwargs)
        exp = kwargs.get("exp")
        return self._raised(self.adjoint(primal), exp) if exp is not None else self.adjoint(primal)

    def _print_Pow(self, expr):
        primal = _primal(expr.base)
        if primal is None or (self.notation == "bar" and isinstance(expr.base, Adjoint)):
            return super()._print_Pow(expr)
        return self._raised(self.adjoint(primal), self._print(expr.exp))

    def _print_Transpose(self, expr):
        primal = _primal(expr.arg)
        if primal is None or self.notation == "bar":
            return super()._print_Transpose(expr)
        return self._raised(self.adjoint(primal), "T")

    def _print_Add(self, expr, order=None):
        """A sum of matrices with " - 2 λ w", not " + - 2 λ w": SymPy's MatMul.doit leaves
        coefficients such as Mul(-1, 2, λ) whose sign the MatMul does not report."""
        if not isinstance(expr, MatAdd):
            terms = self._as_ordered_terms(expr, order=order)
            if terms[0].could_extract_minus_sign() and not all(
                t.could_extract_minus_sign() for t in terms
            ):  # σ(z) - y, not - y + σ(z)
                first = next(t for t in terms if not t.could_extract_minus_sign())
                expr = sympy.Add(first, *(t for t in terms if t is not first), evaluate=False)
                return super()._print_Add(expr, order="none")
            return super()._print_Add(expr, order)
        terms = self._as_ordered_terms(expr, order=order)
        positive = [t for t in terms if _negated(t) is None]
        if positive and _negated(terms[0]) is not None:  # 1 - A, not -A + 1
            terms = [positive[0], *(t for t in terms if t is not positive[0])]
        tex = ""
        for i, term in enumerate(terms):
            negated = _negated(term) if i > 0 else None
            tex += "" if i == 0 else " - " if negated is not None else " + "
            tex += self._print(term if negated is None else negated)
        return tex

    def _print_MatMul(self, expr):
        """-A (B ∘ C), not -A B ∘ C: SymPy parenthesises the factors of a negated product at
        the precedence of a sum, which leaves a Hadamard product bare."""
        negated = _negated(expr)
        if negated is None:
            coeff, *rest = expr.args
            if coeff.is_Rational and coeff.is_positive and coeff != 1 and rest:
                # \frac{1}{36} v, not \left(\frac{1}{36}\right) v
                return f"{self._print(coeff)} {self._print(MatMul(*rest))}"
            return super()._print_MatMul(expr)
        factors = negated.args if isinstance(negated, MatMul) else (negated,)
        return "- " + " ".join(
            self.parenthesize(f, PRECEDENCE["Mul"], strict=not f.is_Matrix) for f in factors
        )

    def _print_HadamardPower(self, expr):
        """(A^{(1)})^{∘2}: a base with its own superscript is parenthesised (SymPy writes
        A^{(1)}^{∘2}, a double superscript that LaTeX rejects)."""
        base = self.parenthesize(expr.base, PRECEDENCE["Pow"], strict=False)
        if "^" in base and not base.endswith(r"\right)"):
            base = rf"\left({base}\right)"
        return rf"{base}^{{\circ {{{self._print(expr.exp)}}}}}"

    def _print_Identity(self, expr):
        """The 1x1 identity (wᵀw - 1, the seed of a 1x1 output) as 1."""
        return "1" if expr.shape == (1, 1) else super()._print_Identity(expr)

    def _print_OneMatrix(self, expr):
        r"""$\mathbf{1}_N$, $\mathbf{1}_N^T$ or $\mathbf{1}_{m \times n}$ (SymPy prints "1")."""
        rows, cols = (self._print(d) for d in expr.shape)
        if expr.shape == (1, 1):
            return r"\mathbf{1}"
        if expr.shape[1] == 1:
            return rf"\mathbf{{1}}_{{{rows}}}"
        if expr.shape[0] == 1:
            return rf"\mathbf{{1}}_{{{cols}}}^{{T}}"
        return rf"\mathbf{{1}}_{{{rows} \times {cols}}}"

    @staticmethod
    def _raised(tex: str, exp: str) -> str:
        return (
            rf"\left({tex}\right)^{{{exp}}}"
            if tex.startswith(r"\frac")
            else rf"{{{tex}}}^{{{exp}}}"
        )

    def adjoint(self, primal: Basic) -> str:
        r"""$\bar{v}$, $\partial L/\partial v$ or $\delta$ for the adjoint of `primal`."""
        if self.notation == "bar":
            return (
                super()._print(Adjoint(primal)) if isinstance(primal, Symbol) else self._bar(primal)
            )
        tex = self._print(primal)
        if self.notation == "delta" and _PRE_ACTIVATION.match(tex):
            return _PRE_ACTIVATION.sub(lambda m: r"\delta" if m[1] == "z" else r"\Delta", tex, 1)
        return self.partial(self.output, primal)

    def _bar(self, primal: Basic) -> str:
        return _bar(self._print(primal))

    def partial(self, u: Basic, v: Basic) -> str:
        return rf"\frac{{\partial {self._print(u)}}}{{\partial {self._print(v)}}}"


_PRE_ACTIVATION = re.compile(r"^([zZ])(?![A-Za-z])")
_LAYER = re.compile(r"\^\{?[^{}()]*\((\d+)\)\}?")  # W^{(3)}, sigma^{2(3)}


def _negated(term: Basic) -> Basic | None:
    """-term when `term` reads with a leading minus sign, else None."""
    if isinstance(term, MatMul) and not term.args[0].is_Matrix:
        coeff, rest = term.args[0], term.args[1:]
        if not coeff.could_extract_minus_sign():
            return None
        positive = -coeff  # evaluated: 2*lambda, not Mul(1, 2, lambda)
        return MatMul(*rest) if positive == 1 else MatMul(positive, *rest)
    return -term if term.could_extract_minus_sign() else None


def _primal(expr) -> Basic | None:
    """The primal of an adjoint symbol (scalar `Adjoint`, or any adjoint carrying `.primal`)."""
    return getattr(expr, "primal", None) if isinstance(expr, Basic) else None


def _choice(option: str, value, choices: Sequence) -> str:
    if value not in choices:
        raise LayoutError(f"{option}={value!r}: expected one of {', '.join(map(repr, choices))}")
    return value


def layer_of(symbol) -> int | None:
    """The layer `l` of a name carrying a superscript `(l)`, such as ``z^{(2)}_{1}``.

    >>> layer_of(Symbol("W^{(3)}")), layer_of(Symbol("x_1"))
    (3, None)
    """
    match = _LAYER.search(str(symbol))
    return int(match[1]) if match else None


def latex(expr, notation: str = "bar", output: Basic = _L) -> str:
    r"""LaTeX of `expr`; symdl's ops print themselves (σ, ReLU, softmax, ...).

    Args:
        expr: a SymPy expression, scalar or matrix.
        notation: how adjoints are written: ``"bar"`` ($\bar{v}$), ``"partial"``
            ($\partial L/\partial v$) or ``"delta"`` ($\delta$ for pre-activations $z$).
        output: the $L$ of $\partial L/\partial v$.

    >>> from symdl.core.derivation import Adjoint
    >>> z = Symbol("z^{(2)}")
    >>> latex(Adjoint(z)), latex(Adjoint(z), "delta"), latex(Adjoint(z), "partial")
    ('\\bar{z}^{(2)}', '\\delta^{(2)}', '\\frac{\\partial L}{\\partial z^{(2)}}')
    """
    return _Printer(notation, output).doprint(expr)


# ---------------------------------------------------------------- a derivation as blocks


def derivation_blocks(
    derivation, notation: str = "bar", by_layer: bool | None = None, chain: bool = True
) -> list[Block]:
    r"""The equations of `derivation` in labelled blocks: forward, backward, gradients.

    Args:
        derivation: a Derivation (anything with its `forward`, `adjoints`, `adjoint_rhs`,
            `gradient_symbols`, `wrt` and `output`).
        notation: ``"bar"``, ``"partial"`` or ``"delta"`` (see `latex`).
        by_layer: group steps named with a layer superscript (``z^{(1)}``) under "Layer l"
            headings; None groups when any forward step carries one.
        chain: show the chain rule $\bar{u}\,\partial u/\partial v$ before its value
            (never for matrix-valued steps, whose Jacobians are not matrices).

    Raises:
        LayoutError: `notation` is not one of NOTATIONS.
    """
    printer = _Printer(notation, derivation.output)
    leaves = set(derivation.wrt)
    adjoint_of = {a.primal: a for a in derivation.adjoints}
    forward = [
        (s.name, Equation(printer.doprint(s.name), (printer.doprint(s.rhs),)))
        for s in derivation.forward
    ]
    backward = [
        (a.primal, _adjoint_equation(derivation, a, printer, chain))
        for a in derivation.adjoints
        if a.primal not in leaves
    ]
    gradients = [
        (v, _gradient_equation(derivation, v, adjoint_of.get(v), printer, chain))
        for v in derivation.gradient_symbols
    ]
    parts = [
        ("Forward pass", forward),
        ("Backward pass (adjoints)", backward),
        ("Gradients", gradients),
    ]
    if by_layer is None:
        by_layer = any(layer_of(s.name) is not None for s in derivation.forward)
    if not by_layer:
        return [Block(title, tuple(eq for _, eq in items)) for title, items in parts if items]
    # an unnamed step belongs to the layer it is computed for: the next named one (a batch
    # norm's centred input and its square go with the layer's mean and variance)
    # (or, for a step of parameters alone such as a spread γ, with their layer)
    layer_for: dict = {}
    upcoming = None
    steps = {s.name for s in derivation.forward}
    for step in reversed(derivation.forward):
        upcoming = layer_of(step.name) if layer_of(step.name) is not None else upcoming
        inputs = step.rhs.free_symbols
        own = {layer_of(v) for v in inputs} - {None}
        alone = layer_of(step.name) is None and not inputs & steps and len(own) == 1
        layer_for[step.name] = own.pop() if alone else upcoming

    def ungrouped(name) -> str:
        if name in leaves:
            return "Other parameters"
        return "Output" if layer_for.get(name) is None else f"Layer {layer_for[name]}"

    gradients.sort(key=lambda item: (layer_of(item[0]) is None, layer_of(item[0]) or 0))

    def forward_layer(item):  # a step of parameters alone moves down to its layer
        layer = layer_of(item[0]) if layer_of(item[0]) is not None else layer_for.get(item[0])
        return (layer is None, layer or 0)

    forward.sort(key=forward_layer)
    blocks = []
    for title, items in parts:
        if items:
            blocks.append(Block(title))
            blocks += _layer_runs(items, ungrouped)
    return blocks


def _layer_runs(items, ungrouped) -> list[Block]:
    runs: list[tuple[str, list[Equation]]] = []
    for name, equation in items:
        layer = layer_of(name)
        title = f"Layer {layer}" if layer is not None else ungrouped(name)
        if not runs or runs[-1][0] != title:
            runs.append((title, []))
        runs[-1][1].append(equation)
    return [Block(title, tuple(eqs), level=2) for title, eqs in runs]


def _sides(derivation, step, printer: _Printer, chain: bool, lhs: str) -> tuple[str, ...]:
    value = printer.doprint(derivation.adjoint_rhs(step))
    if not chain or _is_matrix(step.primal):
        return (value,)
    terms = []
    for u in step.uses:
        local = printer.partial(u, step.primal)
        terms.append(local if u == derivation.output else rf"{printer.adjoint(u)}\,{local}")
    symbolic = " + ".join(terms)
    if symbolic in (value, lhs):
        return (value,)
    return (symbolic, value)


def _adjoint_equation(derivation, step, printer: _Printer, chain: bool) -> Equation:
    lhs = printer.adjoint(step.primal)
    return Equation(lhs, _sides(derivation, step, printer, chain, lhs))


def _gradient_equation(derivation, v, step, printer: _Printer, chain: bool) -> Equation:
    lhs = printer.partial(derivation.output, v)
    if step is None:
        return Equation(lhs, (printer.doprint(sympy.S.Zero),))
    return Equation(lhs, _sides(derivation, step, printer, chain, lhs))


def _is_matrix(expr) -> bool:
    return bool(getattr(expr, "is_Matrix", False))


# ---------------------------------------------------------------- rows


def equation_rows(
    equation: Equation, width: float = WIDTH, lhs_width: float | None = None
) -> list[str]:
    r"""The `align` rows of one equation: ``lhs &= rhs`` on one row when it fits, else each
    side of the chain on its own ``&= ...`` row and long sides continued on ``&\quad + ...``.
    """
    lhs_width = latex_width(equation.lhs) if lhs_width is None else lhs_width
    room = max(width - lhs_width - _EQUALS, 16.0)
    whole = " = ".join(equation.sides)
    if latex_width(whole) <= room:
        return [f"{equation.lhs} &= {whole}"]
    rows = []
    for k, side in enumerate(equation.sides):
        first, *rest = break_expression(side, room)
        rows.append(f"{equation.lhs if k == 0 else ''} &= {first}")
        rows += [rf"&\quad {line}" for line in rest]
    return rows


# ---------------------------------------------------------------- rendering


def render_latex(blocks: Sequence[Block], environment: str = "align", width: float = WIDTH) -> str:
    r"""`blocks` as one ``align*`` environment (titles as ``\intertext``) or one ``aligned``
    environment (titles as rows of text, for ``$$...$$`` in Markdown and Jupyter).

    Raises:
        LayoutError: `environment` is not ``"align"`` or ``"aligned"``.
    """
    _choice("environment", environment, ENVIRONMENTS)
    lhs_width = max((latex_width(e.lhs) for b in blocks for e in b.equations), default=0.0)
    rows: list[tuple[str, str]] = []  # (kind, text): "math", "part" or "layer"
    for block in blocks:
        if block.title:
            rows.append(("part" if block.level == 1 else "layer", block.title))
        for equation in block.equations:
            rows += [("math", row) for row in equation_rows(equation, width, lhs_width)]
    if environment == "align":
        return _align(rows)
    lines = [_title_row(kind, text) for kind, text in rows]
    for k in range(len(lines) - 1):
        lines[k] += r" \\[1ex]" if rows[k + 1][0] == "part" else r" \\"
    return "\n".join([r"\begin{aligned}", *lines, r"\end{aligned}"])


def _align(rows: list[tuple[str, str]]) -> str:
    r"""``align*`` with titles as ``\intertext`` (a part title and the layer title after it
    share one, which saves the display skip between them)."""
    lines: list[str] = []
    last_math = max((k for k, (kind, _) in enumerate(rows) if kind == "math"), default=-1)
    for k, (kind, text) in enumerate(rows):
        if kind == "math":
            lines.append(text + (r" \\" if k < last_math else ""))
        elif kind == "layer" and k > 0 and rows[k - 1][0] == "part":
            lines[-1] = lines[-1].removesuffix("}") + rf"\newline {text}}}"
        else:
            lines.append(
                rf"\intertext{{\textbf{{{text}}}}}" if kind == "part" else rf"\intertext{{{text}}}"
            )
    return "\n".join([r"\begin{align*}", *lines, r"\end{align*}"])


def _title_row(kind: str, text: str) -> str:
    if kind == "math":
        return text
    return rf"&\textbf{{{text}}}" if kind == "part" else rf"&\text{{{text}}}"


def render_markdown(blocks: Sequence[Block], width: float = WIDTH, level: int = 3) -> str:
    """`blocks` as Markdown: a heading per block and a ``$$\\begin{aligned}`` block of its
    equations (the form GitHub renders: blank lines around ``$$``, no ``\\intertext``)."""
    out = []
    lhs_width = max((latex_width(e.lhs) for b in blocks for e in b.equations), default=0.0)
    for block in blocks:
        if block.title:
            out += ["#" * (level + block.level - 1) + " " + block.title, ""]
        if block.equations:
            rows = [r for e in block.equations for r in equation_rows(e, width, lhs_width)]
            out += ["$$", r"\begin{aligned}", *[r + " " + _NEWLINE for r in rows[:-1]], rows[-1]]
            out += [r"\end{aligned}", "$$", ""]
    return "\n".join(out)


def equations_to_latex(
    equations: Iterable[Sequence],
    environment: str = "align",
    width: float = WIDTH,
    notation: str = "bar",
) -> str:
    r"""Hand-made equations, each ``(lhs, rhs, ...)`` of SymPy objects or LaTeX strings, as
    one environment laid out like a derivation (scalar or matrix expressions alike).

    >>> W, X = sympy.MatrixSymbol("W", 2, 2), sympy.MatrixSymbol("X", 2, 3)
    >>> print(equations_to_latex([("Z", W * X)]))
    \begin{align*}
    Z &= W X
    \end{align*}
    """
    printer = _Printer(notation)

    def tex(x) -> str:
        return x if isinstance(x, str) else printer.doprint(x)

    eqs = tuple(Equation(tex(lhs), tuple(tex(s) for s in sides)) for lhs, *sides in equations)
    return render_latex([Block("", eqs)], environment, width)


def derivation_to_latex(
    derivation,
    environment: str = "align",
    notation: str = "bar",
    by_layer: bool | None = None,
    width: float = WIDTH,
    chain: bool = True,
) -> str:
    r"""The derivation as one ``align*`` (or ``aligned``) environment, a row per step.

    Args:
        derivation: the Derivation to lay out.
        environment: ``"align"`` for a document, ``"aligned"`` inside ``$$`` (Jupyter).
        notation: adjoints as ``"bar"`` ($\bar{v}$), ``"partial"`` ($\partial L/\partial v$)
            or ``"delta"`` ($\delta^{(l)}$ for pre-activations $z^{(l)}$, $\partial L/\partial v$
            for the others).
        by_layer: group per layer (None: when the steps are named ``z^{(l)}``, ``a^{(l)}``).
        width: the width budget of a row in characters of rendered math.
        chain: show $\bar{u}\,\partial u/\partial v$ before the value of each adjoint.

    Raises:
        LayoutError: an option has a value it does not accept.
    """
    blocks = derivation_blocks(derivation, notation, by_layer, chain)
    return render_latex(blocks, environment, width)


def derivation_to_markdown(
    derivation,
    notation: str = "bar",
    by_layer: bool | None = None,
    width: float = WIDTH,
    chain: bool = True,
    level: int = 3,
) -> str:
    """The derivation as Markdown: a heading per part (and layer), ``$$`` blocks GitHub renders.

    Options as in `derivation_to_latex`; `level` is the heading level of the parts.
    """
    return render_markdown(derivation_blocks(derivation, notation, by_layer, chain), width, level)


def standalone_document(body: str, title: str | None = None) -> str:
    """A complete LaTeX document around `body` that compiles with pdflatex (amsmath, geometry)."""
    head = [
        r"\documentclass[11pt]{article}",
        r"\usepackage[utf8]{inputenc}",
        r"\usepackage[margin=2cm]{geometry}",
        r"\usepackage{amsmath,amssymb}",
        r"\allowdisplaybreaks",
        r"\begin{document}",
    ]
    if title:
        head.append(rf"\section*{{{title}}}")
    return "\n".join([*head, body, r"\end{document}", ""])
