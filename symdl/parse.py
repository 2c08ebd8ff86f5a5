"""Safe parsing of formulas written as text: Python syntax or LaTeX, never evaluated as code.

Python text goes through `ast.parse` and a whitelist of node types; LaTeX through symdl's own
small parser (symdl/parse_latex.py). Both build SymPy objects with the guarded operations of
`Builder`, resolving names in a `Namespace`: the symbols of the function, families of indexed
symbols as matrices (`a0, a1, a2` is the column `a`), and symdl's functions.
"""

from __future__ import annotations

import ast
import difflib
import math
import re
import time
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import sympy
from sympy import Basic, ImmutableMatrix, Integer, MatrixBase, Rational, Symbol
from sympy.matrices.expressions import MatrixExpr
from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction

from symdl.ops import declared

MAX_LENGTH = 10_000  # characters; a two-layer network's gradient in matrix notation is far less
MAX_DEPTH = 60  # nested brackets
MAX_BITS = 10_000  # size of any number the text makes SymPy compute (2**10000 has 3011 digits)
MAX_ENTRIES = 10_000  # entries of a matrix, and multiply-adds of one matrix product / 20
MAX_VECTOR = 200  # entries of a vector given whole to an op (softmax of n entries has n^2 parts)
MAX_ARGS = 100  # arguments of one call
TIME_LIMIT = 2.5  # seconds to build the formula (each step is bounded; this bounds their sum)


class ParseError(ValueError):
    """Text that is not a formula symdl accepts; `position` is the offending character (from 0)."""

    def __init__(self, reason: str, text: str = "", position: int | None = None):
        self.reason, self.text, self.position = reason, text, position
        super().__init__(reason + _caret(text, position))


def _caret(text: str, position: int | None) -> str:
    if position is None or not text:
        return ""
    position = max(0, min(position, len(text)))
    start = max(0, position - 40)
    line = text[start : position + 40].replace("\n", " ").replace("\0", "?")
    prefix = "..." if start else ""
    return f" (at character {position})\n    {prefix}{line}\n    {' ' * (len(prefix) + position - start)}^"


# --------------------------------------------------------------------------- names


@dataclass
class Namespace:
    """What names in a formula may denote: values (symbols, matrices, constants) and functions."""

    values: dict[str, object] = field(default_factory=dict)
    functions: dict[str, Callable] = field(default_factory=dict)
    new_symbols: bool = False  # unknown names become new real symbols (for a function's text)
    created: dict[str, Symbol] = field(default_factory=dict)

    def value(self, name: str, text: str, position: int):
        name = unicodedata.normalize("NFKC", name)
        if name.startswith("__"):
            raise ParseError(f"name {name!r} is not allowed", text, position)
        if name in self.values:
            return self.values[name]
        if self.new_symbols and name not in self.functions:
            return self.created.setdefault(name, Symbol(name, real=True))
        hint = "it is a function: call it, e.g. " + name + "(x)" if name in self.functions else ""
        raise ParseError(f"unknown name {name!r}; {hint or self._known(name)}", text, position)

    def function(self, name: str, text: str, position: int) -> Callable:
        name = unicodedata.normalize("NFKC", name)
        if name.startswith("__"):
            raise ParseError(f"name {name!r} is not allowed", text, position)
        if name in self.functions:
            return self.functions[name]
        if name in self.values:
            raise ParseError(
                f"{name} is a symbol, not a function; write {name}*(...) for a product",
                text,
                position,
            )
        close = difflib.get_close_matches(name, self.functions, n=3)
        hint = f"did you mean {', '.join(close)}?" if close else "see symdl.parse.FUNCTIONS"
        raise ParseError(f"unknown function {name!r}; {hint}", text, position)

    def _known(self, name: str) -> str:
        names = sorted(
            k
            for k, v in self.values.items()
            if k.isidentifier() and not getattr(v, "is_number", False)
        )
        close = difflib.get_close_matches(name, names, n=3)
        if close:
            return f"did you mean {', '.join(close)}?"
        shown = ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")
        return f"the formula may use the names of the function's symbols ({shown})"


