"""Export to .tex (compiled by pdflatex), .md, .pdf and .png; failed exports leave no file."""

from __future__ import annotations

import doctest
import io
import os
import re
import subprocess
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest
import sympy

import symdl as sd
from symdl.cli.demo import small_network
from symdl.render import export as export_module
from symdl.render.export import (
    ExportError,
    LatexFailed,
    LatexNotFound,
    export,
    find_latex_engine,
    png_bytes,
    png_size,
    render_png,
    to_mathtext,
)
from symdl.render.linebreak import rows_of


def require_pdflatex() -> str:
    """pdflatex's path; in CI (CI or SYMDL_REQUIRE_TEX set) its absence fails the test."""
    try:
        return find_latex_engine("pdflatex")
    except LatexNotFound as exc:
        if os.environ.get("CI") or os.environ.get("SYMDL_REQUIRE_TEX"):
            pytest.fail(f"CI must compile the LaTeX: {exc}")
        pytest.skip(f"pdflatex is not installed, so the .tex is not compiled: {exc}")


@pytest.fixture(scope="module")
def network():
    loss, params, names = small_network()
    return sd.derive(loss, params, names=names)


@pytest.fixture(scope="module")
def wide():
    ws, xs = sympy.symbols("w_1:25", real=True), sympy.symbols("x_1:25", real=True)
    b, y = sympy.symbols("b y", real=True)
    z = sum(w * x for w, x in zip(ws, xs, strict=True)) + b
    loss = sd.binary_cross_entropy(sd.sigmoid(z), y) + sd.l2(list(ws[:4]))
    return sd.derive(loss, [*ws, b], names={z: "z"})


