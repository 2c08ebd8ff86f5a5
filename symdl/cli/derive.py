"""`symdl derive EXPR-or-FILE.py`: the chain-rule steps of a formula, or of what a Python file
defines, written as LaTeX or Markdown on stdout, or as a .tex, .md, .pdf or .png file."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import sympy

from symdl.cli.arguments import add_shapes_option, expression, variables
from symdl.cli.errors import InputError

DERIVE_EXAMPLES = """\
examples:
  symdl derive "mse(sigma(w*x + b), y)" --wrt w b                 # LaTeX on stdout
  symdl derive "mse(sigma(w*x + b), y)" --wrt w b --name z="w*x + b" --format md
  symdl derive net.py --notation delta -o net.pdf --title "Backpropagation"
  symdl derive net.py -o net.png --dpi 200

exit codes: 0 written, 1 the LaTeX engine failed, 2 bad input (also: a PDF asked for where no
LaTeX engine is installed). A failed export leaves no file behind.

"""


def add_parser(commands) -> None:
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
    add_shapes_option(derive)
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
    derive.set_defaults(run=run)


def run(args) -> int:
    """Print or write the derivation; returns 0 written, 1 the LaTeX engine failed, 2 no
    LaTeX engine (other bad input raises InputError/ValueError)."""
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
        f = expression(args.expr, args.shapes)
        f = f[0, 0] if isinstance(f, sympy.MatrixExpr) else f
        wrt, _ = variables(f, args.wrt)
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
