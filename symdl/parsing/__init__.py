"""Safe readers of formulas written as text (Python syntax and LaTeX): nothing is executed,
time and size are bounded, and errors name the position."""

from symdl.parsing.errors import MAX_LENGTH, ParseError
from symdl.parsing.reader import parse

__all__ = ["MAX_LENGTH", "ParseError", "parse"]