def namespace_of(*exprs, new_symbols: bool = False) -> Namespace:
    """The names a formula about `exprs` may use: their symbols, families, constants, functions.

    >>> import sympy
    >>> a = sympy.symbols("a0:3")
    >>> namespace_of(sum(a)).values["a"]
    Matrix([
    [a0],
    [a1],
    [a2]])
    """
    symbols: set[Symbol] = set()
    matrices: set[sympy.MatrixSymbol] = set()
    for e in exprs:
        for part in _flat(e):
            if isinstance(part, Basic):
                symbols |= {s for s in part.free_symbols if isinstance(s, Symbol)}
                matrices |= part.atoms(sympy.MatrixSymbol)
    for m in matrices:  # dimensions, such as the n of 1/n in a mean
        symbols |= {s for d in m.shape for s in sympy.sympify(d).free_symbols}
    values: dict[str, object] = {"pi": sympy.pi, "E": sympy.E, "π": sympy.pi}
    values.update(_families(symbols))
    aliases: dict[str, list[Symbol]] = {}
    for s in symbols:
        alias = re.sub(r"_+", "_", re.sub(r"\W+", "_", s.name)).strip("_")
        if alias and alias != s.name and alias.isidentifier():
            aliases.setdefault(alias, []).append(s)
    values.update({a: ss[0] for a, ss in aliases.items() if len(ss) == 1})
    values.update({m.name: m for m in matrices})
    values.update({s.name: s for s in symbols})
    values.setdefault("e", sympy.E)
    return Namespace(values, dict(FUNCTIONS), new_symbols)


def _flat(obj) -> Iterable:
    if isinstance(obj, MatrixBase):
        return list(obj)
    if isinstance(obj, list | tuple):
        return [x for o in obj for x in _flat(o)]
    return [obj]


_INDEXED = re.compile(
    r"^(?P<stem>[A-Za-z]+|\\?[A-Za-z]+)(?:_?\{?(?P<i>\d+)(?:[_,](?P<j>\d+))?\}?|\[(?P<bi>\d+)(?:,\s*(?P<bj>\d+))?\])$"
)


def _families(symbols: Iterable[Symbol]) -> dict[str, ImmutableMatrix]:
    """Indexed symbols as matrices: x0, x1, x2 (or x_1, x_{2}, ...) the column x; X_00 .. X_12 the 2x3 X."""
    groups: dict[str, list[tuple[str, str | None, Symbol]]] = {}
    for s in symbols:
        m = _INDEXED.match(s.name)
        if m:
            i, j = m["i"] or m["bi"], m["j"] or m["bj"]
            groups.setdefault(m["stem"].lstrip("\\"), []).append((i, j, s))
    taken = {s.name for s in symbols}
    families = {}
    for stem, members in groups.items():
        grid = _grid(members)
        if grid is not None and len(members) > 1 and stem not in taken:
            families[stem] = grid
    return families


def _grid(members) -> ImmutableMatrix | None:
    if all(j is None for _, j, _ in members):
        if (
            len({len(i) for i, _, _ in members}) == 1
            and len(members[0][0]) == 2
            and len(members) > 1
        ):
            members = [(i[0], i[1], s) for i, _, s in members]  # X00 .. X12: two one-digit indices
        else:
            entries = {(int(i), 0): s for i, _, s in members}
            return _complete(entries, len(members))
    if any(j is None for _, j, _ in members):
        return None
    return _complete({(int(i), int(j)): s for i, j, s in members}, len(members))


def _complete(entries: dict, count: int) -> ImmutableMatrix | None:
    if len(entries) != count:
        return None
    rows, cols = sorted({i for i, _ in entries}), sorted({j for _, j in entries})
    r0, c0 = rows[0], cols[0]
    if r0 not in (0, 1) or (len(cols) > 1 and c0 not in (0, 1)):
        return None
    if rows != list(range(r0, r0 + len(rows))) or cols != list(range(c0, c0 + len(cols))):
        return None
    if len(rows) * len(cols) != count:
        return None
    return ImmutableMatrix(len(rows), len(cols), lambda i, j: entries[r0 + i, c0 + j])


# --------------------------------------------------------------------------- building