def leftovers(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def compile_tex(path, engine: str) -> str:
    """Run pdflatex on `path` in its folder; its log (the test's own check, not symdl's)."""
    result = subprocess.run(
        [engine, "-interaction=nonstopmode", "-halt-on-error", path.name],
        cwd=path.parent,
        capture_output=True,
        timeout=120,
    )
    log = path.with_suffix(".log").read_text(errors="replace")
    assert result.returncode == 0, log[-3000:]
    assert path.with_suffix(".pdf").stat().st_size > 1000
    return log


@pytest.mark.parametrize("notation", ["bar", "partial", "delta"])
def test_tex_is_a_standalone_document_that_pdflatex_compiles(network, tmp_path, notation):
    engine = require_pdflatex()
    path = export(network, tmp_path / "net.tex", title="Backpropagation", notation=notation)
    tex = path.read_text()
    assert tex.startswith(r"\documentclass") and r"\usepackage{amsmath" in tex
    assert r"\begin{align*}" in tex and tex.rstrip().endswith(r"\end{document}")
    log = compile_tex(path, engine)
    assert "Overfull" not in log and "LaTeX Warning" not in log


def test_long_rows_are_broken_to_fit_the_page(wide, tmp_path):
    engine = require_pdflatex()
    assert any(row.startswith(r"&\quad") for row in rows_of(wide.to_latex()))
    log = compile_tex(export(wide, tmp_path / "wide.tex"), engine)
    assert "Overfull" not in log
    unbroken = export(wide, tmp_path / "unbroken.tex", width=1000)
    assert "Overfull" in compile_tex(unbroken, engine)  # the check above can fail


def test_pdf_through_the_installed_engine(network, tmp_path):
    require_pdflatex()
    path = export(network, tmp_path / "net.pdf", engine="pdflatex")
    assert path.read_bytes().startswith(b"%PDF") and path.stat().st_size > 1000
    assert leftovers(tmp_path) == ["net.pdf"]


def test_missing_engine_says_what_to_install(network, tmp_path, monkeypatch):
    monkeypatch.setattr(export_module.shutil, "which", lambda name: None)
    with pytest.raises(LatexNotFound, match="pdflatex, lualatex, xelatex.*texlive-latex-base"):
        export(network, tmp_path / "net.pdf")
    assert leftovers(tmp_path) == []


def test_failed_latex_quotes_the_log_and_leaves_the_old_file(tmp_path):
    require_pdflatex()
    path = tmp_path / "bad.pdf"
    path.write_bytes(b"old")
    with pytest.raises(LatexFailed, match=r"Undefined control sequence") as info:
        export(r"a &= \notacommand{b}", path)
    assert r"\notacommand" in info.value.log
    assert path.read_bytes() == b"old" and leftovers(tmp_path) == ["bad.pdf"]


def test_markdown_follows_what_github_renders(network, tmp_path):
    path = export(network, tmp_path / "net.md", title="Backpropagation")
    lines = path.read_text().splitlines()
    assert lines[0] == "# Backpropagation" and "## Forward pass" in lines
    opening = [k for k, line in enumerate(lines[:-1]) if line == "$$" and lines[k + 1] != ""]
    assert opening and all(lines[k - 1] == "" for k in opening)
    assert all(lines[k + 1] == r"\begin{aligned}" for k in opening)
    assert lines.count("$$") == 2 * len(opening)
    assert r"\intertext" not in path.read_text()


def test_markdown_of_latex_text(tmp_path):
    text = "\\begin{align*}\n\\intertext{\\textbf{Update}}\nm &= \\beta m + g \\\\\nw &= w - m\n\\end{align*}"
    md = export(text, tmp_path / "adam.md").read_text()
    assert md.splitlines()[:4] == ["**Update**", "", "$$", r"\begin{aligned}"]
    assert r"m &= \beta m + g \\" in md and "w &= w - m\n" in md


def test_png_is_an_image_of_the_predicted_size(network, tmp_path):
    path = export(network, tmp_path / "net.png", dpi=100, fontsize=12)
    image = matplotlib.image.imread(path)
    rows = len(rows_of(network.to_latex()))
    height, width = image.shape[:2]
    assert (height, width) == (png_size(rows, width - 50, dpi=100, fontsize=12)[1], width)
    assert height == rows * round(2.6 * 12 * 100 / 72) + 2 * 25
    assert 200 < width < 2000
    ink = image[..., :3].mean(axis=2) < 0.5
    assert 0.005 < ink.mean() < 0.3  # drawn, and not a black box
    assert not ink[:20].any() and not ink[:, :20].any()  # the margins stay white


def test_png_width_can_be_fixed(tmp_path):
    path = render_png(
        [r"x &= \operatorname{ReLU}\left(z\right)", r"&\quad + 1"], tmp_path / "a.png", width_px=321
    )
    assert matplotlib.image.imread(path).shape[:2] == (2 * round(2.6 * 14 * 150 / 72) + 2 * 38, 321)


def test_png_draws_rows_aligned_at_the_ampersand():
    rows = [r"x &= 1", r"\frac{\partial L}{\partial w^{(1)}_{11}} &= 2"]
    image = np.asarray(matplotlib.image.imread(io.BytesIO(png_bytes(rows, dpi=100))))
    ink = image[..., :3].mean(axis=2) < 0.5
    row_height = round(2.6 * 14 * 100 / 72)
    first, second = ink[25 : 25 + row_height], ink[25 + row_height : 25 + 2 * row_height]
    # the "=" sits in the same columns: the first row's ink starts right of the second's
    assert np.argmax(first.any(axis=0)) > np.argmax(second.any(axis=0)) + 20


def test_mathtext_translation():
    assert to_mathtext(r"\operatorname{ReLU}\left(x\right) &= a \\") == (
        r"\mathrm{ReLU}\left(x\right)",
        "= a",
    )
    assert to_mathtext(r"\intertext{\textbf{Gradients}}") == "Gradients"
    assert to_mathtext(r"&\quad + \tfrac{1}{2} \left\lVert w \right\rVert") == (
        "",
        r"\quad + \frac{1}{2} \left\Vert w \right\Vert",
    )
    assert to_mathtext(r"a &= b & c &= d") == ("a", r"= b \quad c \quad = d")


def test_png_of_a_matrix_fails_clearly_and_leaves_no_file(tmp_path):
    tex = sympy.latex(sympy.Matrix([[1, 2], [3, 4]]))
    with pytest.raises(ExportError, match=r"cannot draw the matrix environment.*\.pdf or \.tex"):
        export(f"A &= {tex}", tmp_path / "m.png")
    with pytest.raises(ExportError, match=r"row 2 .*: Unknown symbol: \\undefinedthing"):
        render_png(["a &= b", r"c &= \undefinedthing"], tmp_path / "u.png")
    assert leftovers(tmp_path) == []


def test_format_by_suffix_or_by_name(network, tmp_path):
    with pytest.raises(ExportError, match=r"unknown format 'docx'.*\.tex, \.md, \.pdf, \.png"):
        export(network, tmp_path / "net.docx")
    path = export(network, tmp_path / "derivation", format="md")
    assert path.read_text().startswith("### Forward pass")
    with pytest.raises(ExportError, match="Derivation or a LaTeX string"):
        export(42, tmp_path / "x.tex")
    assert leftovers(tmp_path) == ["derivation"]


def test_a_whole_document_passes_through_to_tex_only(tmp_path):
    document = "\\documentclass{article}\n\\begin{document}\n$x$\n\\end{document}\n"
    assert export(document, tmp_path / "d.tex").read_text() == document
    with pytest.raises(ExportError, match="whole LaTeX document"):
        export(document, tmp_path / "d.png")


def test_engines_are_looked_up_in_order(monkeypatch):
    found = {"xelatex": "/opt/tex/xelatex", "lualatex": "/opt/tex/lualatex"}
    monkeypatch.setattr(export_module.shutil, "which", found.get)
    assert find_latex_engine() == "/opt/tex/lualatex"
    assert find_latex_engine("xelatex") == "/opt/tex/xelatex"
    with pytest.raises(LatexNotFound, match="looked for pdflatex"):
        find_latex_engine("pdflatex")


def test_rows_match_the_document(network):
    rows = rows_of(network.to_latex())
    assert rows[:2] == [r"\intertext{\textbf{Forward pass}}", r"\intertext{Layer 1}"]
    assert all(re.search(r"&", r) or r.startswith(r"\intertext") for r in rows)


def test_the_examples_in_docs_latex_md_run():
    path = Path(__file__).parents[2] / "docs" / "latex.md"
    flags = doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS
    result = doctest.testfile(str(path), module_relative=False, optionflags=flags)
    assert result.failed == 0 and result.attempted >= 15


@pytest.mark.parametrize("notation", ["bar", "delta"])
def test_every_layer_kind_derives_to_latex_that_pdflatex_compiles(tmp_path, notation):
    """Network derivations of each layer kind: tanh powers (A^{(1)})^{∘2}, conv and pool
    subscripts, batch and layer norm statistics, dropout masks, a residual skip."""
    engine = require_pdflatex()
    nn = sd.nn
    model = nn.Sequential(
        nn.Conv2d(2, 3, stride=2, padding=1, activation="tanh"),
        nn.MaxPool2d(2, stride=1),
        nn.Flatten(),
        nn.Dense(6, "tanh"),
        nn.BatchNorm(),
        nn.Dropout(0.2),
        nn.Residual(nn.Dense(6, "sigmoid"), nn.LayerNorm()),
        nn.Dense(3),
        input_shape=(1, 6, 6),
    )
    path = export(model.derive(), tmp_path / "net.tex", notation=notation)
    log = compile_tex(path, engine)
    assert "Overfull" not in log
