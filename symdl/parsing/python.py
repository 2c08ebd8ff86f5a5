"""Formulas in Python syntax: `ast.parse` (which only builds a tree), then a whitelist of node
types evaluated without recursion into SymPy objects; nothing is ever executed."""

from __future__ import annotations

import ast
import re
import warnings

import sympy
from sympy import Integer
from sympy.logic.boolalg import Boolean

from symdl.parsing.builder import Builder, indicator
from symdl.parsing.errors import MAX_DEPTH, ParseError
from symdl.parsing.namespace import Namespace

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

# the keyword arguments a formula may give a function, and the types of their literal values
KEYWORDS: dict[str, tuple[type, ...]] = {"axis": (int,), "normalized": (bool,)}


_CHAINS = {ast.Add: 0, ast.Sub: 0, ast.Mult: 1, ast.MatMult: 1, ast.Div: 1}  # op -> level


def _chain(node: ast.BinOp) -> list[tuple[ast.operator | None, ast.expr]]:
    """a - b + c as [(None, a), (Sub, b), (Add, c)]: a left-deep chain of one precedence level,
    built as one sum (or product) instead of a chain of binary operations."""
    level = _CHAINS[type(node.op)]
    links = []
    while isinstance(node, ast.BinOp) and _CHAINS.get(type(node.op)) == level:
        links.append((node.op, node.right))
        node = node.left
    links.append((None, node))
    return links[::-1]


def parse_python(text: str, namespace: Namespace):
    """`text` in Python syntax as SymPy objects; only arithmetic, names, calls, lists and .T.

    Raises:
        ParseError: anything else (attribute access, lambdas, keywords, strings, ...).
    """
    if "⊙" in text:
        raise ParseError("write hadamard(a, b) for the entrywise product", text, text.index("⊙"))
    plain, renamed, moved = _plain_names(text, namespace)
    source, origin = _python_source(plain)
    origin = [moved[k] for k in origin]
    try:
        with warnings.catch_warnings():  # "\[" in a string literal: refused below anyway
            warnings.simplefilter("ignore", (SyntaxWarning, DeprecationWarning))
            tree = ast.parse(source, mode="eval")
    except SyntaxError as error:
        at = origin[min(_offset(source, error.lineno, error.offset), len(source))]
        raise ParseError(f"not valid Python syntax: {error.msg}", text, at) from None
    except (MemoryError, RecursionError, ValueError):
        raise ParseError(
            "the formula is nested too deeply or too long for Python's parser", text, 0
        ) from None
    evaluator = _Evaluator(text, source, origin, namespace)
    evaluator.renamed = renamed
    return evaluator.run(tree.body)


def _plain_names(text: str, namespace: Namespace) -> tuple[str, dict[str, str], list[int]]:
    """`text` with each name of `namespace` that is not a Python identifier (W^{(1)},
    sigma^2, bar_Z^{(2)}, as `str()` prints symdl's step names) as one that is; the
    placeholders' names; and the position in `text` of each character (and of the end)."""
    names = namespace.unusual_names_in(text)
    renamed: dict[str, str] = {}
    moved = list(range(len(text) + 1))
    for name in names:
        start = text.find(name)
        while start >= 0:
            end = start + len(name)
            before = text[start - 1 : start]
            after = text[end : end + 1]
            if (before.isalnum() or before == "_") or (after.isalnum() or after == "_"):
                start = text.find(name, start + 1)
                continue
            placeholder = renamed.setdefault(name, f"symdlname{len(renamed)}")
            text = text[:start] + placeholder + text[end:]
            moved = moved[:start] + [moved[start]] * len(placeholder) + moved[end:]
            start = text.find(name, start + len(placeholder))
    return text, {v: k for k, v in renamed.items()}, moved


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
    source = "".join(chars)
    if not _LAMBDA_EXPRESSION.search(source):  # lambda as a name (a regulariser's weight)
        for m in reversed(list(re.finditer(r"\blambda\b", source))):
            source = source[: m.end()] + "_" + source[m.end() :]
            origin.insert(m.end(), origin[m.end() - 1])
    return source, origin


_LAMBDA_EXPRESSION = re.compile(r"\blambda\b[^:]*:")
_KEYWORD_NAMES = {"lambda_": "lambda"}  # a name written as a Python keyword, renamed to read it


def _offset(text: str, lineno: int | None, col: int | None, byte_col: bool = False) -> int:
    """The character offset in `text` of a (line, column) position (a syntax error's column
    counts characters from 1; an AST node's counts UTF-8 bytes from 0)."""
    return _Positions(text).offset(lineno, col, byte_col)


