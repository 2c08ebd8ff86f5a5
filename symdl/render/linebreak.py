r"""Reading LaTeX math as text: its rendered width, its top-level pieces, and line breaking.

SymPy's `latex()` never wraps; these helpers cut a long right-hand side at top-level + and −
(or between factors), never inside a group such as ``\left(...\right)``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

WIDTH = 70
"""Default width budget of a row, in characters of rendered math (`latex_width`). Measured with
pdflatex: rows up to about 75 fill an 11pt A4 page with 2 cm margins; 70 leaves room."""


class LayoutError(ValueError):
    """LaTeX that cannot be laid out (unbalanced groups), or an option it does not accept."""


_COMMAND = re.compile(r"\\([A-Za-z]+\*?|.)")
_TEXT_COMMANDS = {
    "operatorname", "operatorname*", "mathrm", "text", "textrm", "textbf", "mathbf", "mathit",
    "mathsf", "mathcal", "mathbb", "boldsymbol", "bar", "hat", "tilde", "vec", "overline",
    "widehat", "widetilde", "dot", "ddot", "sqrt", "mathop",
}  # fmt: skip
_ZERO = {"left", "right", "limits", "nolimits", "displaystyle", "textstyle", "!", "big", "Big"}
_SPACES = {",": 0.3, ":": 0.4, ";": 0.5, " ": 0.5, "quad": 2.0, "qquad": 4.0}
_WIDE = {"cdot": 1.5, "circ": 1.5, "odot": 2.5, "otimes": 2.5, "times": 2.5, "mapsto": 3.0}
_RELATIONS = {"=": 3.0, "<": 3.0, ">": 3.0, "+": 2.5, "-": 2.5}
_SCRIPT = 0.65


def latex_width(tex: str) -> float:
    r"""The approximate width of rendered LaTeX math, in characters (commands stripped).

    Letters and Greek letters count 1, scripts 0.65 each (a superscript above a subscript
    counts once), a fraction the wider of its parts, ``\operatorname{ReLU}`` 4, a delimiter 0.7, binary
    operators with their spacing 2.5.

    >>> latex_width(r"\operatorname{ReLU}\left(x\right)")
    6.4
    >>> latex_width(r"\frac{a}{b c}")
    2.5
    """
    return _Scanner(tex).width()


class _Scanner:
    """A small reader of LaTeX math: groups, commands, environments, at one depth."""

    def __init__(self, tex: str):
        self.tex = tex
        self.i = 0

    def group(self) -> str:
        """The next argument: a braced group's content, a command or a single character."""
        tex = self.tex
        while self.i < len(tex) and tex[self.i] == " ":
            self.i += 1
        if self.i >= len(tex):
            return ""
        if tex[self.i] == "{":
            end = _matching_brace(tex, self.i)
            content, self.i = tex[self.i + 1 : end], end + 1
            return content
        m = _COMMAND.match(tex, self.i)
        end = m.end() if m else self.i + 1
        token, self.i = tex[self.i : end], end
        return token

    def width(self) -> float:
        total, last_script = 0.0, None
        tex = self.tex
        while self.i < len(tex):
            c = tex[self.i]
            if c in "^_":
                self.i += 1
                w = _SCRIPT * latex_width(self.group())
                if last_script is not None:  # stacked super- and subscript
                    total += max(0.0, w - last_script)
                    last_script = None
                else:
                    total += w
                    last_script = w
                continue
            last_script = None
            if c == "\\":
                total += self._command()
            elif c == "{":
                total += latex_width(self.group())
            elif c in _RELATIONS:
                total += _RELATIONS[c]
                self.i += 1
            elif c in " &}":
                self.i += 1
            else:
                total += 1.0
                self.i += 1
        return total

    def _command(self) -> float:
        m = _COMMAND.match(self.tex, self.i)
        name = m[1]
        self.i = m.end()
        if name in ("frac", "dfrac", "tfrac"):
            return max(latex_width(self.group()), latex_width(self.group())) + 0.5
        if name in _TEXT_COMMANDS:
            return latex_width(self.group())
        if name in ("left", "right"):
            return 0.0 if self.group() == "." else 0.7
        if name == "begin":
            return self._environment()
        if name in _ZERO or name.startswith(("big", "Big")):
            return 0.0
        return _SPACES.get(name, _WIDE.get(name, 1.0))

    def _environment(self) -> float:
        env = self.group()
        body_start = self.i
        end = _find_end(self.tex, body_start, env)
        self.i = end + len(rf"\end{{{env}}}")
        rows = split_top(self.tex[body_start:end], r"\\")
        return max(
            (sum(latex_width(cell) + 1.0 for cell in split_top(row, "&")) for row in rows),
            default=0.0,
        )


def _matching_brace(tex: str, start: int) -> int:
    depth = 0
    i = start
    while i < len(tex):
        c = tex[i]
        if c == "\\":
            i += 2
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise LayoutError(f"unbalanced braces in LaTeX: {tex[start : start + 60]!r}")


def _find_end(tex: str, start: int, env: str) -> int:
    depth = 1
    for m in re.finditer(rf"\\(begin|end)\{{{re.escape(env)}\}}", tex[start:]):
        depth += 1 if m[1] == "begin" else -1
        if depth == 0:
            return start + m.start()
    raise LayoutError(rf"\begin{{{env}}} without \end{{{env}}} in {tex[:60]!r}")