class Builder:
    """Guarded constructors: every operation a formula may ask for, with its limits."""

    def __init__(self, text: str, time_limit: float = TIME_LIMIT):
        self.text = text
        self.deadline = time.monotonic() + time_limit

    def fail(self, reason: str, position: int | None):
        raise ParseError(reason, self.text, position)

    def tick(self, position: int | None) -> None:
        if time.monotonic() > self.deadline:
            self.fail(
                f"the formula takes more than {TIME_LIMIT:g} s to build; simplify it", position
            )

    def number(self, literal: str, position: int) -> Rational:
        literal = literal.replace("_", "")
        m = re.fullmatch(r"(?:\d+\.?\d*|\.\d+)(?:[eE]([+-]?\d+))?", literal)
        if not m or len(literal) > 100 or (m[1] and abs(int(m[1])) > 300):
            self.fail(f"number {literal[:30]!r} is too long or out of range", position)
        return Rational(literal)  # exact: 0.1 means 1/10

    def matrix(self, rows: list[list], position: int) -> ImmutableMatrix:
        if not rows or any(len(r) != len(rows[0]) for r in rows) or not rows[0]:
            self.fail("a matrix needs rows of equal, non-zero length", position)
        if len(rows) * len(rows[0]) > MAX_ENTRIES:
            self.fail(f"a matrix may have at most {MAX_ENTRIES} entries", position)
        for row in rows:
            for e in row:
                if not _is_scalar(e):
                    self.fail("matrix entries must be scalars", position)
        return ImmutableMatrix(rows)

    def as_value(self, v, position: int):
        """A list written in the formula, as a matrix (a flat list is a column)."""
        if isinstance(v, list):
            rows = [r if isinstance(r, list) else [r] for r in v]
            return self.matrix(rows, position)
        return v

    def add(self, a, b, position: int, sign: int = 1):
        self.tick(position)
        a, b = self.as_value(a, position), self.as_value(b, position)
        if _is_scalar(a) and _is_scalar(b):
            return a + sign * b
        if isinstance(a, MatrixBase) and _is_scalar(b):  # 1 - p: elementwise, as in DL papers
            return a.applyfunc(lambda e: e + sign * b)
        if _is_scalar(a) and isinstance(b, MatrixBase):
            return b.applyfunc(lambda e: a + sign * e)
        self._same_shape(a, b, "add" if sign > 0 else "subtract", position)
        return self._sympy(lambda: a + sign * b, position)

    def mul(self, a, b, position: int):
        self.tick(position)
        a, b = self.as_value(a, position), self.as_value(b, position)
        if _is_scalar(a) or _is_scalar(b):
            return self._sympy(lambda: a * b, position)
        (r, k), (k2, c) = a.shape, b.shape
        if k != k2:
            self.fail(
                f"cannot multiply a {_shape(a)} matrix by a {_shape(b)} one; write .T (or ^T) "
                "for a transpose, or hadamard(a, b) (\\odot) for the entrywise product",
                position,
            )
        if isinstance(a, MatrixBase) and isinstance(b, MatrixBase) and r * k * c > 20 * MAX_ENTRIES:
            self.fail("matrix product too large", position)
        return self._sympy(lambda: a * b, position)

    def div(self, a, b, position: int):
        a, b = self.as_value(a, position), self.as_value(b, position)
        if not _is_scalar(b):
            self.fail("cannot divide by a matrix", position)
        if b == 0:
            self.fail("division by zero", position)
        return self.mul(a, self._sympy(lambda: 1 / b, position), position)

    def neg(self, a, position: int):
        return self.mul(Integer(-1), a, position)

    def pow(self, base, exponent, position: int):
        self.tick(position)
        base, exponent = self.as_value(base, position), self.as_value(exponent, position)
        if not _is_scalar(exponent):
            self.fail("an exponent must be a scalar", position)
        if not _is_scalar(base):
            square = base.shape[0] == base.shape[1]
            if exponent.is_Integer and 1 <= exponent <= 8 and square:
                if (
                    isinstance(base, MatrixBase)
                    and base.shape[0] ** 3 * exponent > 20 * MAX_ENTRIES
                ):
                    self.fail("matrix power too large", position)
                return self._sympy(lambda: base**exponent, position)
            self.fail(
                "a matrix power needs a square matrix and an integer exponent from 1 to 8; "
                "for entrywise squares write hadamard(a, a)",
                position,
            )
        if base.is_Number and exponent.is_Rational:
            if base == 0 and exponent < 0:
                self.fail("division by zero (0 to a negative power)", position)
            size = max(abs(base.p), base.q, 2) if base.is_Rational else 2
            if abs(exponent) * math.log2(size) > MAX_BITS:
                self.fail(
                    f"number too large: {base}**{exponent} has more than {MAX_BITS} bits", position
                )
        return self._sympy(lambda: sympy.Pow(base, exponent), position)

    def transpose(self, a, position: int):
        a = self.as_value(a, position)
        return a if _is_scalar(a) else a.T

    def index(self, a, indices: tuple[int, ...], position: int):
        if isinstance(a, list):
            a = self.as_value(a, position)
        if _is_scalar(a):
            self.fail("only a vector or matrix can be indexed", position)
        rows, cols = a.shape
        if len(indices) == 1 and 1 in (rows, cols):
            indices = (indices[0], 0) if cols == 1 else (0, indices[0])
        if len(indices) != 2 or not (0 <= indices[0] < rows and 0 <= indices[1] < cols):
            self.fail(
                f"index {indices} is outside the {_shape(a)} matrix (indices start at 0)", position
            )
        return a[indices]

    def call(self, function: Callable, args: list, name: str, position: int):
        self.tick(position)
        if len(args) > MAX_ARGS:
            self.fail(f"{name}: more than {MAX_ARGS} arguments", position)
        try:
            return function(self, *args)
        except ParseError:
            raise
        except (TypeError, ValueError, ArithmeticError, sympy.ShapeError) as error:
            self.fail(f"{name}: {error}".split("\n")[0][:300], position)

    def _same_shape(self, a, b, verb: str, position: int) -> None:
        if a.shape != b.shape:
            self.fail(f"cannot {verb} a {_shape(a)} and a {_shape(b)} matrix", position)

    def _sympy(self, thunk: Callable, position: int):
        try:
            return thunk()
        except (TypeError, ValueError, ArithmeticError, sympy.ShapeError) as error:
            self.fail(str(error).split("\n")[0][:300], position)


