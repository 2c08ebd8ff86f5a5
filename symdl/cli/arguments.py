"""What `grad`, `verify` and `check` share: their common options (EXPR, --wrt, --shapes, --at)
and how those are read into SymPy objects, never by running the text."""

from __future__ import annotations

import argparse
import re
from typing import NamedTuple

import sympy

from symdl.cli.errors import InputError

EXAMPLES = """\
examples:
  symdl grad "mse(sigma(w*x + b), y)" --wrt w b
  symdl grad "log(1 + exp(z))" --wrt z --latex
  symdl verify "sigma(z)" --wrt z --claimed "sigma(z)*(1 - sigma(z))"
  symdl verify "(w*x - y)^2" --wrt w --claimed '2 (w x - y) x'
  symdl check "relu(w*x + b)*y" --wrt w b --method complex
  symdl grad "x.T*A*x" --wrt x --shapes "A:n x n, x:n"
  symdl derive "mse(sigma(w*x + b), y)" --wrt w b --name z="w*x + b" -o neuron.pdf
  symdl train net.py --data digits --epochs 20
"""

SHAPES_HELP = (
    'declare matrices in EXPR: W=3x2 x=2x1 (also W=3x2,x=2x1 or "A:n x n, x:n"; a size may '
    "be a name, one size is a column); every other name is a scalar"
)

SCALAR_TRANSPOSE = "declare {name} a matrix, e.g. --shapes {name}=3x1"

_SIZE = r"(?:\d+|[A-Za-z_]\w*)"


def add_job_parser(commands, name: str, help: str) -> argparse.ArgumentParser:
    """The subcommand `name` with the options of a job on EXPR: EXPR, --wrt, --shapes."""
    sub = commands.add_parser(
        name, help=help, epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub.add_argument("expr", metavar="EXPR", help="the function, Python syntax or LaTeX")
    sub.add_argument(
        "--wrt",
        nargs="+",
        required=True,
        metavar="NAME",
        help="variables (a name like W stands for W_00, W_01, ...)",
    )
    add_shapes_option(sub)
    return sub


def add_shapes_option(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--shapes", nargs="+", default=(), metavar="NAME=ROWSxCOLS", help=SHAPES_HELP)


def add_point_option(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--at", nargs="+", default=(), metavar="NAME=VALUE", help="a point")


class Job(NamedTuple):
    """EXPR and its options, read: `form` as parsed (a 1x1 matrix product stays one), `f` the
    scalar it stands for, the variables with a label per gradient part, and the point or None."""

    form: sympy.Basic
    f: sympy.Basic
    wrt: object
    labels: list[str]
    at: dict | None


def read_job(args) -> Job:
    """EXPR, --shapes, --wrt and (where the command has it) --at, read in that order."""
    form = expression(args.expr, args.shapes)
    f = form[0, 0] if isinstance(form, sympy.MatrixExpr) else form
    wrt, labels = variables(f, args.wrt)
    at = point(f, args.at) if getattr(args, "at", ()) else None
    return Job(form, f, wrt, labels, at)


def expression(text: str, shapes) -> sympy.Basic:
    """EXPR parsed with the matrices --shapes declares (every other name a new scalar, which
    may not be transposed): a scalar, or a 1x1 matrix expression such as x^T A x."""
    from symdl.parsing import parse
    from symdl.parsing.namespace import namespace_of

    matrices = matrix_shapes(shapes)
    namespace = namespace_of(*matrices.values(), new_symbols=True)
    namespace.scalar_transpose = SCALAR_TRANSPOSE
    f = parse(text, namespace)
    if isinstance(f, sympy.MatrixExpr) and not isinstance(f, sympy.MatrixBase):
        if f.shape != (1, 1):
            raise InputError(
                f"EXPR must be a scalar; it is a {f.shape[0]}x{f.shape[1]} matrix "
                "(with --shapes as given)"
            )
    elif not isinstance(f, sympy.Basic) or isinstance(f, sympy.MatrixBase):
        raise InputError("EXPR must be a scalar expression")
    unused = [name for name, m in matrices.items() if not f.has(m)]
    if unused:
        raise InputError(f"--shapes {unused[0]}: {unused[0]} does not occur in EXPR")
    return f


def matrix_shapes(specs) -> dict[str, sympy.MatrixSymbol]:
    """--shapes W=3x2 x=2x1 (or "W=3x2, x=2x1", or "A:n x n, x:n") as MatrixSymbols."""
    matrices: dict[str, sympy.MatrixSymbol] = {}
    for spec in (p.strip() for part in specs for p in part.split(",")):
        if not spec:
            continue
        name, sep, shape = spec.partition("=") if "=" in spec else spec.partition(":")
        name, shape = name.strip(), shape.strip()
        parts = re.split(r"\s+[x×*]\s+|\s*[×*]\s*", shape)
        if len(parts) == 1:
            pair = re.fullmatch(r"(\d+|[A-Za-z])x(\d+|[A-Za-z])", shape)
            parts = list(pair.groups()) if pair else parts
        if len(parts) == 1:
            parts.append("1")  # one size: a column
        if (
            not sep
            or not name.isidentifier()
            or len(parts) != 2
            or not all(re.fullmatch(_SIZE, p) for p in parts)
        ):
            raise InputError(
                f"--shapes {spec}: expected NAME=ROWSxCOLS, e.g. W=3x2 or A:n x n "
                "(sizes are whole numbers or names)"
            )
        if name in matrices:
            raise InputError(f"--shapes {spec}: {name} is declared twice")
        rows, cols = (
            int(p) if p.isdigit() else sympy.Symbol(p, integer=True, positive=True) for p in parts
        )
        if 0 in (rows, cols):
            raise InputError(f"--shapes {spec}: a size must be at least 1")
        matrices[name] = sympy.MatrixSymbol(name, rows, cols)
    return matrices


def variables(f, names: list[str]):
    """The --wrt names as a Symbol, a MatrixSymbol, a Matrix (a family such as W_00, W_01,
    ...) or a list of symbols, and a label for each part of the gradient."""
    from symdl.parsing.namespace import namespace_of

    values = namespace_of(f).values
    variables = sorted(
        k
        for k, v in values.items()
        if k.isidentifier() and isinstance(v, sympy.Symbol | sympy.MatrixBase | sympy.MatrixSymbol)
    )
    found = []
    for name in names:
        value = values.get(name)
        if value is None:
            raise InputError(
                f"--wrt {name}: {name} does not occur in EXPR (its variables: "
                f"{', '.join(variables) or 'none'})"
            )
        if not isinstance(value, sympy.Symbol | sympy.MatrixBase | sympy.MatrixSymbol):
            raise InputError(f"--wrt {name}: a constant, not a variable")
        found.append(value)
    if len(found) == 1:
        return found[0], names
    if any(isinstance(v, sympy.MatrixSymbol) for v in found):
        return found, names
    symbols = [s for v in found for s in (list(v) if isinstance(v, sympy.MatrixBase) else [v])]
    return symbols, [s.name for s in symbols]


def point(f, pairs) -> dict:
    """--at x=1 y=2 as {x: 1.0, y: 2.0}, each name one of the free symbols of `f`."""
    point = {}
    names = {s.name: s for s in f.free_symbols}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or name not in names:
            raise InputError(
                f"--at {pair}: expected NAME=VALUE with NAME one of {', '.join(sorted(names))}"
            )
        try:
            point[names[name]] = float(value)
        except ValueError:
            raise InputError(f"--at {pair}: {value!r} is not a number") from None
    return point
