r"""Export derivations (or LaTeX) to files: ``.tex``, ``.md``, ``.pdf`` and ``.png``.

PDF goes through a LaTeX engine when one is installed; PNG through matplotlib's mathtext, so it
needs no TeX. Every file is written atomically: a failed export leaves nothing behind.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from symdl.render.files import write_atomic
from symdl.render.latex import standalone_document
from symdl.render.linebreak import rows_of, split_top

FORMATS = ("tex", "md", "pdf", "png")
ENGINES = ("pdflatex", "lualatex", "xelatex")
INSTALL_HINT = (
    "install a LaTeX engine: on Debian/Ubuntu `sudo apt-get install texlive-latex-base "
    "texlive-latex-recommended texlive-fonts-recommended`, on macOS MacTeX or BasicTeX, on "
    "Windows MiKTeX; or export to .tex, .md or .png, which need no TeX"
)


class ExportError(ValueError):
    """An export that cannot be made: unknown format, or LaTeX that mathtext cannot draw."""


class LatexNotFound(RuntimeError):
    """No LaTeX engine (pdflatex, lualatex, xelatex) is installed."""


class LatexFailed(RuntimeError):
    """The LaTeX engine ran and failed; `log` holds the excerpt of its log that says why."""

    def __init__(self, message: str, log: str = ""):
        super().__init__(message)
        self.log = log


def export(obj, path: str | os.PathLike, format: str | None = None, **options) -> Path:
    r"""Write a derivation (or LaTeX) to `path` as ``.tex``, ``.md``, ``.pdf`` or ``.png``.

    Args:
        obj: a Derivation (or anything with ``to_latex``), or a LaTeX string: rows such as
            ``a &= b \\ c &= d``, one ``align*`` environment, or a whole document.
        path: the file to write; its suffix chooses the format unless `format` is given.
        format: one of FORMATS.
        **options: `title` (a heading), `engine` (for PDF), `dpi` and `fontsize` (for PNG);
            the rest go to ``to_latex``/``to_markdown`` (`notation`, `by_layer`, `width`,
            `chain`).

    Returns:
        The path written.

    Raises:
        ExportError: unknown format, or (PNG) LaTeX that mathtext cannot draw.
        LatexNotFound: (PDF) no LaTeX engine is installed.
        LatexFailed: (PDF) the engine failed; the message quotes its log.
    """
    path = Path(path)
    fmt = (format or path.suffix.removeprefix(".")).lower()
    if fmt not in FORMATS:
        raise ExportError(
            f"export to {str(path)!r}: unknown format {fmt or '(no suffix)'!r}; "
            f"give a path ending in one of {', '.join('.' + f for f in FORMATS)} or format=..."
        )
    title = options.pop("title", None)
    if fmt == "tex":
        data: str | bytes = to_document(obj, title, **options)
    elif fmt == "md":
        data = to_markdown(obj, title, **options)
    elif fmt == "pdf":
        engine = options.pop("engine", None)
        data = compile_pdf(to_document(obj, title, **options), engine=engine)
    else:
        png = {k: options.pop(k) for k in ("dpi", "fontsize", "width_px") if k in options}
        rows = _rows(_latex_of(obj, **options))
        data = png_bytes(([rf"\intertext{{\textbf{{{title}}}}}"] if title else []) + rows, **png)
    return write_atomic(path, data)


def _latex_of(obj, **options) -> str:
    if isinstance(obj, str):
        if options:
            raise ExportError(f"options {sorted(options)} apply to derivations, not to LaTeX text")
        return obj
    if not hasattr(obj, "to_latex"):
        raise ExportError(
            f"export: expected a Derivation or a LaTeX string, got {type(obj).__name__}"
        )
    return obj.to_latex(**options)


def _rows(tex: str) -> list[str]:
    if r"\documentclass" in tex:
        raise ExportError(
            "a whole LaTeX document exports to .tex or .pdf only; for .md or .png give its "
            "align* environment or its rows"
        )
    return rows_of(tex)


def to_document(obj, title: str | None = None, **options) -> str:
    """A standalone LaTeX document (it compiles with pdflatex) of a derivation or LaTeX text.

    A string that is already a document (``\\documentclass``) is returned as it is.
    """
    tex = _latex_of(obj, **options)
    if r"\documentclass" in tex:
        return tex
    if not re.match(r"\s*(\\begin\{|\\\[|\$\$)", tex):
        tex = "\\begin{align*}\n" + tex.strip() + "\n\\end{align*}"
    return standalone_document(tex, title)


def to_markdown(obj, title: str | None = None, **options) -> str:
    """Markdown with ``$$`` blocks that GitHub renders, of a derivation or LaTeX rows."""
    head = [f"# {title}", ""] if title else []
    if not isinstance(obj, str) and hasattr(obj, "to_markdown"):
        if title:
            options.setdefault("level", 2)
        return "\n".join([*head, obj.to_markdown(**options)])
    out, math = head, []

    def flush():
        if math:
            rows = [r + r" \\" for r in math[:-1]] + [math[-1]]
            out.extend(["$$", r"\begin{aligned}", *rows, r"\end{aligned}", "$$", ""])
            math.clear()

    for row in _rows(_latex_of(obj, **options)):
        text = _intertext(row)
        if text is None:
            math.append(row)
            continue
        flush()
        bold = re.fullmatch(r"\\textbf\{(.*)\}", text)
        out.extend([f"**{bold[1]}**" if bold else text, ""])
    flush()
    return "\n".join(out)


def _intertext(row: str) -> str | None:
    match = re.fullmatch(r"\\intertext\{(.*)\}", row.strip(), re.DOTALL)
    return match[1] if match else None


# ---------------------------------------------------------------- PDF through a LaTeX engine


def find_latex_engine(engine: str | None = None) -> str:
    """The path of a LaTeX engine: `engine` if given, else the first of ENGINES installed.

    Raises:
        LatexNotFound: none is on the PATH; the message says what to install.
    """
    wanted = [engine] if engine else list(ENGINES)
    for name in wanted:
        found = shutil.which(name)
        if found:
            return found
    raise LatexNotFound(f"no LaTeX engine found (looked for {', '.join(wanted)}); {INSTALL_HINT}")


def compile_pdf(source: str, engine: str | None = None, timeout: float = 120) -> bytes:
    """Compile LaTeX `source` (a whole document) in a temporary folder; the PDF's bytes.

    Raises:
        LatexNotFound: no LaTeX engine is installed.
        LatexFailed: the engine failed or timed out; the message quotes its log.
    """
    exe = find_latex_engine(engine)
    name = Path(exe).name
    with tempfile.TemporaryDirectory(prefix="symdl-latex-") as tmp:
        folder = Path(tmp)
        (folder / "doc.tex").write_text(source, encoding="utf-8")
        command = [exe, "-interaction=nonstopmode", "-halt-on-error", "-no-shell-escape", "doc.tex"]
        try:
            result = subprocess.run(
                command, cwd=folder, capture_output=True, stdin=subprocess.DEVNULL, timeout=timeout
            )
        except subprocess.TimeoutExpired as exc:
            raise LatexFailed(f"{name} did not finish in {timeout:g} s", _log(folder)) from exc
        pdf = folder / "doc.pdf"
        if result.returncode != 0 or not pdf.exists():
            log = _log(folder) or result.stdout.decode("utf-8", "replace")[-2000:]
            raise LatexFailed(
                f"{name} failed (exit status {result.returncode}):\n{_excerpt(log)}", log
            )
        return pdf.read_bytes()


def _log(folder: Path) -> str:
    log = folder / "doc.log"
    return log.read_text(encoding="utf-8", errors="replace") if log.exists() else ""


def _excerpt(log: str, context: int = 6) -> str:
    """The first error of a TeX log (a line starting with ``!``) and what follows it."""
    lines = log.splitlines()
    for k, line in enumerate(lines):
        if line.startswith("!"):
            return "\n".join(lines[k : k + context])
    return "\n".join(lines[-context * 2 :])


# ---------------------------------------------------------------- PNG through mathtext

_TRANSLATIONS = [
    (re.compile(r"\\operatorname\*?\{"), r"\\mathrm{"),
    (re.compile(r"\\textbf\{"), r"\\mathbf{"),
    (re.compile(r"\\textrm\{"), r"\\mathrm{"),
    (re.compile(r"\\[td]frac(?![A-Za-z])"), r"\\frac"),
    (re.compile(r"\\[lr]Vert(?![A-Za-z])"), r"\\Vert"),
    (re.compile(r"\\[lr]vert(?![A-Za-z])"), r"|"),
    (re.compile(r"\\[bB]igg?[lrm]?(?![A-Za-z])"), ""),
    (re.compile(r"\\(limits|nolimits|displaystyle|textstyle|nonumber|notag)(?![A-Za-z])"), ""),
    (re.compile(r"\\label\{[^{}]*\}"), ""),
]
_NO_MATHTEXT = re.compile(r"\\begin\{(\w+\*?)\}")


def to_mathtext(row: str) -> tuple[str, str] | str:
    r"""One LaTeX row in what matplotlib's mathtext draws: ``(left, right)`` of its first
    ``&`` (either may be empty), or a plain string for an ``\intertext`` row.

    Raises:
        ExportError: the row holds an environment (a matrix, cases) mathtext cannot draw.

    >>> to_mathtext(r"a &= \operatorname{ReLU}\left(z\right) \\")
    ('a', '= \\mathrm{ReLU}\\left(z\\right)')
    """
    row = row.strip().removesuffix(r"\\").strip()
    text = _intertext(row)
    if text is not None:
        return re.sub(r"\\(textbf|emph|textit|text)\{(.*?)\}", r"\2", text)
    unsupported = _NO_MATHTEXT.search(row)
    if unsupported:
        raise ExportError(
            f"PNG export: matplotlib's mathtext cannot draw the {unsupported[1]} environment in "
            f"{row[:80]!r}; export to .pdf or .tex instead"
        )
    for pattern, replacement in _TRANSLATIONS:
        row = pattern.sub(replacement, row)
    left, *rest = split_top(row, "&")
    right = r" \quad ".join(part.strip() for part in rest)  # further align columns are spaced apart
    return left.strip(), right.strip()


def png_size(rows: int, content_width: float, dpi: int = 100, fontsize: float = 14) -> tuple:
    """The (width, height) in pixels of a PNG of `rows` rows whose widest row is
    `content_width` pixels wide: a row is ``2.6 * fontsize`` points high, the margin 1/4 inch.

    >>> png_size(3, 400.7, dpi=100, fontsize=14)
    (450, 203)
    """
    margin = round(dpi / 4)
    row_height = round(2.6 * fontsize * dpi / 72)
    return int(content_width) + 2 * margin, rows * row_height + 2 * margin


def png_bytes(
    latex_rows: Sequence[str] | str,
    dpi: int = 150,
    fontsize: float = 14,
    width_px: int | None = None,
) -> bytes:
    r"""A PNG of LaTeX rows drawn by matplotlib's mathtext, aligned at ``&`` as in ``align``.

    Args:
        latex_rows: rows such as ``a &= b``, or LaTeX text split by `rows_of`;
            ``\intertext{...}`` rows are drawn as bold text.
        dpi, fontsize: the resolution and the font size in points.
        width_px: the width in pixels (default: the widest row plus the margins).

    Returns:
        The PNG's bytes; its size is `png_size` of the rows and the widest row.

    Raises:
        ExportError: a row mathtext cannot draw (the message names it).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = rows_of(latex_rows) if isinstance(latex_rows, str) else list(latex_rows)
    _check_drawable(rows)
    fig = Figure(dpi=dpi)
    renderer = FigureCanvasAgg(fig).get_renderer()
    drawn = [_draw_row(fig, renderer, row, k, fontsize) for k, row in enumerate(rows)]

    def wide(text) -> float:
        return text.get_window_extent(renderer).width if text is not None else 0.0

    column = max((wide(left) for left, right in drawn if right is not None), default=0.0)
    content = max(
        [column + wide(right) for _, right in drawn if right is not None]
        + [wide(left) for left, right in drawn if right is None]
        + [1.0]
    )
    width, height = png_size(len(rows), content, dpi, fontsize)
    width = width_px or width
    margin, row_height = round(dpi / 4), round(2.6 * fontsize * dpi / 72)
    fig.set_size_inches((width + 0.01) / dpi, (height + 0.01) / dpi)  # no rounding down
    for k, (left, right) in enumerate(drawn):
        y = 1 - (margin + (k + 0.62) * row_height) / height
        if right is None:
            left.set_position((margin / width, y))
        else:
            left.set_position(((margin + column) / width, y))
            right.set_position(((margin + column) / width, y))
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, facecolor="white")
    return buffer.getvalue()