def _is_scalar(v) -> bool:
    return not isinstance(v, MatrixBase | MatrixExpr | list)


def _shape(a) -> str:
    return "x".join(map(str, a.shape))


# --------------------------------------------------------------------------- functions


def _elementwise(f: Callable) -> Callable:
    """`f` applied to each entry of a matrix first argument (exp(z) of a vector z is e^{z_i})."""

    def apply(build: Builder, x, *rest):
        x = build.as_value(x, None) if isinstance(x, list) else x
        if isinstance(x, MatrixBase):
            return x.applyfunc(lambda e: f(e, *rest))
        if isinstance(x, MatrixExpr):
            return x.applyfunc(lambda e: f(e, *rest))
        return f(x, *rest)

    return apply


def _op(cls) -> Callable:
    """A declared op: vector ops take the vector whole, elementwise ops map over entries."""

    def apply(build: Builder, *args):
        if _entries(args) > MAX_VECTOR and not _maps_entries(cls, args):
            raise ValueError(
                f"a vector of more than {MAX_VECTOR} entries is too long for {cls.__name__}"
            )
        result = cls(*args)
        if isinstance(result, sympy.Function) and any(
            isinstance(a, MatrixBase) for a in result.args
        ):
            return _elementwise(cls)(build, *args)
        symbolic = any(isinstance(a, MatrixExpr) and not isinstance(a, MatrixBase) for a in args)
        if isinstance(result, MatrixExpr) and not isinstance(result, MatrixBase) and not symbolic:
            result = result.doit()  # an op of explicit matrices: write its entries out
            result = result.as_explicit() if isinstance(result, MatrixExpr) else result
        return ImmutableMatrix(result) if isinstance(result, MatrixBase) else result

    return apply


def _entries(args) -> int:
    return sum(len(a) if isinstance(a, MatrixBase | list) else 1 for a in args)


def _maps_entries(cls, args) -> bool:
    """Whether op `cls` maps over the entries of a matrix (relu) rather than taking it whole."""
    probe = ImmutableMatrix(sympy.symbols("_p0:2"))
    try:
        result = cls(probe, *args[1:])
    except (TypeError, ValueError):
        return False
    if isinstance(result, ElementwiseApplyFunction):
        return True
    return isinstance(result, sympy.Function) and isinstance(result.args[0], MatrixBase)


