"""`symdl verify EXPR --wrt NAME --claimed TEXT`: is the claimed formula the derivative of EXPR?
Exit 0 yes, 1 no (with the counterexample)."""

from __future__ import annotations

from symdl.cli.arguments import SCALAR_TRANSPOSE, add_job_parser, add_point_option, read_job


def add_parser(commands) -> None:
    verify = add_job_parser(
        commands, "verify", "is CLAIMED the derivative of EXPR? (exit 0 yes, 1 no)"
    )
    verify.add_argument(
        "--claimed",
        required=True,
        metavar="TEXT",
        help="the claimed derivative, Python syntax or LaTeX",
    )
    add_point_option(verify)
    verify.set_defaults(run=run)


def run(args) -> int:
    """Print the verdict on --claimed; returns 0 when it holds, 1 when it does not."""
    from symdl.checking.verify import verify

    job = read_job(args)
    _no_transposed_scalar(args.claimed, job.form, job.wrt)
    verdict = verify(job.form, job.wrt, args.claimed, at=job.at)
    print(verdict.explain() if not verdict else f"{verdict} ({verdict.method})")
    return 0 if verdict else 1


def _no_transposed_scalar(claim: str, f, wrt) -> None:
    """Raise ParseError when the claim transposes a scalar name (x.T for a scalar x), which
    `verify` would read as x itself; any other reading of the claim is left to `verify`."""
    from symdl.parsing import parse
    from symdl.parsing.errors import ShapeMisfit
    from symdl.parsing.namespace import namespace_of

    namespace = namespace_of(f, wrt)
    namespace.scalar_transpose = SCALAR_TRANSPOSE
    try:
        parse(claim, namespace, getattr(wrt, "shape", None))
    except ShapeMisfit:
        pass  # read, but its matrices do not fit: verify says DIFFERENT, naming the shapes
