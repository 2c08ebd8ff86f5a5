"""The `symdl` command line: derive gradients, verify hand-written ones, check them numerically,
train a network. Formulas are parsed, never executed.

Exit codes, one meaning each: 0 done (the claim or the check holds, the file is written, the
training finished); 1 the job ran and the answer is no (the claim or check is false, with the
counterexample or worst entry printed; training diverged, with the step named; the LaTeX engine
failed); 2 bad input (a formula, file, option, checkpoint or output folder that cannot be used);
3 an internal error of symdl (a bug: one line, no traceback; SYMDL_TRACEBACK=1 shows it);
130 interrupted. Every failure is one message on stderr, never a traceback."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

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

DERIVE_EXAMPLES = """\
examples:
  symdl derive "mse(sigma(w*x + b), y)" --wrt w b                 # LaTeX on stdout
  symdl derive "mse(sigma(w*x + b), y)" --wrt w b --name z="w*x + b" --format md
  symdl derive net.py --notation delta -o net.pdf --title "Backpropagation"
  symdl derive net.py -o net.png --dpi 200

exit codes: 0 written, 1 the LaTeX engine failed, 2 bad input (also: a PDF asked for where no
LaTeX engine is installed). A failed export leaves no file behind.

"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="symdl",
        description=__doc__,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser(
        "demo",
        help="derive a network's backprop, verify, check, train briefly, write .tex/.md/.png",
    )
    demo.add_argument("-o", "--out", default="symdl-demo", help="folder for the files it writes")

    def job(name: str, help: str) -> argparse.ArgumentParser:
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
        _shapes_option(sub)
        return sub

    grad = job("grad", "the gradient of EXPR in closed form")
    grad.add_argument("--latex", action="store_true", help="print LaTeX")
    verify = job("verify", "is CLAIMED the derivative of EXPR? (exit 0 yes, 1 no)")
    verify.add_argument(
        "--claimed",
        required=True,
        metavar="TEXT",
        help="the claimed derivative, Python syntax or LaTeX",
    )
    check = job("check", "compare the gradient with numerical differentiation (exit 0 ok, 1 not)")
    check.add_argument("--method", choices=("central", "complex", "richardson"), default="central")
    check.add_argument("--points", type=int, default=5, help="random points (default 5)")
    for sub in (verify, check):
        sub.add_argument("--at", nargs="+", default=(), metavar="NAME=VALUE", help="a point")
    _derive_parser(commands)
    from symdl.cli.train import add_parser as add_train_parser

    add_train_parser(commands)
    return parser


SHAPES_HELP = (
    'declare matrices in EXPR: W=3x2 x=2x1 (also W=3x2,x=2x1 or "A:n x n, x:n"; a size may '
    "be a name, one size is a column); every other name is a scalar"
)