def _vector(build: Builder, v) -> ImmutableMatrix:
    v = build.as_value(v, None)
    if _is_scalar(v):
        return ImmutableMatrix([v])
    return v


def _sized(n) -> int:
    if not (isinstance(n, Integer) and 1 <= n <= 100):
        raise ValueError(f"a size must be an integer from 1 to 100, got {n}")
    return int(n)


def _matrix_helpers() -> dict[str, Callable]:
    def matrix(build, rows):
        return build.as_value(rows if isinstance(rows, list) else [rows], None)

    def hadamard(build, a, b):
        a, b = build.as_value(a, None), build.as_value(b, None)
        if _is_scalar(a) or _is_scalar(b):
            return a * b
        if isinstance(a, MatrixBase) and isinstance(b, MatrixBase):
            if a.shape != b.shape:
                raise ValueError(f"hadamard needs equal shapes, got {_shape(a)} and {_shape(b)}")
            return ImmutableMatrix(a.multiply_elementwise(b))
        return sympy.HadamardProduct(a, b)

    def dot(build, a, b):
        a, b = _vector(build, a), _vector(build, b)
        if len(a) != len(b):
            raise ValueError(f"dot of {len(a)} and {len(b)} entries")
        return sympy.Add(*(x * y for x, y in zip(a, b, strict=True)))

    return {
        "Matrix": matrix,
        "matrix": matrix,
        "transpose": lambda build, a: build.transpose(a, None),
        "hadamard": hadamard,
        "dot": dot,
        "outer": lambda build, a, b: _vector(build, a) * _vector(build, b).T,
        "sum": lambda build, v: sympy.Add(*_vector(build, v)),
        "mean": lambda build, v: sympy.Add(*_vector(build, v)) / len(_vector(build, v)),
        "diag": lambda build, v: ImmutableMatrix(sympy.diag(*_vector(build, v))),
        "trace": lambda build, a: build.as_value(a, None).trace(),
        "eye": lambda build, n: ImmutableMatrix(sympy.eye(_sized(n))),
        "ones": lambda build, r, c=sympy.S.One: ImmutableMatrix(sympy.ones(_sized(r), _sized(c))),
        "zeros": lambda build, r, c=sympy.S.One: ImmutableMatrix(sympy.zeros(_sized(r), _sized(c))),
    }


def _functions() -> dict[str, Callable]:
    functions = {name: _op(cls) for name, cls in declared().items()}
    elementary = {
        "exp": sympy.exp,
        "log": sympy.log,
        "ln": sympy.log,
        "sqrt": sympy.sqrt,
        "tanh": sympy.tanh,
        "sinh": sympy.sinh,
        "cosh": sympy.cosh,
        "sin": sympy.sin,
        "cos": sympy.cos,
        "tan": sympy.tan,
        "erf": sympy.erf,
        "abs": sympy.Abs,
        "Abs": sympy.Abs,
        "sign": sympy.sign,
        "Heaviside": lambda x, at_zero=sympy.S.Zero: sympy.Heaviside(x, at_zero),
        "step": lambda x: sympy.Heaviside(x, 0),
    }
    functions.update({name: _elementwise(f) for name, f in elementary.items()})
    for name, f in (("max", sympy.Max), ("Max", sympy.Max), ("min", sympy.Min), ("Min", sympy.Min)):
        functions[name] = lambda build, *args, f=f: f(*args)
    aliases = {"sigma": "sigmoid", "σ": "sigmoid", "ReLU": "relu", "Relu": "relu", "swish": "silu"}
    aliases |= {"LeakyReLU": "leaky_relu", "ELU": "elu", "GELU": "gelu", "SiLU": "silu"}
    aliases |= {"CE": "cross_entropy", "MSE": "mse", "BCE": "binary_cross_entropy"}
    functions.update({a: functions[n] for a, n in aliases.items() if n in functions})
    functions.update(_matrix_helpers())
    return functions


FUNCTIONS: dict[str, Callable] = _functions()


# --------------------------------------------------------------------------- Python syntax


