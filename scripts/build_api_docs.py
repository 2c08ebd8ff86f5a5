"""Write docs/api.md, the API reference, from the docstrings of symdl's public objects.

python scripts/build_api_docs.py           # rewrite docs/api.md
python scripts/build_api_docs.py --check   # exit 1 when docs/api.md is stale
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import inspect
import re
import sys
from pathlib import Path

import sympy

import symdl

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "api.md"
WIDTH = 96  # a signature longer than this gets one parameter per line

# Groups of `symdl.__all__`; the ops form their own group, and names no group claims land in
# "Other", so nothing public goes undocumented.
TOP = {
    "Deriving": ["derive", "grad", "jacobian", "hessian", "Derivation", "build_program", "Program"],
    "Matrix expressions": ["elementwise", "hadamard"],
    "Checking and verifying": ["check_grad", "GradCheck", "verify", "Verdict"],
    "Linear algebra": [
        "max_eigenvalue",
        "eigvalsh",
        "eigh_vectors",
        "singular_values",
        "nuclear_norm",
    ],
    "Training": ["train", "History"],
    "Errors": ["ParseError", "UnsupportedExpression", "UnsupportedOp", "GradientMismatch"],
}
MODULES = {"datasets", "nn", "optim", "prob"}
_SECTION = re.compile(r"^(Args|Arguments|Returns|Raises|Yields|Attributes|Note|Notes):\s*$")
_ITEM = re.compile(r"^(\**[\w.]+(?:, \**[\w.]+)*)(?: \(([^)]*)\))?: (.*)$")


def groups() -> list[tuple[str, str, list[tuple[str, object]]]]:
    """(title, intro, [(qualified name, object), ...]) in the order of the page."""
    top = {name: getattr(symdl, name) for name in symdl.__all__}
    claimed = {n for names in TOP.values() for n in names} | MODULES
    ops = [n for n, obj in top.items() if _is_op(obj)]
    rest = [n for n in top if n not in claimed and n not in ops]
    train = sys.modules[
        "symdl.training.loop"
    ]  # `symdl.training.loop` the attribute is the function
    out = []
    for title, names in TOP.items():
        out.append((title, "", [(f"sd.{n}", top[n]) for n in names]))
        if title == "Checking and verifying":
            out.append(
                (
                    "Functions (ops)",
                    "Deep-learning functions as SymPy functions: each carries its derivative, its "
                    "notation and a NumPy form that stays finite for arguments of ±1000. Losses "
                    "take `(prediction, target)`: scalars, or lists or Matrices of equal length "
                    "(the mean is over entries); `softmax`, `log_softmax` and `logsumexp` take a "
                    "list or a column Matrix (`softmax(z)` is a Matrix, `softmax(z, k)` its "
                    "entry k); `l1` and `l2` take a list of weights. On MatrixSymbols each "
                    "acts in matrix form.",
                    [(f"sd.{n}", top[n]) for n in ops],
                )
            )
        if title == "Training":
            extra = [n for n in train.__all__ if n not in top]
            out[-1][2].extend((f"symdl.training.loop.{n}", getattr(train, n)) for n in extra)
    for title, module, prefix in (
        ("Networks: sd.nn", symdl.nn, "sd.nn"),
        ("Optimizers: sd.optim", symdl.optim, "sd.optim"),
        ("Data sets: sd.datasets", symdl.training.datasets, "sd.datasets"),
        ("Probability: sd.prob", symdl.prob, "sd.prob"),
    ):
        names = sorted(module.__all__, key=lambda n: (not inspect.isclass(getattr(module, n)), n))
        out.append((title, _doc(module), [(f"{prefix}.{n}", getattr(module, n)) for n in names]))
    ops = importlib.import_module("symdl.ops")
    declaring = ["Op", "MatrixOp", "MatrixLoss", "elementwise", "declared", "activations"]
    out.append(
        (
            "Declaring ops: symdl.ops",
            "What a user needs to declare an op of their own; see the guide's section "
            '"Adding an op, a layer or an optimizer".',
            [(f"symdl.ops.{n}", getattr(ops, n)) for n in declaring],
        )
    )
    export = importlib.import_module("symdl.render.export")
    names = [
        n
        for n, obj in vars(export).items()
        if not n.startswith("_")
        and (inspect.isfunction(obj) or inspect.isclass(obj))
        and obj.__module__ == export.__name__
    ]
    out.append(
        (
            "Export: symdl.render.export",
            _doc(export),
            [(f"symdl.render.export.{n}", getattr(export, n)) for n in names],
        )
    )
    if rest:
        out.append(("Other", "", [(f"sd.{n}", top[n]) for n in rest]))
    return out


def build() -> str:
    """The whole page."""
    parts = [
        "# API reference",
        "",
        "Generated from the docstrings by `scripts/build_api_docs.py`; do not edit it by hand.",
        "`python scripts/build_api_docs.py` rewrites it, and `tests/test_docs.py` fails when it is",
        "stale. `sd` is `import symdl as sd`. For a tour see [the guide](guide.md).",
        "",
    ]
    sections = groups()
    parts += [" · ".join(f"[{title}](#{_anchor(title)})" for title, _, _ in sections), ""]
    for title, intro, objects in sections:
        parts += [f"## {title}", ""]
        if intro:
            parts += [intro, ""]
        seen: dict[int, str] = {}
        for name, obj in objects:
            parts += _entry(name, obj, seen)
    return "\n".join(parts).rstrip() + "\n"


def _entry(name: str, obj, seen: dict[int, str]) -> list[str]:
    short = name.rsplit(".", 1)[1]
    if id(obj) in seen:
        return [f"### {name}", "", f"Another name for `{seen[id(obj)]}`.", ""]
    seen[id(obj)] = short
    if inspect.ismodule(obj):
        return [f"### {name}", "", _markdown(_doc(obj)), ""]
    signature = _signature(short, obj)
    lines = [f"### {name}", ""]
    if signature:
        lines += ["```python", signature, "```", ""]
    lines += [_markdown(_doc(obj)), ""]
    if inspect.isclass(obj) and not _is_op(obj) and not issubclass(obj, BaseException):
        for member, value in _members(obj):
            kind = " (property)" if isinstance(value, property) else ""
            lines += [f"#### {short}.{member}{kind}", ""]
            if not kind:
                lines += ["```python", _signature(member, value, method=True), "```", ""]
            lines += [_markdown(_doc(value)), ""]
    return lines


def _members(cls) -> list[tuple[str, object]]:
    """Public methods and properties the class itself defines and documents."""
    found = []
    for member, value in vars(cls).items():
        if member.startswith("_") or member in getattr(cls, "__dataclass_fields__", {}):
            continue
        if isinstance(value, staticmethod | classmethod):
            value = value.__func__
        if (inspect.isfunction(value) or isinstance(value, property)) and _doc(value):
            found.append((member, value))
    return found


def _doc(obj) -> str:
    """The object's own docstring (a class's is never its base's), cleaned."""
    return inspect.cleandoc(getattr(obj, "__doc__", None) or "")


