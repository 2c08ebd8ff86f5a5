"""What the names in a formula denote: the function's symbols (and aliases), families of
indexed symbols as matrices (`a0, a1, a2` is the column `a`), constants, and the functions a
formula may call (every declared op, elementary functions, matrix helpers)."""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import sympy
from sympy import Basic, ImmutableMatrix, Integer, MatrixBase, Symbol
from sympy.logic.boolalg import Boolean
from sympy.matrices.expressions import MatrixExpr
from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction

from symdl.ops import declared
from symdl.ops.base import MatrixOp
from symdl.ops.statistics import mean as mean_op
from symdl.parsing.builder import Builder, _is_scalar, _shape, ones
from symdl.parsing.errors import MAX_VECTOR, ParseError


@dataclass
class Namespace:
    """What names in a formula may denote: values (symbols, matrices, constants) and functions."""

    values: dict[str, object] = field(default_factory=dict)
    functions: dict[str, Callable] = field(default_factory=dict)
    new_symbols: bool = False  # unknown names become new real symbols (for a function's text)
    created: dict[str, Symbol] = field(default_factory=dict)
    # when set, a transposed scalar name (x.T, x^T, x') is an error ending in this hint, with
    # {name} its name; else it is the scalar itself (a claim's 1x1 factors act as scalars)
    scalar_transpose: str | None = None
    # names that would denote more than one thing (I with square matrices of several sizes):
    # the message saying how to write what is meant
    ambiguous: dict[str, str] = field(default_factory=dict)

    def transposable(self, value, text: str, position: int) -> None:
        """Raise ParseError when `value`, about to be transposed, is a scalar name that
        `scalar_transpose` says must not be."""
        if self.scalar_transpose is not None and isinstance(value, Symbol):
            raise ParseError(
                f"{value.name} is a scalar, so {value.name}.T (a transpose) is meaningless; "
                + self.scalar_transpose.format(name=value.name),
                text,
                position,
            )

    def unusual_names_in(self, text: str) -> list[str]:
        """The names of values that are not Python identifiers (W^{(1)}, sigma^2, K_1^T, as
        symdl's step names print) and occur in `text`, longest first."""
        found = (n for n in self.values if not n.isidentifier() and n in text)
        return sorted(found, key=len, reverse=True)

    def shadowed(self, name: str) -> bool:
        """Whether a symbol of the function hides the function of that name (Phi, phi, H)."""
        return name in SHADOWED and name in self.values

    def value(self, name: str, text: str, position: int):
        name = unicodedata.normalize("NFKC", name)
        if name.startswith("__"):
            raise ParseError(f"name {name!r} is not allowed", text, position)
        if name in self.values:
            return self.values[name]
        if name in self.ambiguous:
            raise ParseError(self.ambiguous[name], text, position)
        if self.new_symbols and name not in self.functions:
            return self.created.setdefault(name, Symbol(name, real=True))
        hint = "it is a function: call it, e.g. " + name + "(x)" if name in self.functions else ""
        raise ParseError(f"unknown name {name!r}; {hint or self._known(name)}", text, position)

    def function(self, name: str, text: str, position: int) -> Callable:
        name = unicodedata.normalize("NFKC", name)
        if name.startswith("__"):
            raise ParseError(f"name {name!r} is not allowed", text, position)
        if name in self.functions and not self.shadowed(name):
            return self.functions[name]
        if name in self.values:
            raise ParseError(
                f"{name} is a symbol, not a function; write {name}*(...) for a product",
                text,
                position,
            )
        close = difflib.get_close_matches(name, self.functions, n=3)
        hint = f"did you mean {', '.join(close)}?" if close else "see symdl.parsing.FUNCTIONS"
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