PNG_MAX_ROW = 2_000  # characters of one row: mathtext takes seconds per thousand
PNG_MAX_TEXT = 50_000  # characters of all rows
PNG_MAX_DEPTH = 30  # nested braces: mathtext's parser recurses per level


def _check_drawable(rows: Sequence[str]) -> None:
    """Refuse, before mathtext starts, what it cannot draw in reasonable time and stack."""
    total = sum(len(row) for row in rows)
    if total > PNG_MAX_TEXT:
        raise ExportError(
            f"PNG export: {total} characters of LaTeX; mathtext draws at most {PNG_MAX_TEXT} "
            "in reasonable time; export to .pdf or .tex instead"
        )
    for k, row in enumerate(rows):
        depth = deepest = 0
        for ch in row:
            depth += (ch == "{") - (ch == "}")
            deepest = max(deepest, depth)
        if len(row) > PNG_MAX_ROW or deepest > PNG_MAX_DEPTH:
            what = (
                f"{len(row)} characters" if len(row) > PNG_MAX_ROW else f"{deepest} nested braces"
            )
            raise ExportError(
                f"PNG export: row {k + 1} has {what} (at most {PNG_MAX_ROW} characters and "
                f"{PNG_MAX_DEPTH} nested braces are drawn); export to .pdf or .tex instead, or "
                "give a narrower width so rows break"
            )


