"""Safe parsing of formulas written as text, Python syntax or LaTeX, never evaluated as code:
`parse` checks the text (symdl/parsing/errors.py), then hands it to the Python or the LaTeX
reader, which build SymPy objects through the guarded Builder with names from a Namespace."""

from __future__ import annotations

import re

from sympy import Expr
from sympy.logic.boolalg import Boolean

from symdl.core.time_limit import time_limit
from symdl.parsing.builder import Builder, Ones
from symdl.parsing.errors import (
    HARD_TIME_LIMIT,
    ParseError,
    check_finite,
    check_text,
    looks_like_latex,
)
from symdl.parsing.latex import parse_latex
from symdl.parsing.namespace import namespace_of
from symdl.parsing.python import parse_python


def parse(text: str, namespace=None, shape: tuple | None = None):
    """A formula as SymPy objects: a scalar expression, a matrix, or a list (from ``[a, b]``).

    Python syntax (``"2*(a - y)*x"``, ``"delta*x.T"``) or LaTeX (``r"\\sigma(z)(1-\\sigma(z))"``).
    Nothing in `text` is ever executed; a name means a symbol, a matrix or a function of
    `namespace` (a `symdl.parsing.namespace.Namespace`; by default unknown names are new real symbols).
    An all-ones vector (``\\mathbf{1}``) whose length nothing in the text decides gets `shape`,
    when given (a claimed gradient has the shape of its variable).

    Raises:
        ParseError: the text is not a formula, is too long or too deeply nested, or names
            something unknown; the message points at the position.

    >>> parse("2*(a - y)*x")
    2*x*(a - y)
    >>> parse(r"\\frac{1}{2} \\sigma(z)^2")
    sigmoid(z)**2/2
    """
    if namespace is None:
        namespace = namespace_of(new_symbols=True)
    if not isinstance(text, str):
        raise ParseError(f"expected text, got {type(text).__name__}")
    check_text(text)
    text = _normalised(text)
    try:
        with _time_limit(text):
            return _whole(_read(text, namespace), text, shape)
    except ParseError:
        raise
    except RecursionError:
        raise ParseError("the formula is nested too deeply to build", text) from None
    except (ArithmeticError, AttributeError, TypeError, ValueError, NotImplementedError) as error:
        # a function given what it cannot take, e.g. trace(x) of a scalar x
        reason = str(error).splitlines()[0][:200] if str(error) else type(error).__name__
        raise ParseError(f"cannot build the formula: {reason}", text) from None


def _time_limit(text: str):
    """Stop parsing after HARD_TIME_LIMIT seconds, SymPy's own evaluation included (the
    Builder bounds each step it takes, but not SymPy's work inside one, e.g. Max of 100
    arguments). The timer works only in the main thread; elsewhere the Builder's bound alone
    applies."""
    return time_limit(
        HARD_TIME_LIMIT,
        lambda: ParseError(
            f"the formula takes more than {HARD_TIME_LIMIT:g} s to build; simplify it", text
        ),
    )


def _whole(result, text: str, shape: tuple | None):
    """`result`, with an all-ones vector whose length nothing decided of `shape`."""
    if isinstance(result, Boolean) and not isinstance(result, Expr):
        raise ParseError(
            "a condition (such as x > 0) is not a formula's value; write Piecewise((1, x > 0),"
            " (0, True)) or Heaviside(x)",
            text,
            0,
        )
    if isinstance(result, Ones):
        if shape is not None and len(shape) == 2:
            return result.of_shape(shape[::-1] if result.row else shape)
        Builder(text).fitted(result)
    return result


def _read(text: str, namespace):
    if looks_like_latex(text):
        try:
            return check_finite(parse_latex(text, namespace), text)
        except ParseError as latex_error:
            if _looks_like_code(text):
                raise
            try:  # W^{(2)}.T*bar_Z^{(2)}: names with braces, as str() prints them, in Python
                return check_finite(parse_python(text, namespace), text)
            except ParseError:
                raise latex_error from None
    try:
        python_text = _outside_names(text, namespace, lambda t: _PYTHON_T.sub(".T", t))
        return check_finite(parse_python(python_text, namespace), python_text)
    except ParseError as python_error:
        if not python_error.reason.startswith("not valid Python syntax") or _looks_like_code(text):
            raise
        primed = _PYTHON_PRIME.sub(".T", python_text)  # A' for a transpose, as in MATLAB
        if primed != python_text:
            try:
                return check_finite(parse_python(primed, namespace), primed)
            except ParseError:
                pass  # then the LaTeX reader decides, as for any text that is not Python
        try:  # "2(a - y)x" is not Python, but it is LaTeX
            return check_finite(parse_latex(text, namespace), text)
        except ParseError as latex_error:
            if not latex_error.reason.startswith(_SYNTAX):  # read, but wrong (a shape): say so
                raise latex_error from None
            raise python_error from None


def _outside_names(text: str, namespace, rewrite) -> str:
    """`text` rewritten by `rewrite` except inside the names of `namespace` that are not plain
    identifiers (a step named K_1^T keeps its ^T)."""
    names = namespace.unusual_names_in(text)
    if not names:
        return rewrite(text)
    parts = re.split("(" + "|".join(map(re.escape, names)) + ")", text)
    return "".join(p if k % 2 else rewrite(p) for k, p in enumerate(parts))


def _right_side(text: str) -> str:
    """What follows the last ``=`` outside brackets (``\\sum_{i=1}`` keeps its ``=``)."""
    depth, last, cases = 0, None, 0
    for m in re.finditer(r"\\begin\{cases\}|\\end\{cases\}|[([{]|[)\]}]|(?<![<>=!])=(?!=)", text):
        if m[0].startswith("\\"):  # x = 0 in a case's condition is not an equation's =
            cases += 1 if m[0].startswith("\\begin") else -1
        elif m[0] in "([{":
            depth += 1
        elif m[0] in ")]}":
            depth -= 1
        elif depth == 0 and cases == 0:
            last = m.end()
    return text if last is None else text[last:]


_SYNTAX = ("unexpected", "expected", "unsupported", "not valid")
_MATH = re.compile(r"^\s*(?:\$\$(.*)\$\$|\$(.*)\$|\\\[(.*)\\\]|\\\((.*)\\\))\s*$", re.S)
_TRANSPOSE = re.compile(r"\\(?:mathsf|mathrm|text)\{T\}|\\intercal")
_PYTHON_PRIME = re.compile(r"(?<=[A-Za-z0-9_)\]])'(?!\s*\()")  # sigma'(z) is a derivative
_PYTHON_T = re.compile(r"\^\s*(?:\{\s*T\s*\}|T)(?![A-Za-z0-9_])")


def _normalised(text: str) -> str:
    """`text` without what surrounds a formula in a document: ``$...$``, ``\\[...\\]``, a left
    side ``\\nabla_W L =`` or ``\\frac{\\partial L}{\\partial W} =``; transposes written
    ``^\\mathsf{T}`` as ``^T``."""
    m = _MATH.match(text)
    if m:
        text = next(g for g in m.groups() if g is not None)
    text = _right_side(text)
    text = _TRANSPOSE.sub("T", text)
    return text.strip() or text


_STATEMENTS = re.compile(
    r"\blambda\b[^:]*:|\b(import|from|def|class|return|yield|global|nonlocal|del|pass|raise|try|except"
    r"|finally|with|assert|async|await|while|for|exec|eval|print)\b|__|[;\"`@$]"
)


def _looks_like_code(text: str) -> bool:
    """Python statements or string literals: not to be read as LaTeX (i m p o r t o s)."""
    return bool(_STATEMENTS.search(text))