class _Positions:
    """Character offsets of (line, column) positions in one text, each found without
    splitting the text again: a formula of 400 terms asks for thousands of them."""

    def __init__(self, text: str):
        self.lines = text.splitlines(keepends=True) or [""]
        self.starts = [0]
        for line in self.lines:
            self.starts.append(self.starts[-1] + len(line))
        self.chars: dict[int, list[int]] = {}  # per line with non-ASCII text: byte -> char

    def offset(self, lineno: int | None, col: int | None, byte_col: bool = False) -> int:
        if not lineno:
            return 0
        i = min(lineno, len(self.lines)) - 1
        start = self.starts[min(lineno - 1, len(self.lines))]  # past the last line: its end
        col = col or 0
        if not byte_col:
            return start + max(col - 1, 0)
        line = self.lines[i]
        if not line.isascii():  # the characters whose bytes all lie before the column
            table = self.chars.get(i)
            if table is None:
                table = self.chars[i] = [k for k, ch in enumerate(line) for _ in ch.encode()]
                table.append(len(line))
            col = table[min(col, len(table) - 1)]
        return start + min(col, len(line))


class _Evaluator:
    """Builds SymPy objects from a whitelisted Python AST without recursion (long sums are deep)."""

    def __init__(self, text: str, source: str, origin: list[int], namespace: Namespace):
        self.text, self.source, self.origin, self.namespace = text, source, origin, namespace
        self.renamed: dict[str, str] = {}  # placeholder -> a name that is not an identifier
        self.build = Builder(text)
        self.positions = _Positions(source)

    def pos(self, node, end: bool = False) -> int:
        return self.origin[min(self._at(node, end), len(self.source))]

    def _at(self, node, end: bool = False) -> int:
        """The character offset of `node`'s start (or end) in the source."""
        line, col = (
            (node.end_lineno, node.end_col_offset) if end else (node.lineno, node.col_offset)
        )
        return self.positions.offset(line, col, True)

    def run(self, root):
        done: dict[int, object] = {}
        stack = [(root, False)]
        while stack:
            node, ready = stack.pop()
            entrywise = _is_call(node, "elementwise")  # its argument is taken entry by entry
            if not ready:
                self.build.entrywise += entrywise
                children = self.children(node)
                if len(stack) > 10 * MAX_DEPTH + 100_000:
                    self.build.fail("the formula is too large", self.pos(node))
                stack.append((node, True))
                stack.extend((c, False) for c in reversed(children))
                continue
            values = [done.pop(id(c)) for c in self.children(node)]
            self.build.entrywise -= entrywise
            done[id(node)] = self.combine(node, values)
        return done[id(root)]

    def children(self, node) -> list:
        if isinstance(node, ast.BinOp) and type(node.op) in _CHAINS:
            return [operand for _, operand in _chain(node)]
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            return [node.left, node.right]
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
            return [node.operand]
        if isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name):
                self.refuse(node.func, "only named functions can be called, e.g. sigma(z)")
            self.namespace.function(node.func.id, self.text, self.pos(node))
            if any(isinstance(a, ast.Starred) for a in node.args):
                self.refuse(node, "function arguments must be plain and positional")
            for keyword in node.keywords:
                self.check_keyword(keyword)
            return list(node.args)
        if isinstance(node, ast.List | ast.Tuple):
            return list(node.elts)
        if isinstance(node, ast.Compare):
            return [node.left, *node.comparators]
        if isinstance(node, ast.BoolOp):
            return list(node.values)
        if isinstance(node, ast.BinOp) and type(node.op) in _LOGICAL:
            return [node.left, node.right]
        if isinstance(node, ast.Attribute):
            if node.attr not in ("T", "I"):
                at = self.pos(node, end=True) - len(node.attr)
                self.build.fail(
                    f"attribute .{node.attr} is not allowed (only .T, the transpose, and .I, "
                    "the inverse)",
                    at,
                )
            return [node.value]
        if isinstance(node, ast.Subscript):
            return [node.value]
        if isinstance(node, ast.Name | ast.Constant):
            return []
        self.refuse(node, f"{_describe(node)} is not allowed in a formula")

    def check_keyword(self, keyword) -> None:
        """Only the keywords of symdl's ops, each a literal: axis=0/1, normalized=True/False."""
        value = keyword.value
        if keyword.arg not in KEYWORDS or not (
            isinstance(value, ast.Constant) and type(value.value) in KEYWORDS[keyword.arg]
        ):
            allowed = ", ".join(f"{name}=..." for name in KEYWORDS)
            self.refuse(
                keyword.value if keyword.arg else keyword,
                f"the only keyword arguments are {allowed}, each a literal number or True/False",
            )

    def refuse(self, node, reason: str):
        self.build.fail(reason, self.pos(node))

    def combine(self, node, values: list):
        b, p = self.build, self.pos(node)
        if not _joins_conditions(node) and any(_is_condition(v) for v in values):
            b.fail(
                "a condition such as x > 0 is not a number; write Piecewise((1, x > 0), (0, True))"
                " or Heaviside(x)",
                p,
            )
        if isinstance(node, ast.BinOp) and type(node.op) in _CHAINS:
            links = _chain(node)
            at = [self.pos(operand) for _, operand in links]
            if type(node.op) in (ast.Add, ast.Sub):
                signs = [-1 if isinstance(op, ast.Sub) else 1 for op, _ in links]
                return b.total(list(zip(values, signs, at, strict=True)))
            divides = [isinstance(op, ast.Div) for op, _ in links]
            return b.product(list(zip(values, divides, at, strict=True)))
        if isinstance(node, ast.BinOp) and type(node.op) in _LOGICAL:
            return self.logical(_LOGICAL[type(node.op)], values, p)
        if isinstance(node, ast.BinOp):
            return _BINARY[type(node.op)](b, *values, p)
        if isinstance(node, ast.Compare):
            return self.comparison(node, values)
        if isinstance(node, ast.BoolOp):
            return self.logical(sympy.And if isinstance(node.op, ast.And) else sympy.Or, values, p)
        if isinstance(node, ast.UnaryOp):
            return values[0] if isinstance(node.op, ast.UAdd) else b.neg(values[0], p)
        if isinstance(node, ast.Call):
            name = node.func.id
            keywords = {k.arg: k.value.value for k in node.keywords}
            return b.call(self.namespace.function(name, self.text, p), values, name, p, keywords)
        if isinstance(node, ast.List | ast.Tuple):
            return values
        if isinstance(node, ast.Attribute) and node.attr == "I":
            return b.pow(values[0], Integer(-1), p)
        if isinstance(node, ast.Attribute):
            self.namespace.transposable(values[0], self.text, p)
            return b.transpose(values[0], p)
        if isinstance(node, ast.Subscript):
            return b.index(values[0], self.indices(node.slice), p)
        if isinstance(node, ast.Name):
            name = _KEYWORD_NAMES.get(node.id, node.id) if "lambda_" not in self.text else node.id
            name = self.renamed.get(name, name)
            return self.namespace.value(name, self.text, p)
        return self.constant(node, p)

    def comparison(self, node: ast.Compare, values: list):
        """x > 0, or a chain 0 <= x < 1, as a SymPy relation (a condition of a Piecewise)."""
        relations = []
        for op, left, right, comparator in zip(
            node.ops, values[:-1], values[1:], node.comparators, strict=True
        ):
            if type(op) not in _RELATIONS:
                self.refuse(comparator, f"{_describe(op)} is not a comparison of numbers")
            if (
                len(node.ops) == 1
                and isinstance(op, ast.Gt)
                and isinstance(left, _NOT_SCALAR)
                and right == 0
            ):
                return indicator(left)  # (Z > 0): ReLU' of a matrix, as symdl prints it
            if any(isinstance(v, _NOT_SCALAR) or _is_condition(v) for v in (left, right)):
                self.refuse(node, "a comparison needs numbers (scalars) on both sides")
            relations.append(sympy.Rel(left, right, _RELATIONS[type(op)]))
        return sympy.And(*relations)

    def logical(self, op, values: list, position: int):
        if not all(_is_condition(v) for v in values):
            self.build.fail("&, |, and, or join conditions such as (x > 0) & (y < 1)", position)
        return op(*values)

    def constant(self, node: ast.Constant, position: int):
        value = node.value
        if value is True or value is False:  # the condition of a Piecewise's last piece
            return sympy.true if value else sympy.false
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.refuse(node, f"the constant {value!r:.30} is not a number")
        literal = self.source[self._at(node) : self._at(node, end=True)] or repr(value)
        return self.build.number(literal, position)

    def indices(self, node) -> tuple[int, ...]:
        parts = node.elts if isinstance(node, ast.Tuple) else [node]
        if not all(isinstance(p, ast.Constant) and type(p.value) is int for p in parts):
            self.refuse(node, "an index must be a whole number, e.g. W[0, 1]")
        return tuple(p.value for p in parts)


_RELATIONS = {
    ast.Gt: ">", ast.GtE: ">=", ast.Lt: "<", ast.LtE: "<=", ast.Eq: "==", ast.NotEq: "!=",
}  # fmt: skip
_LOGICAL = {ast.BitAnd: sympy.And, ast.BitOr: sympy.Or}
_NOT_SCALAR = (sympy.MatrixBase, sympy.MatrixExpr, list)


def _is_call(node, name: str) -> bool:
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == name


def _joins_conditions(node) -> bool:
    """Whether `node` may take a condition as an operand: a logical operation, a pair of a
    Piecewise (a tuple), where(condition, a, b)."""
    if isinstance(node, ast.BoolOp | ast.Tuple | ast.List):
        return True
    if isinstance(node, ast.BinOp):
        return type(node.op) in _LOGICAL
    return (
        isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "where"
    )


def _is_condition(value) -> bool:
    """A relation or a logical combination of them (a Symbol is a Boolean to SymPy too)."""
    return isinstance(value, Boolean) and not isinstance(value, sympy.Expr)


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