def _is_op(obj) -> bool:
    return inspect.isclass(obj) and issubclass(obj, sympy.Function)


def _anchor(title: str) -> str:
    return re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")


# ---------------------------------------------------------------- signatures


def _signature(name: str, obj, method: bool = False) -> str:
    """How it is called, as Python; empty for an op whose arguments its __new__ does not name."""
    if _is_op(obj):
        parameters = _op_parameters(obj)
        return f"{name}({parameters})" if parameters else ""
    if inspect.isclass(obj) and issubclass(obj, BaseException):
        bases = ", ".join(b.__name__ for b in obj.__bases__)
        return f"class {name}({bases})"
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):
        return f"{'class ' if inspect.isclass(obj) else ''}{name}(...)"
    parameters = [_parameter(p) for p in signature.parameters.values()]
    if method and parameters and parameters[0] in ("self", "cls"):
        parameters = parameters[1:]
    returns = ""
    if signature.return_annotation not in (inspect.Signature.empty, "None", None):
        returns = f" -> {_annotation(signature.return_annotation)}"
    head = f"class {name}" if inspect.isclass(obj) else name
    one_line = f"{head}({', '.join(parameters)}){returns}"
    if len(one_line) <= WIDTH:
        return one_line
    return f"{head}(\n" + "".join(f"    {p},\n" for p in parameters) + f"){returns}"


