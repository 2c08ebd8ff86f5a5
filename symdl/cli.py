"""The `symdl` command line."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="symdl", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="derive, check and export a small network's gradient")
    demo.add_argument("-o", "--out", default="symdl-demo", help="folder for the files it writes")
    args = parser.parse_args(argv)
    if args.command == "demo":
        from symdl.demo import run

        run(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
