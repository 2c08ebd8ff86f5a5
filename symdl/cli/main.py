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

from symdl.cli import check, demo, derive, grad, train, verify
from symdl.cli.arguments import EXAMPLES

# One module per command, in the order `symdl --help` lists them; each adds its subparser and
# sets `run`, the function that does the job and returns the exit code.
COMMANDS = (demo, grad, verify, check, derive, train)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="symdl",
        description=__doc__,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.add_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    args = _parser().parse_args(argv)
    try:
        return args.run(args)
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


if __name__ == "__main__":
    sys.exit(main())
