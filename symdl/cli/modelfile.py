"""A Python file that says what `symdl derive` derives: it runs as ``python FILE.py`` would
(but under ``__name__ == "__symdl__"``), then its top-level `derivation`, `model`, or
`loss`/`expr` with `wrt` is taken."""

from __future__ import annotations

import os
import runpy
import sys
import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path

import sympy

from symdl.core.calculus import derive
from symdl.core.derivation import Derivation

RUN_NAME = "__symdl__"

CONVENTION = """\
a FILE.py runs like `python FILE.py` (its own code, in a fresh namespace; code under
`if __name__ == "__main__":` does not run) and must set one of these top-level variables:
  derivation = sd.derive(...)          a Derivation, exported as it is
  model = sd.nn.Sequential(..., input_shape=...)
                                       a network: model.derive(), every parameter
  loss = ... (or expr = ...)           a scalar SymPy expression, with
  wrt = [w, b]                         its variables (or --wrt NAME ...), and optionally
  names = {w*x + b: "z"}               names for its subexpressions
They are looked for in that order."""


class ModelFileError(ValueError):
    """A file that cannot be run, or that defines nothing to derive (exit code 2)."""


def derivation_from_file(path: str | os.PathLike, wrt: Sequence[str] | None = None) -> Derivation:
    """Run the Python file `path` and derive what it defines (see CONVENTION).

    Args:
        path: a ``.py`` file.
        wrt: names of variables of its `loss`/`expr`, instead of the file's `wrt`.

    Returns:
        The Derivation.

    Raises:
        ModelFileError: the file is missing, raises, or defines none of the variables, or
            `wrt` is given for a `derivation` or `model` (which fix their own variables).
    """
    path = Path(path)
    namespace = run_file(path)
    found = _top_level(namespace)
    if found is None:
        raise ModelFileError(
            f"{path} defines none of derivation, model, loss, expr; set one of them at top "
            f"level (see `symdl derive --help`){_candidates(namespace)}"
        )
    kind, value = found
    if kind in ("derivation", "model") and wrt:
        raise ModelFileError(
            f"{path}: its {kind} fixes the variables; drop --wrt, or define loss and wrt instead"
        )
    if kind == "derivation":
        return value
    if kind == "model":
        return value.derive()
    variables = resolve_wrt(value, wrt, f"{path}: {kind}") if wrt else namespace.get("wrt")
    if variables is None:
        raise ModelFileError(
            f"{path} defines {kind} but not wrt; set wrt = [...] in the file or give --wrt NAME"
        )
    return derive(value, variables, names=namespace.get("names"))


def run_file(path: Path) -> dict:
    """The namespace the file leaves behind, run with its folder first on ``sys.path``."""
    if path.suffix != ".py" or not path.is_file():
        raise ModelFileError(f"{path}: no such Python file")
    folder = str(path.resolve().parent)
    sys.path.insert(0, folder)
    try:
        namespace = runpy.run_path(str(path), run_name=RUN_NAME)
    except KeyboardInterrupt:
        raise
    except BaseException as error:  # the user's code: any failure (SystemExit too) is bad input
        raise ModelFileError(
            f"{path}{_line(error, path)}: {type(error).__name__}: {error}"
        ) from None
    finally:
        sys.path.remove(folder)
    return namespace


def _line(error: BaseException, path: Path) -> str:
    """Where in the file it failed: ", line N" (the deepest frame in the file)."""
    if isinstance(error, SyntaxError) and error.lineno:
        return f", line {error.lineno}"
    target = str(path.resolve())
    lines = [
        frame.lineno
        for frame in traceback.extract_tb(error.__traceback__)
        if os.path.abspath(frame.filename) == target
    ]
    return f", line {lines[-1]}" if lines else ""


def _top_level(namespace: Mapping) -> tuple[str, object] | None:
    from symdl.nn import Sequential

    if "derivation" in namespace:
        value = namespace["derivation"]
        _expect(value, Derivation, "derivation", "a Derivation (from sd.derive or model.derive())")
        return "derivation", value
    if "model" in namespace:
        value = namespace["model"]
        _expect(value, Sequential, "model", "an sd.nn.Sequential")
        return "model", value
    kinds = [k for k in ("loss", "expr") if k in namespace]
    if len(kinds) == 2:
        raise ModelFileError("the file defines both loss and expr; keep one")
    if kinds:
        value = namespace[kinds[0]]
        _expect(value, sympy.Basic, kinds[0], "a scalar SymPy expression")
        return kinds[0], value
    return None


def _expect(value, kind: type, name: str, what: str) -> None:
    if not isinstance(value, kind):
        raise ModelFileError(f"the file's {name} is a {type(value).__name__}, not {what}")


def _candidates(namespace: Mapping) -> str:
    """A hint naming the file's variables that could have been meant."""
    from symdl.nn import Sequential

    kinds = (Derivation, Sequential, sympy.Expr, sympy.MatrixExpr)
    names = [k for k, v in namespace.items() if not k.startswith("_") and isinstance(v, kinds)]
    return f"; it defines {', '.join(names[:8])}" if names else ""


def resolve_wrt(expr: sympy.Basic, names: Sequence[str], where: str):
    """The variables of `expr` called `names`: a Symbol, MatrixSymbol, or Matrix for a family
    of indexed symbols (``W`` for ``W_00, W_01, ...``); for several names, a flat list.

    Raises:
        ModelFileError: a name that is no variable of `expr` (its variables are listed).
    """
    from symdl.parsing.namespace import namespace_of

    values = namespace_of(expr).values
    variables = []
    for name in names:
        value = values.get(name)
        if not isinstance(value, sympy.Symbol | sympy.MatrixSymbol | sympy.MatrixBase):
            known = sorted(s.name for s in expr.free_symbols if hasattr(s, "name"))
            raise ModelFileError(
                f"--wrt {name}: not a variable of {where} (its variables: {', '.join(known)})"
            )
        variables.append(value)
    if len(variables) == 1:
        return variables[0]
    return [s for v in variables for s in (list(v) if isinstance(v, sympy.MatrixBase) else [v])]