_LOOKALIKES = str.maketrans({"−": "-", "·": "*", "×": "*", "⋅": "*", "⊙": "*"})
_BINARY = {
    ast.Add: lambda b, x, y, p: b.add(x, y, p),
    ast.Sub: lambda b, x, y, p: b.add(x, y, p, sign=-1),
    ast.Mult: lambda b, x, y, p: b.mul(x, y, p),
    ast.MatMult: lambda b, x, y, p: b.mul(x, y, p),
    ast.Div: lambda b, x, y, p: b.div(x, y, p),
    ast.Pow: lambda b, x, y, p: b.pow(x, y, p),
    ast.BitXor: lambda b, x, y, p: b.pow(x, y, p),  # x^2 means a power, as in SymPy's parser
}


def parse_python(text: str, namespace: Namespace):
    """`text` in Python syntax as SymPy objects; only arithmetic, names, calls, lists and .T.

    Raises:
        ParseError: anything else (attribute access, lambdas, keywords, strings, ...).
    """
    if "⊙" in text:
        raise ParseError("write hadamard(a, b) for the entrywise product", text, text.index("⊙"))
    source, origin = _python_source(text)
    try:
        tree = ast.parse(source, mode="eval")
    except SyntaxError as error:
        at = origin[min(_offset(source, error.lineno, error.offset), len(source))]
        raise ParseError(f"not valid Python syntax: {error.msg}", text, at) from None
    except (MemoryError, RecursionError, ValueError):
        raise ParseError(
            "the formula is nested too deeply or too long for Python's parser", text, 0
        ) from None
    return _Evaluator(text, source, origin, namespace).run(tree.body)


def _python_source(text: str) -> tuple[str, list[int]]:
    """The text as Python source (^ as **, Unicode operators in ASCII, no leading blanks) and
    the position in `text` of each of its characters."""
    start = len(text) - len(text.lstrip())
    chars, origin = [], []
    for i, ch in enumerate(text[start:], start):
        ch = ch.translate(_LOOKALIKES)
        chars.append("**" if ch == "^" else ch)  # x^2 + 1 is a power, as in SymPy's parser
        origin += [i, i] if ch == "^" else [i]
    origin.append(len(text))
    return "".join(chars), origin


def _offset(text: str, lineno: int | None, col: int | None, byte_col: bool = False) -> int:
    if not lineno:
        return 0
    lines = text.splitlines(keepends=True) or [""]
    start = sum(len(line) for line in lines[: lineno - 1])
    line = lines[min(lineno, len(lines)) - 1]
    col = col or 0
    if byte_col:
        col = len(line.encode()[:col].decode(errors="ignore"))
    else:
        col = max(col - 1, 0)
    return start + col