def namespace_of(*exprs, new_symbols: bool = False, where: Mapping | None = None) -> Namespace:
    """The names a formula about `exprs` may use: their symbols, families, constants, functions,
    and the definitions `where` (``{"delta": p - y}``).

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
    # I: the identity, when the square matrices of the formula have one size (d tr X / dX = I)
    sizes = {m.shape[0] for m in matrices if m.shape[0] == m.shape[1]}
    for e in exprs:
        for part in _flat(e):
            if isinstance(part, Basic):
                sizes |= {i.shape[0] for i in part.atoms(sympy.Identity)}
    ambiguous = {}
    if len(sizes) == 1:
        values.setdefault("I", sympy.Identity(sizes.pop()))
    elif sizes:
        shown = sorted(map(str, sizes))
        ambiguous["I"] = (
            f"I is ambiguous here: the square matrices of the formula have the sizes "
            f"{', '.join(shown)}; write the identity with its size: eye({shown[0]}) or "
            f"Identity({shown[0]}) for the {shown[0]}x{shown[0]} one"
        )
    for name, value in (where or {}).items():
        if not (isinstance(name, str) and name.isidentifier() and not name.startswith("__")):
            raise ValueError(f"where: {name!r} is not a name (a Python identifier)")
        values[name] = ImmutableMatrix(value) if isinstance(value, MatrixBase) else value
    namespace = Namespace(values, _functions(), new_symbols)  # with ops declared since import
    namespace.ambiguous = ambiguous
    return namespace


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

    def apply(build: Builder, *args, **keywords):
        if _entries(args) > MAX_VECTOR and not _maps_entries(cls, args):
            raise ValueError(
                f"a vector of more than {MAX_VECTOR} entries is too long for {cls.__name__}"
            )
        result = cls(*args, **keywords)
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


def _size(n):
    """A size that may be symbolic (the n of ones(n, 1)): a positive integer or a symbol."""
    if isinstance(n, Integer):
        return _sized(n)
    if isinstance(n, Symbol) and n.is_positive is not False:
        return n
    raise ValueError(f"a size must be an integer from 1 to 100 or a symbol, got {n}")


def _kron(build, a, b):
    """The Kronecker product a \\otimes b: written out for explicit matrices."""
    a, b = build.as_value(a, None), build.as_value(b, None)
    if _is_scalar(a) or _is_scalar(b):
        return a * b
    if isinstance(a, MatrixBase) and isinstance(b, MatrixBase):
        if len(a) * len(b) > 10_000:
            raise ValueError("the Kronecker product is too large to write out")
        return ImmutableMatrix(sympy.kronecker_product(a, b))
    return sympy.KroneckerProduct(a, b)


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

    def square(build, a, what):
        a = build.as_value(a, None)
        if _is_scalar(a):
            return a
        if a.shape[0] != a.shape[1]:
            raise sympy.ShapeError(f"{what} needs a square matrix, got {_shape(a)}")
        if isinstance(a, MatrixBase) and a.shape[0] > 6:
            raise ValueError(f"{what} of a matrix larger than 6x6 written out is too costly")
        return a

    def trace(build, a):
        a = square(build, a, "trace")
        return a if _is_scalar(a) else a.trace() if isinstance(a, MatrixBase) else sympy.Trace(a)

    def determinant(build, a):
        a = square(build, a, "det")
        return (
            a if _is_scalar(a) else a.det() if isinstance(a, MatrixBase) else sympy.Determinant(a)
        )

    def inverse(build, a):
        a = square(build, a, "inv")
        if _is_scalar(a):
            return 1 / a
        return ImmutableMatrix(a.inv()) if isinstance(a, MatrixBase) else sympy.Inverse(a)

    def identity(build, n):  # of a symbolic size (eye(n)), or written out (eye(3))
        size = _size(n)
        return (
            sympy.Identity(size) if isinstance(size, Symbol) else ImmutableMatrix(sympy.eye(size))
        )

    return {
        "Matrix": matrix,
        "matrix": matrix,
        "transpose": lambda build, a: build.transpose(a, None),
        "hadamard": hadamard,
        "dot": dot,
        "outer": lambda build, a, b: _vector(build, a) * _vector(build, b).T,
        "sum": lambda build, v: sympy.Add(*_vector(build, v)),
        "mean": _mean,
        "diag": lambda build, v: ImmutableMatrix(sympy.diag(*_vector(build, v))),
        "trace": trace,
        "tr": trace,
        "Tr": trace,
        "det": determinant,
        "inv": inverse,
        "eye": identity,
        "Identity": identity,
        "ones": lambda build, r, c=sympy.S.One: ones(_size(r), _size(c)),
        "kron": _kron,
        "KroneckerProduct": _kron,
        "elementwise": lambda build, value: value,  # read entry by entry (python.py)
        "HadamardProduct": lambda build, *factors: _hadamard_all(build, hadamard, factors),
        "HadamardPower": _hadamard_power,
        "Trace": trace,
        "Determinant": determinant,
        "Inverse": inverse,
        "Transpose": lambda build, a: build.transpose(a, None),
        "Piecewise": _piecewise,
        "piecewise": _piecewise,
        "where": lambda build, condition, a, b: _piecewise(build, (a, condition), (b, True)),
        "zeros": lambda build, r, c=sympy.S.One: ImmutableMatrix(sympy.zeros(_sized(r), _sized(c))),
    }


def _hadamard_all(build, hadamard, factors):
    """HadamardProduct(a, b, c), as SymPy prints an entrywise product."""
    if len(factors) < 2:
        raise ValueError("HadamardProduct needs two factors or more")
    result = factors[0]
    for f in factors[1:]:
        result = hadamard(build, result, f)
    return result


def _hadamard_power(build, base, exponent):
    """HadamardPower(A, k): each entry of A to the power k."""
    build.entrywise += 1
    try:
        return build.pow(base, exponent, None)
    finally:
        build.entrywise -= 1


def _mean(build, v, axis=None):
    """mean(v): the mean of all entries of an explicit vector or matrix; mean(X, axis=1) the
    mean of each row (symdl's op, as it prints), axis=0 of each column."""
    if axis is not None:
        return mean_op(build.as_value(v, None), Integer(axis))
    entries = _vector(build, v)
    if not isinstance(entries, MatrixBase):
        raise ValueError("mean of a matrix expression needs an axis: mean(X, axis=1) for its rows")
    return sympy.Add(*entries) / len(entries)


def _piecewise(build, *pieces):
    """Piecewise((x, x > 0), (0, True)): each piece a (scalar value, condition) pair; where(c,
    a, b) is Piecewise((a, c), (b, True)) as in NumPy."""
    pairs = []
    for k, piece in enumerate(pieces):
        if not (isinstance(piece, list | tuple) and len(piece) == 2):
            raise ValueError(f"piece {k + 1} must be a pair (value, condition)")
        value, condition = piece
        if condition in (True, False):
            condition = sympy.true if condition else sympy.false
        if not isinstance(condition, Boolean) or isinstance(condition, sympy.Expr):
            raise ValueError(f"the condition of piece {k + 1} is not a comparison such as x > 0")
        if isinstance(value, MatrixBase | sympy.MatrixExpr | list | tuple):
            raise ValueError(f"the value of piece {k + 1} must be a scalar")
        pairs.append((value, condition))
    if not pairs:
        raise ValueError("needs at least one piece (value, condition)")
    return sympy.Piecewise(*pairs)


def _normal_cdf(x):
    return (1 + sympy.erf(x / sympy.sqrt(2))) / 2


def _normal_pdf(x):
    return sympy.exp(-(x**2) / 2) / sympy.sqrt(2 * sympy.pi)


# functions that a symbol of the same name hides: \Phi(x) is the normal CDF unless Phi is a
# symbol of f (then Phi (x) is a product), \phi its density, H(x) the Heaviside step
SHADOWED = {"Phi", "phi", "varphi", "H"}


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
        "sech": sympy.sech,
        "sin": sympy.sin,
        "cos": sympy.cos,
        "tan": sympy.tan,
        "erf": sympy.erf,
        "abs": sympy.Abs,
        "Abs": sympy.Abs,
        "sign": sympy.sign,
        "Heaviside": lambda x, at_zero=sympy.S.Zero: sympy.Heaviside(x, at_zero),
        "step": lambda x: sympy.Heaviside(x, 0),
        "H": lambda x: sympy.Heaviside(x, 0),
        "Phi": _normal_cdf,
        "phi": _normal_pdf,
        "varphi": _normal_pdf,
    }
    functions.update({name: _elementwise(f) for name, f in elementary.items()})
    for name, f in (("max", sympy.Max), ("Max", sympy.Max), ("min", sympy.Min), ("Min", sympy.Min)):
        functions[name] = lambda build, *args, f=f: f(*args)
    for name, cls in declared().items():  # the op's other names, declared on its class
        functions.update({alias: functions[name] for alias in cls.aliases})
    functions.update(_matrix_helpers())
    for name, cls in _matrix_ops().items():  # conv2d(X, K, b, (1, 5, 5, ...)) as str() prints
        functions.setdefault(name, _matrix_op(cls))
    return functions


def _matrix_ops() -> dict[str, type]:
    """symdl's matrix ops (convolution, pooling, spectral, ...) by name."""
    found, stack = {}, list(MatrixOp.__subclasses__())
    while stack:
        cls = stack.pop()
        stack.extend(cls.__subclasses__())
        name = getattr(cls, "name", "") or cls.__name__
        if not name.startswith("_") and name == cls.__name__:
            found[name] = cls
    return found


def _matrix_op(cls):
    def build_op(build, *args):
        args = [sympy.Tuple(*a) if isinstance(a, list | tuple) else a for a in args]
        if not any(isinstance(a, MatrixExpr) for a in args):
            raise ValueError(f"{cls.__name__} takes matrices (and the numbers of its geometry)")
        return cls(*args)

    return build_op


FUNCTIONS: dict[str, Callable] = _functions()
