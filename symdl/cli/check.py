"""`symdl check EXPR --wrt NAME ...`: compare the gradient of EXPR with numerical
differentiation at random points (or --at one). Exit 0 ok, 1 not (the worst entry printed)."""

from __future__ import annotations

from symdl.cli.arguments import add_job_parser, add_point_option, read_job
from symdl.cli.errors import InputError


def add_parser(commands) -> None:
    check = add_job_parser(
        commands, "check", "compare the gradient with numerical differentiation (exit 0 ok, 1 not)"
    )
    check.add_argument("--method", choices=("central", "complex", "richardson"), default="central")
    check.add_argument("--points", type=int, default=5, help="random points (default 5)")
    add_point_option(check)
    check.set_defaults(run=run)


def run(args) -> int:
    """Print the check's report; returns 0 when the gradient agrees, 1 when it does not."""
    from symdl.checking.check import check_grad

    job = read_job(args)
    if args.points < 1:
        raise InputError("--points must be at least 1")
    result = check_grad(job.f, job.wrt, method=args.method, at=job.at, points=args.points)
    print(result.report())
    return 0 if result else 1