def _depths(tex: str) -> Iterable[tuple[int, int]]:
    r"""(index, depth) of each character: braces, \left...\right, \begin...\end, ( ) and [ ]."""
    depth, i = 0, 0
    while i < len(tex):
        c = tex[i]
        if c == "\\":
            m = _COMMAND.match(tex, i)
            name = m[1]
            if name in ("left", "begin"):
                yield i, depth
                depth += 1
            elif name in ("right", "end"):
                depth -= 1
                yield i, depth
            else:
                yield i, depth
            i = m.end()
            if name in ("left", "right"):  # the delimiter belongs to the command
                d = _COMMAND.match(tex, i)
                i = d.end() if d and tex[i] == "\\" else i + 1
            continue
        if c in "{([":
            yield i, depth
            depth += 1
        elif c in "})]":
            depth -= 1
            yield i, depth
        else:
            yield i, depth
        i += 1


def split_top(tex: str, separator: str) -> list[str]:
    r"""`tex` split at `separator` where it occurs outside every group.

    >>> split_top(r"a & \begin{matrix}1 & 2\end{matrix} & \left(b & c\right)", "&")
    ['a ', ' \\begin{matrix}1 & 2\\end{matrix} ', ' \\left(b & c\\right)']
    """
    parts, start = [], 0
    for i, depth in _depths(tex):
        if depth == 0 and i >= start and tex.startswith(separator, i):
            parts.append(tex[start:i])
            start = i + len(separator)
    parts.append(tex[start:])
    return parts


_CDOT = r"\cdot"
_IMPLICIT = ("", r"\,")  # products without a visible sign: a continuation line shows \cdot
_TERM = re.compile(r" ([+-]) ")
_FACTOR = re.compile(r"\s*(\\cdot|\\circ|\\odot|\\otimes|\\times|\\,)\s*|\s+")
_OPERATOR_LAST = re.compile(
    r"\\(sum|prod|int|lim|max|min|sup|inf|log|exp|det)([_^](\{[^{}]*\}|\\?.))*$"
)


def _pieces(tex: str, pattern: re.Pattern) -> list[tuple[str, str]]:
    """(separator, piece) pairs of `tex` cut where `pattern` matches at depth 0."""
    top = {i for i, depth in _depths(tex) if depth == 0}
    pieces, start, sep = [], 0, ""
    for m in pattern.finditer(tex):
        if m.start() not in top or m.start() == 0 or not tex[start : m.start()].strip():
            continue
        before = tex[start : m.start()].strip()
        if pattern is _FACTOR and (before in "-+" or _OPERATOR_LAST.search(before)):
            continue
        pieces.append((sep, before))
        start, sep = m.end(), (m.group(1) or "").strip()
    pieces.append((sep, tex[start:].strip()))
    return pieces


def break_expression(tex: str, width: float = WIDTH) -> list[str]:
    r"""`tex` cut into lines no wider than `width`: at top-level + and − first, then at
    top-level factors of an over-long product; never inside a group such as ``\left(...\right)``.

    Every line after the first starts with its operator (``+ ...``, ``- ...``, ``\cdot ...``).
    A single factor wider than `width` stays whole.

    >>> break_expression("a + b - c", width=6)
    ['a + b', '- c']
    """
    parts: list[tuple[str, str]] = []
    for op, term in _pieces(tex, _TERM):
        if latex_width(term) <= width:
            parts.append((op, term))
            continue
        factors = _pieces(term, _FACTOR)
        parts.append((op, factors[0][1]))
        parts += [(sep or "", factor) for sep, factor in factors[1:]]
    lines = _pack(parts, width)
    if len(lines) > 1:  # balance: the narrowest budget that needs no more lines
        low, high = latex_width(tex) / len(lines), width
        for _ in range(12):
            middle = (low + high) / 2
            low, high = (low, middle) if len(_pack(parts, middle)) <= len(lines) else (middle, high)
        lines = _pack(parts, high)
    return lines


def _pack(parts: list[tuple[str, str]], width: float) -> list[str]:
    """Greedy lines of at most `width` (continuation lines, after a quad, of `width` − 2)."""
    lines: list[str] = []
    current = ""
    for op, piece in parts:
        joined = f"{current} {op} {piece}" if op else f"{current} {piece}"
        budget = width - (_SPACES["quad"] if lines else 0)
        if current and latex_width(joined) > budget:
            lines.append(current)
            current = f"{_CDOT if op in _IMPLICIT else op} {piece}"
        else:
            current = joined.strip() if current else (f"{op} {piece}" if op else piece)
    lines.append(current)
    return lines


_WRAPPER = re.compile(
    r"^\s*(\$\$)?\s*\\begin\{(align\*?|aligned|equation\*?|gather\*?|gathered)\}"
    r"(?P<body>.*)\\end\{\2\}\s*(\$\$)?\s*$",
    re.DOTALL,
)
_INTERTEXT = re.compile(r"^\s*\\intertext\{")


def _lines_of(text: str) -> list[str]:
    return [line for part in split_top(text, "\\newline") for line in split_top(part, "\\\\")]


def rows_of(tex: str) -> list[str]:
    r"""The rows of LaTeX math: the body of one ``align*``/``aligned``/``equation`` environment
    (or bare rows) split at top-level ``\\``, each ``\intertext{...}`` a row of its own.

    >>> rows_of("\\begin{align*}\n\\intertext{Forward} a &= b \\\\\nc &= d\n\\end{align*}")
    ['\\intertext{Forward}', 'a &= b', 'c &= d']
    """
    match = _WRAPPER.match(tex)
    body = match["body"] if match else tex
    rows = []
    for row in split_top(body, "\\\\"):
        row = re.sub(r"^\[[^\]]*\]", "", row.strip()).strip()  # the [1ex] of \\[1ex]
        while _INTERTEXT.match(row):
            start = row.index("{")
            end = _matching_brace(row, start)
            rows += [rf"\intertext{{{t.strip()}}}" for t in _lines_of(row[start + 1 : end])]
            row = row[end + 1 :].strip()
        if row:
            rows.append(row)
    return rows