def _draw_row(fig, renderer, row: str, k: int, fontsize: float):
    """The row's texts on `fig`: (left, right) at the alignment point, or (heading, None)."""
    part = to_mathtext(row)
    style = {"fontsize": fontsize, "usetex": False, "va": "baseline"}
    if isinstance(part, str):
        weight = "bold" if r"\textbf" in row else "normal"
        return fig.text(0, 0, part, weight=weight, family="serif", **style), None
    left, right = (
        fig.text(0, 0, f"${p}$" if p else "", math_fontfamily="cm", ha=ha, **style)
        for p, ha in zip(part, ("right", "left"), strict=True)
    )
    for side in (left, right):
        try:
            side.get_window_extent(renderer)
        except RecursionError:
            raise ExportError(
                f"PNG export: row {k + 1} is nested too deeply for matplotlib's mathtext; "
                "export to .pdf or .tex instead"
            ) from None
        except ValueError as exc:
            raise ExportError(
                f"PNG export: matplotlib's mathtext cannot draw row {k + 1} {row!r}: "
                f"{_reason(exc)}; export to .pdf or .tex instead"
            ) from exc
    return left, right


def _reason(exc: ValueError) -> str:
    """Mathtext's reason (its message starts with a blank line and ends with the reason)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__


def render_png(latex_rows: Sequence[str] | str, path: str | os.PathLike, **options) -> Path:
    """Write a PNG of LaTeX rows (see `png_bytes` for the options) atomically to `path`.

    Returns:
        The path written.
    """
    return write_atomic(path, png_bytes(latex_rows, **options))
