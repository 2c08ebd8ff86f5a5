"""`symdl grad EXPR --wrt NAME ...`: the gradient of EXPR in closed form, as text or LaTeX."""

from __future__ import annotations

import sympy

from symdl.cli.arguments import add_job_parser, read_job


def add_parser(commands) -> None:
    grad = add_job_parser(commands, "grad", "the gradient of EXPR in closed form")
    grad.add_argument("--latex", action="store_true", help="print LaTeX")
    grad.set_defaults(run=run)


def run(args) -> int:
    """Print the gradient of EXPR with respect to each --wrt variable; returns 0."""
    from symdl.core.calculus import grad

    job = read_job(args)
    _print_gradient(grad(job.form, job.wrt), job.wrt, job.labels, args.latex)
    return 0


def _print_gradient(gradient, wrt, labels: list[str], latex: bool) -> None:
    parts = list(zip(wrt, gradient, strict=True)) if isinstance(wrt, list) else [(wrt, gradient)]
    for (w, g), label in zip(parts, labels, strict=True):
        if latex:
            print(rf"\frac{{\partial f}}{{\partial {sympy.latex(w)}}} = {sympy.latex(g)}")
        else:
            print(f"d/d{label} = {g.tolist() if isinstance(g, sympy.MatrixBase) else g}")