def _shapes_option(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--shapes", nargs="+", default=(), metavar="NAME=ROWSxCOLS", help=SHAPES_HELP)


def _derive_parser(commands) -> None:
    from symdl.cli.modelfile import CONVENTION
    from symdl.render.export import ENGINES, FORMATS
    from symdl.render.latex import NOTATIONS

    derive = commands.add_parser(
        "derive",
        help="the chain-rule steps of EXPR or of a Python file, as tex, md, pdf or png",
        description="Derive the gradient of EXPR (Python syntax or LaTeX, parsed, never run) "
        "or of what FILE.py defines, step by step, and write it as LaTeX, Markdown, PDF or PNG.",
        epilog=DERIVE_EXAMPLES + CONVENTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    derive.add_argument("expr", metavar="EXPR-or-FILE.py", help="a formula, or a Python file")
    derive.add_argument(
        "--wrt",
        nargs="+",
        metavar="NAME",
        help="variables (needed for EXPR; for a FILE instead of its wrt)",
    )
    derive.add_argument(
        "--name",
        nargs="+",
        default=(),
        metavar="NAME=SUBEXPR",
        help='name a step of EXPR, e.g. z="w*x + b"',
    )
    _shapes_option(derive)
    derive.add_argument("-o", "--out", metavar="OUT", help="the file to write (else stdout)")
    derive.add_argument(
        "--format", choices=FORMATS, help="default: the suffix of OUT, else tex on stdout"
    )
    derive.add_argument(
        "--notation",
        choices=NOTATIONS,
        default="bar",
        help="adjoints as \\bar{v} (default), \\partial L/\\partial v, or \\delta^{(l)}",
    )
    derive.add_argument("--title", help="a heading (files and Markdown)")
    derive.add_argument("--width", type=float, help="break rows wider than this (default 70)")
    derive.add_argument("--no-chain", action="store_true", help="values only, no ū ∂u/∂v")
    derive.add_argument("--dpi", type=int, help="PNG resolution (default 150)")
    derive.add_argument("--engine", choices=ENGINES, help="PDF: the LaTeX engine to use")


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    args = _parser().parse_args(argv)
    try:
        return _command(args)
    except (ValueError, TypeError, FileNotFoundError) as error:  # ParseError, InputError, ...
        print(f"symdl {args.command}: error: {error}", file=sys.stderr)
        return 2
    except RecursionError:
        print(f"symdl {args.command}: error: the input is nested too deeply", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"symdl {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader stopped (symdl derive ... | head): not an error of ours; Python would
        # report the pipe again when it flushes stdout at exit, so stdout goes nowhere now
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as error:  # a bug of symdl's: one line, the traceback only on request
        if os.environ.get("SYMDL_TRACEBACK"):
            raise
        reason = str(error).splitlines()[0][:300] if str(error) else ""
        print(
            f"symdl {args.command}: internal error ({type(error).__name__}: {reason}); "
            "please report it with the command (SYMDL_TRACEBACK=1 shows where)",
            file=sys.stderr,
        )
        return 3


def _command(args) -> int:
    if args.command == "demo":
        from symdl.cli.demo import run

        run(args.out)
        return 0
    if args.command == "train":
        from symdl.cli.train import run as train

        return train(args)
    return _derive(args) if args.command == "derive" else _run(args)


def _run(args) -> int:
    from symdl.checking.check import check_grad
    from symdl.checking.verify import verify
    from symdl.core.calculus import grad

    form = _expression(args.expr, args.shapes)  # a 1x1 matrix product stays one
    f = form[0, 0] if isinstance(form, sympy.MatrixExpr) else form
    wrt, labels = _variables(f, args.wrt)
    at = _point(f, args.at) if getattr(args, "at", ()) else None
    if args.command == "grad":
        _print_gradient(grad(form, wrt), wrt, labels, args.latex)
        return 0
    if args.command == "verify":
        _no_transposed_scalar(args.claimed, form, wrt)
        verdict = verify(form, wrt, args.claimed, at=at)
        print(verdict.explain() if not verdict else f"{verdict} ({verdict.method})")
        return 0 if verdict else 1
    if args.points < 1:
        raise InputError("--points must be at least 1")
    result = check_grad(f, wrt, method=args.method, at=at, points=args.points)
    print(result.report())
    return 0 if result else 1


def _derive(args) -> int:
    from symdl.cli.modelfile import derivation_from_file
    from symdl.core.calculus import derive
    from symdl.render.export import LatexFailed, LatexNotFound, export, to_markdown

    fmt = args.format or (args.out and _suffix(args.out)) or "tex"
    if args.out is None and fmt in ("pdf", "png"):
        raise InputError(f"--format {fmt} writes a file: give -o OUT.{fmt}")
    if args.expr.endswith(".py"):
        if args.name:
            raise InputError("--name applies to EXPR; in a FILE set names = {...}")
        derivation = derivation_from_file(args.expr, args.wrt)
    else:
        if not args.wrt:
            raise InputError("EXPR needs --wrt NAME ...")
        f = _expression(args.expr, args.shapes)
        f = f[0, 0] if isinstance(f, sympy.MatrixExpr) else f
        wrt, _ = _variables(f, args.wrt)
        derivation = derive(f, wrt, names=_names(f, args.name))
    layout = {"notation": args.notation, "chain": not args.no_chain}
    if args.width is not None:
        layout["width"] = args.width
    if args.out is None:
        print(
            derivation.to_latex(**layout)
            if fmt == "tex"
            else to_markdown(derivation, args.title, **layout)
        )
        return 0
    options = {k: getattr(args, k) for k in ("title", "dpi", "engine") if getattr(args, k)}
    try:
        path = export(derivation, args.out, format=fmt, **layout, **options)
    except LatexNotFound as error:
        print(f"symdl derive: error: {error}", file=sys.stderr)
        return 2
    except LatexFailed as error:
        print(f"symdl derive: {error}", file=sys.stderr)
        return 1
    print(f"wrote {path}")
    return 0


def _suffix(out: str) -> str:
    from symdl.render.export import FORMATS

    suffix = Path(out).suffix.removeprefix(".").lower()
    if suffix not in FORMATS:
        raise InputError(
            f"-o {out}: cannot tell the format from its suffix; end it in "
            f"{', '.join('.' + f for f in FORMATS)} or give --format"
        )
    return suffix


def _names(f, pairs) -> dict:
    """--name z="w*x + b": {w*x + b: "z"}, the subexpression parsed like EXPR."""
    from symdl.parsing import parse

    names = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or not name.strip() or not text.strip():
            raise InputError(f'--name {pair}: expected NAME=SUBEXPR, e.g. z="w*x + b"')
        names[parse(text)] = name.strip()
    return names


def _expression(text: str, shapes) -> sympy.Basic:
    """EXPR parsed with the matrices --shapes declares (every other name a new scalar, which
    may not be transposed): a scalar, or a 1x1 matrix expression such as x^T A x."""
    from symdl.parsing import parse
    from symdl.parsing.namespace import namespace_of

    matrices = _shapes(shapes)
    namespace = namespace_of(*matrices.values(), new_symbols=True)
    namespace.scalar_transpose = _SCALAR_TRANSPOSE
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


_SCALAR_TRANSPOSE = "declare {name} a matrix, e.g. --shapes {name}=3x1"


def _no_transposed_scalar(claim: str, f, wrt) -> None:
    """Raise ParseError when the claim transposes a scalar name (x.T for a scalar x), which
    `verify` would read as x itself; any other reading of the claim is left to `verify`."""
    from symdl.parsing import parse
    from symdl.parsing.errors import ShapeMisfit
    from symdl.parsing.namespace import namespace_of

    namespace = namespace_of(f, wrt)
    namespace.scalar_transpose = _SCALAR_TRANSPOSE
    try:
        parse(claim, namespace, getattr(wrt, "shape", None))
    except ShapeMisfit:
        pass  # read, but its matrices do not fit: verify says DIFFERENT, naming the shapes


_SIZE = r"(?:\d+|[A-Za-z_]\w*)"


def _shapes(specs) -> dict[str, sympy.MatrixSymbol]:
    """--shapes W=3x2 x=2x1 (or "W=3x2, x=2x1", or "A:n x n, x:n") as MatrixSymbols."""
    import re

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


def _variables(f, names: list[str]):
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


def _point(f, pairs) -> dict:
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


def _print_gradient(gradient, wrt, labels: list[str], latex: bool) -> None:
    parts = list(zip(wrt, gradient, strict=True)) if isinstance(wrt, list) else [(wrt, gradient)]
    for (w, g), label in zip(parts, labels, strict=True):
        if latex:
            print(rf"\frac{{\partial f}}{{\partial {sympy.latex(w)}}} = {sympy.latex(g)}")
        else:
            print(f"d/d{label} = {g.tolist() if isinstance(g, sympy.MatrixBase) else g}")


if __name__ == "__main__":
    sys.exit(main())