class _Evaluator:
    """Builds SymPy objects from a whitelisted Python AST without recursion (long sums are deep)."""

    def __init__(self, text: str, source: str, origin: list[int], namespace: Namespace):
        self.text, self.source, self.origin, self.namespace = text, source, origin, namespace
        self.build = Builder(text)

    def pos(self, node, end: bool = False) -> int:
        line, col = (
            (node.end_lineno, node.end_col_offset) if end else (node.lineno, node.col_offset)
        )
        return self.origin[min(_offset(self.source, line, col, True), len(self.source))]

    def run(self, root):
        done: dict[int, object] = {}
        stack = [(root, False)]
        while stack:
            node, ready = stack.pop()
            if not ready:
                children = self.children(node)
                if len(stack) > 10 * MAX_DEPTH + 100_000:
                    self.build.fail("the formula is too large", self.pos(node))
                stack.append((node, True))
                stack.extend((c, False) for c in reversed(children))
                continue
            values = [done.pop(id(c)) for c in self.children(node)]
            done[id(node)] = self.combine(node, values)
        return done[id(root)]

    def children(self, node) -> list:
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            return [node.left, node.right]
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
            return [node.operand]
        if isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name):
                self.refuse(node.func, "only named functions can be called, e.g. sigma(z)")
            self.namespace.function(node.func.id, self.text, self.pos(node))
            if node.keywords or any(isinstance(a, ast.Starred) for a in node.args):
                self.refuse(node, "function arguments must be plain and positional")
            return list(node.args)
        if isinstance(node, ast.List | ast.Tuple):
            return list(node.elts)
        if isinstance(node, ast.Attribute):
            if node.attr != "T":
                at = self.pos(node, end=True) - len(node.attr)
                self.build.fail(
                    f"attribute .{node.attr} is not allowed (only .T, the transpose)", at
                )
            return [node.value]
        if isinstance(node, ast.Subscript):
            return [node.value]
        if isinstance(node, ast.Name | ast.Constant):
            return []
        self.refuse(node, f"{_describe(node)} is not allowed in a formula")

    def refuse(self, node, reason: str):
        self.build.fail(reason, self.pos(node))

    def combine(self, node, values: list):
        b, p = self.build, self.pos(node)
        if isinstance(node, ast.BinOp):
            return _BINARY[type(node.op)](b, *values, p)
        if isinstance(node, ast.UnaryOp):
            return values[0] if isinstance(node.op, ast.UAdd) else b.neg(values[0], p)
        if isinstance(node, ast.Call):
            name = node.func.id
            return b.call(self.namespace.function(name, self.text, p), values, name, p)
        if isinstance(node, ast.List | ast.Tuple):
            return values
        if isinstance(node, ast.Attribute):
            return b.transpose(values[0], p)
        if isinstance(node, ast.Subscript):
            return b.index(values[0], self.indices(node.slice), p)
        if isinstance(node, ast.Name):
            return self.namespace.value(node.id, self.text, p)
        return self.constant(node, p)

    def constant(self, node: ast.Constant, position: int):
        value = node.value
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.refuse(node, f"the constant {value!r:.30} is not a number")
        literal = ast.get_source_segment(self.source, node) or repr(value)
        return self.build.number(literal, position)

    def indices(self, node) -> tuple[int, ...]:
        parts = node.elts if isinstance(node, ast.Tuple) else [node]
        if not all(isinstance(p, ast.Constant) and type(p.value) is int for p in parts):
            self.refuse(node, "an index must be a whole number, e.g. W[0, 1]")
        return tuple(p.value for p in parts)


def _describe(node) -> str:
    names = {
        ast.Lambda: "a lambda",
        ast.Compare: "a comparison",
        ast.BoolOp: "a boolean operation",
        ast.IfExp: "a conditional expression",
        ast.JoinedStr: "an f-string",
        ast.ListComp: "a comprehension",
        ast.GeneratorExp: "a generator",
        ast.Dict: "a dict",
        ast.Set: "a set",
        ast.NamedExpr: "an assignment",
        ast.Await: "await",
        ast.Starred: "unpacking",
        ast.Slice: "a slice",
    }
    if isinstance(node, ast.BinOp | ast.UnaryOp):
        return f"the operator {type(node.op).__name__}"
    return names.get(type(node), type(node).__name__)


# --------------------------------------------------------------------------- entry point


def looks_like_latex(text: str) -> bool:
    """LaTeX has backslashes or braces; Python syntax never does."""
    return bool(re.search(r"[\\{}]", text))


def parse(text: str, namespace: Namespace | None = None):
    """A formula as SymPy objects: a scalar expression, a matrix, or a list (from ``[a, b]``).

    Python syntax (``"2*(a - y)*x"``, ``"delta*x.T"``) or LaTeX (``r"\\sigma(z)(1-\\sigma(z))"``).
    Nothing in `text` is ever executed; a name means a symbol, a matrix or a function of
    `namespace` (by default new real symbols for unknown names).

    Raises:
        ParseError: the text is not a formula, is too long or too deeply nested, or names
            something unknown; the message points at the position.

    >>> parse("2*(a - y)*x")
    x*(2*a - 2*y)
    >>> parse(r"\\frac{1}{2} \\sigma(z)^2")
    sigmoid(z)**2/2
    """
    if namespace is None:
        namespace = namespace_of(new_symbols=True)
    if not isinstance(text, str):
        raise ParseError(f"expected text, got {type(text).__name__}")
    _check_text(text)
    if looks_like_latex(text):
        from symdl.parse_latex import parse_latex

        return parse_latex(text, namespace)
    try:
        return parse_python(text, namespace)
    except ParseError as python_error:
        if not python_error.reason.startswith("not valid Python syntax"):
            raise
        from symdl.parse_latex import parse_latex

        try:  # "2(a - y)x" is not Python, but it is LaTeX
            return parse_latex(text, namespace)
        except ParseError:
            raise python_error from None


def _check_text(text: str) -> None:
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
