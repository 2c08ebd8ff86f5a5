"""Jupyter: Derivation, Verdict and GradCheck display themselves as LaTeX that compiles and HTML
that is well-formed and escaped; examples/notebook.ipynb runs, its code cells in order as one
script in a subprocess, each cell's last expression displayed as Jupyter would."""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest
import sympy

import symdl as sd
from symdl.render.export import LatexNotFound, compile_pdf, find_latex_engine
from symdl.render.latex import standalone_document

NOTEBOOK = Path(__file__).parents[1] / "examples" / "notebook.ipynb"


# ---------------------------------------------------------------- checking what is displayed


class _Tags(HTMLParser):
    """Every tag closed, in order; the text as a reader sees it."""

    VOID = {"br", "hr", "img", "meta", "input"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.open: list[str] = []
        self.text: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag not in self.VOID:
            self.open.append(tag)

    def handle_endtag(self, tag):
        assert self.open and self.open[-1] == tag, f"</{tag}> closes {self.open}"
        self.open.pop()

    def handle_data(self, data):
        self.text.append(data)


def well_formed(markup: str) -> _Tags:
    parser = _Tags()
    parser.feed(markup)
    parser.close()
    assert not parser.open, f"unclosed tags {parser.open}"
    return parser


def balanced(tex: str) -> None:
    depth = 0
    for ch in re.sub(r"\\[{}]", "", tex):
        depth += {"{": 1, "}": -1}.get(ch, 0)
        assert depth >= 0, tex
    assert depth == 0, tex
    assert tex.count(r"\left") == tex.count(r"\right"), tex
    for start in (m.end() for m in re.finditer(r"\\text(?:bf)?\{", tex)):
        end, depth = start, 1
        while depth:
            depth += {"{": 1, "}": -1}.get(tex[end], 0)
            end += 1
        assert not re.search(r"[_^]", tex[start : end - 1]), f"math in text mode: {tex}"


def compiles(*displays: str) -> None:
    """The displays in one document, compiled by a LaTeX engine (skipped when none is
    installed, except in CI or with SYMDL_REQUIRE_TEX set)."""
    try:
        find_latex_engine()
    except LatexNotFound as exc:
        if os.environ.get("CI") or os.environ.get("SYMDL_REQUIRE_TEX"):
            raise
        pytest.skip(f"no LaTeX engine, so the displays are not compiled: {exc}")
    pdf = compile_pdf(standalone_document("\n\n".join(displays)))
    assert pdf.startswith(b"%PDF-")


@pytest.fixture(scope="module")
def symbols():
    return sympy.symbols("w x b y")


def test_derivation_displays_as_latex():
    model = sd.nn.Sequential(sd.nn.Dense(3, "sigmoid"), sd.nn.Dense(2), input_shape=4)
    shown = model.derive()._repr_latex_()
    assert shown.startswith("$$\\begin{aligned}\n") and shown.endswith("\\end{aligned}$$")
    for part in (
        r"&\textbf{Forward pass} \\",
        r"&\text{Layer 2} \\",
        r"Z^{(1)} &= W^{(1)} X + b^{(1)} \mathbf{1}_{N}^{T} \\",
        r"A^{(1)} &= \sigma\left(Z^{(1)}\right) \\",
        r"&\textbf{Gradients} \\",
        r"\frac{\partial L}{\partial W^{(1)}} &= \bar{Z}^{(1)} X^{T} \\",
    ):
        assert part in shown
    assert r"\intertext" not in shown  # not allowed inside aligned
    balanced(shown)
    compiles(shown)


def test_verdict_displays_as_latex_and_escaped_html():
    odd = sympy.Symbol("s<i>&")  # a name that is markup if not escaped
    v = sd.verify(sd.sigmoid(odd), odd, sd.sigmoid(odd) * (1 + sd.sigmoid(odd)))
    assert not v
    shown = v._repr_latex_()
    assert shown.startswith(r"$$\frac{\partial f}{\partial s<i>&}") and shown.endswith("$$")
    assert r"\text{claimed: }" in shown and r"(\neq)" in shown
    tags = well_formed(v._repr_html_())
    text = "".join(tags.text)
    assert "i" not in tags.tags and text.count("s<i>&") >= 3  # escaped, shown as written
    assert "DIFFERENT" in text and str(v.counterexample) in text
    assert "crimson" in v._repr_html_()

    z = sympy.Symbol("z")
    right = sd.verify(sd.sigmoid(z), z, r"\sigma(z)\,(1-\sigma(z))")
    assert right and "green" in right._repr_html_()
    assert right._repr_latex_().endswith(r"\quad (=)$$")
    assert "EQUAL" in "".join(well_formed(right._repr_html_()).text)
    balanced(right._repr_latex_())
    compiles(right._repr_latex_(), v._repr_latex_().replace("s<i>&", "s"))


def test_gradcheck_displays_as_latex_and_html(symbols):
    w, x, b, y = symbols
    W = sympy.MatrixSymbol("W", 2, 2)
    v = sympy.MatrixSymbol("v", 2, 1)
    holds = sd.check_grad(v.T * W.T * W * v, W, points=2)
    assert holds
    shown = holds._repr_latex_()
    assert shown.startswith(r"$$\checkmark\ \text{central}") and re.search(
        r"W_\{\d,\d\}\)\$\$$", shown
    )
    balanced(shown)

    loss = sd.binary_cross_entropy(sd.sigmoid(w * x + b), y)
    mistaken = [(sd.sigmoid(w * x + b) - y) * x, sd.sigmoid(w * x + b)]  # -y forgotten in d/db
    fails = sd.check_grad(loss, [w, b], grad=mistaken, points=2)
    assert not fails and fails.worst.wrt == b
    shown_fail = fails._repr_latex_()
    assert shown_fail.startswith(r"$$\times") and shown_fail.endswith(r"(\text{worst: } b)$$")
    tags = well_formed(fails._repr_html_())
    assert tags.tags.count("tr") == 1 + 2  # the header, then w and b
    text = "".join(tags.text)
    assert "MISMATCH" in text and fails.summary() in text
    odd = sympy.Symbol("a<b>")
    escaped = sd.check_grad(odd**2, odd, points=1)._repr_html_()
    assert "<b>" not in escaped and "a&lt;b&gt;" in escaped
    well_formed(escaped)
    compiles(shown, shown_fail)


# ---------------------------------------------------------------- the example notebook

PRELUDE = '''\
def _show(value, cell):
    """What Jupyter does with a cell's last expression: ask it for its richest display."""
    for method in ("_repr_html_", "_repr_latex_"):
        if hasattr(type(value), method):
            text = getattr(value, method)()
            assert isinstance(text, str) and text, (cell, method)
            print(f"[cell {cell}] {type(value).__name__}.{method}")
    return value
'''


def notebook_script(path: Path) -> str:
    """The notebook's code cells as one script; a cell's last expression goes to `_show`."""
    notebook = json.loads(path.read_text(encoding="utf-8"))
    assert notebook["nbformat"] == 4
    parts = [PRELUDE]
    for k, cell in enumerate(notebook["cells"]):
        if cell["cell_type"] != "code":
            continue
        tree = ast.parse("".join(cell["source"]), f"cell {k}")  # plain Python, no %magics
        if tree.body and isinstance(tree.body[-1], ast.Expr):
            show = ast.Name("_show", ast.Load())
            tree.body[-1] = ast.Expr(ast.Call(show, [tree.body[-1].value, ast.Constant(k)], []))
        parts.append(f"# cell {k}\n{ast.unparse(ast.fix_missing_locations(tree))}\n")
    return "\n".join(parts)


def test_the_example_notebook_runs(tmp_path):
    script = tmp_path / "notebook.py"
    script.write_text(notebook_script(NOTEBOOK), encoding="utf-8")
    result = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=os.environ | {"MPLBACKEND": "Agg"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    for shown in ("Derivation._repr_latex_", "Verdict._repr_html_", "GradCheck._repr_html_"):
        assert shown in result.stdout
    assert "b is wrong: False" in result.stdout
    accuracy = re.search(r"validation accuracy ([\d.]+)", result.stdout)
    assert accuracy and float(accuracy[1]) >= 0.9  # the tiny training learned the moons
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notebook.py"]  # it writes nothing


def test_notebook_is_clean():
    """Committed without outputs or execution counts, so diffs show code only."""
    cells = json.loads(NOTEBOOK.read_text(encoding="utf-8"))["cells"]
    code = [c for c in cells if c["cell_type"] == "code"]
    assert code and all(not c["outputs"] and c["execution_count"] is None for c in code)
