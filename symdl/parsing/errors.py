"""What a formula may be: the limits on its text and on what it makes SymPy compute, and the
error that names the position where a text breaks them."""

from __future__ import annotations

import math
import re
import sys

import sympy

MAX_LENGTH = 10_000  # characters; a two-layer network's gradient in matrix notation is far less
MAX_DEPTH = 60  # nested brackets
MAX_BITS = 10_000  # size of any number the text makes SymPy compute (2**10000 has 3011 digits)
MAX_ENTRIES = 10_000  # entries of a matrix, and multiply-adds of one matrix product / 20
MAX_VECTOR = 200  # entries of a vector given whole to an op (softmax of n entries has n^2 parts)
MAX_ARGS = 100  # arguments of one call
TIME_LIMIT = 2.5  # CPU seconds to build the formula (each step is bounded; this bounds their sum)
HARD_TIME_LIMIT = 5.0  # CPU seconds for all of parse, SymPy's own evaluation included (main thread)
MAX_TOWER = 3  # exponentials nested in one another: exp(exp(exp(exp(x)))) overflows a double
# for x > -0.5, and SymPy's simplification and evaluation of deeper towers does not end


class ParseError(ValueError):
    """Text that is not a formula symdl accepts; `position` is the offending character (from 0)."""

    def __init__(self, reason: str, text: str = "", position: int | None = None):
        self.reason, self.text, self.position = reason, text, position
        super().__init__(reason + _caret(text, position))


class ShapeMisfit(ParseError):
    """Text that reads as a formula whose matrices do not fit together (a 2x3 times a 2x3, a
    sum of a 2x1 and a 3x1, a division by a matrix): `sd.verify` answers DIFFERENT for it."""


def _caret(text: str, position: int | None) -> str:
    if position is None or not text:
        return ""
    position = max(0, min(position, len(text)))
    start = max(0, position - 40)
    line = text[start : position + 40].replace("\n", " ").replace("\0", "?")
    prefix = "..." if start else ""
    return f" (at character {position})\n    {prefix}{line}\n    {' ' * (len(prefix) + position - start)}^"


def looks_like_latex(text: str) -> bool:
    """LaTeX has backslashes or braces; Python syntax never does."""
    return bool(re.search(r"[\\{}]", text))


def check_finite(result, text: str):
    """`result`, unless it contains an infinity or nan (log(0), a division by x - x, ...) or a
    number beyond double precision (symdl checks and compiles in doubles: 10.0**400 or a
    product of twenty 2**9000 would overflow there, or print with more than 4300 digits)."""
    parts = result if isinstance(result, list) else [result]
    for part in parts:
        if isinstance(part, list):
            check_finite(part, text)
        elif isinstance(part, sympy.Basic):
            if part.has(sympy.zoo, sympy.oo, -sympy.oo, sympy.nan):
                raise ParseError(
                    "the formula is not finite (a division by zero, log(0), ...)", text
                )
            _check_numbers(part, text)
            _check_towers(part, text)
    return result


def _check_towers(expr: sympy.Basic, text: str) -> None:
    """At most MAX_TOWER exponentials (exp, or a power whose exponent is not a number such as
    2 or 1/2) nested in one another: x**x**x**x, E**E**E**E, exp(exp(exp(exp(x))))."""
    depth: dict[sympy.Basic, int] = {}
    stack = [(expr, False)]
    while stack:  # post-order over distinct nodes
        node, done = stack.pop()
        if node in depth:
            continue
        if not done:
            stack.append((node, True))
            stack.extend((a, False) for a in node.args if a not in depth)
            continue
        inner = max((depth[a] for a in node.args), default=0)
        grows = isinstance(node, sympy.exp) or (
            isinstance(node, sympy.Pow) and not isinstance(node.exp, sympy.Rational)
        )
        depth[node] = inner + grows
        if depth[node] > MAX_TOWER:
            raise ParseError(
                f"exponentials nested {depth[node]} deep ({str(node)[:60]}); at most "
                f"{MAX_TOWER} are accepted, as deeper towers exceed double precision",
                text,
            )


def _check_numbers(expr: sympy.Basic, text: str) -> None:
    seen, stack = set(), [expr]
    while stack:  # each distinct node once: a tree walk of a shared DAG can be exponential
        node = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        if isinstance(node, sympy.Rational):
            bits = abs(node.p).bit_length() - node.q.bit_length()
            if bits > 1024:  # its magnitude, without printing it (4300 digits at most)
                raise ParseError(
                    f"number too large: about 10^{int(bits * math.log10(2))} is beyond double "
                    "precision (about 1.8e308), where symdl checks and compiles",
                    text,
                )
        elif isinstance(node, sympy.Float) and abs(node) > _DOUBLE_MAX:
            raise ParseError(
                f"number too large: {sympy.Float(node, 3)} is beyond double precision "
                "(about 1.8e308), where symdl checks and compiles",
                text,
            )
        else:
            stack.extend(node.args)


_DOUBLE_MAX = sympy.Float(sys.float_info.max)


def check_text(text: str) -> None:
    if len(text) > MAX_LENGTH:
        raise ParseError(
            f"the formula has {len(text)} characters; at most {MAX_LENGTH} are accepted",
            text,
            MAX_LENGTH,
        )
    bad = re.search(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", text)
    if bad:
        raise ParseError(f"control character {bad[0]!r} in the formula", text, bad.start())
    if not text.strip():
        raise ParseError("the formula is empty", text, 0)
    depth = 0
    for i, ch in enumerate(text):
        if ch in "([{":
            depth += 1
            if depth > MAX_DEPTH:
                raise ParseError(f"brackets nested more than {MAX_DEPTH} deep", text, i)
        elif ch in ")]}":
            depth -= 1