def _parameter(p: inspect.Parameter) -> str:
    text = {p.VAR_POSITIONAL: f"*{p.name}", p.VAR_KEYWORD: f"**{p.name}"}.get(p.kind, p.name)
    if p.annotation is not inspect.Parameter.empty:
        text += f": {_annotation(p.annotation)}"
    if p.default is not inspect.Parameter.empty:
        text += (" = " if p.annotation is not inspect.Parameter.empty else "=") + _default(
            p.default
        )
    return text


def _annotation(annotation) -> str:
    if isinstance(annotation, str):
        return annotation
    return inspect.formatannotation(annotation)


def _default(value) -> str:
    if inspect.isclass(value) or inspect.isfunction(value):
        return value.__name__
    if value is dataclasses.MISSING:
        return "..."
    text = repr(value)
    return f"<{type(value).__name__}>" if " at 0x" in text else text


def _op_parameters(op) -> str:
    """An op's parameters: those of its own __new__, or x (one argument), else none known."""
    new = op.__dict__.get("__new__")
    if new is not None:
        names = [
            _parameter(p)
            for p in inspect.signature(new).parameters.values()
            if p.name != "cls" and p.kind != p.VAR_KEYWORD
        ]
        if names and names != ["*args"]:
            return ", ".join(names)
    nargs = getattr(op, "nargs", None)
    if isinstance(nargs, sympy.FiniteSet) and len(nargs) == 1:
        count = int(next(iter(nargs)))
        return ", ".join(["x"] if count == 1 else [f"x{k + 1}" for k in range(count)])
    return ""


# ---------------------------------------------------------------- docstrings to Markdown


def _markdown(doc: str) -> str:
    """Google-style sections as bold headings and lists, doctests as Python blocks."""
    out: list[str] = []
    lines = doc.splitlines()
    k = 0
    while k < len(lines):
        line = lines[k]
        if line.lstrip().startswith(">>>"):
            indent = len(line) - len(line.lstrip())
            block = []
            while k < len(lines) and lines[k].strip():
                block.append(lines[k][indent:])
                k += 1
            out += ["", "```python", *block, "```", ""]
            continue
        section = _SECTION.match(line)
        if section:
            k = _section(section[1], lines, k + 1, out)
            continue
        out.append(line)
        k += 1
    text = "\n".join(out).strip()
    return re.sub(r"\n{3,}", "\n\n", text)


def _section(title: str, lines: list[str], k: int, out: list[str]) -> int:
    """One section's indented lines, from line `k`; returns where it ends."""
    body: list[str] = []
    while k < len(lines) and (not lines[k].strip() or lines[k].startswith(" ")):
        if not lines[k].strip() and (k + 1 >= len(lines) or not lines[k + 1].startswith(" ")):
            break
        body.append(lines[k])
        k += 1
    out += ["", f"**{title}**", ""]
    items: list[str] = []
    for line in body:
        text = line.strip()
        first_level = len(line) - len(line.lstrip()) <= 4
        item = _ITEM.match(text) if first_level else None
        if item and title != "Note":
            kind = f" ({item[2]})" if item[2] else ""
            items.append(f"- `{item[1]}`{kind}: {item[3]}")
        elif items and text:
            items[-1] += " " + text
        elif text:
            items.append(text if title in ("Returns", "Yields", "Note", "Notes") else f"- {text}")
    joined = []
    for item in items:  # plain text continues the paragraph before it
        if joined and not item.startswith("- ") and not joined[-1].startswith("- "):
            joined[-1] += " " + item
        else:
            joined.append(item)
    out += [*joined, ""]
    return k


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if docs/api.md is stale")
    args = parser.parse_args(argv)
    text = build()
    if args.check:
        current = OUT.read_text(encoding="utf-8") if OUT.exists() else ""
        if current != text:
            print(f"{OUT} is stale: run python scripts/build_api_docs.py", file=sys.stderr)
            return 1
        return 0
    from symdl.render.files import write_atomic

    print(f"wrote {write_atomic(OUT, text)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
