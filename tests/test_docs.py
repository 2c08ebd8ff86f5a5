"""The documentation runs and is current: docs/guide.md as a doctest, docs/api.md equal to what
scripts/build_api_docs.py generates, every public object with a docstring and an entry there,
and README.md's links pointing at files that exist."""

from __future__ import annotations

import doctest
import importlib.util
import inspect
import re
import sys
from pathlib import Path

import pytest

import symdl
import symdl.render.export

ROOT = Path(__file__).parents[1]


@pytest.fixture(scope="module")
def api_script():
    spec = importlib.util.spec_from_file_location(
        "build_api_docs", ROOT / "scripts" / "build_api_docs.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_examples_in_the_guide_run():
    flags = doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS
    result = doctest.testfile(
        str(ROOT / "docs" / "guide.md"), module_relative=False, optionflags=flags
    )
    assert result.attempted > 50 and result.failed == 0


def test_api_reference_is_current(api_script):
    committed = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    assert committed == api_script.build(), (
        "docs/api.md is stale: run python scripts/build_api_docs.py"
    )


def public_objects() -> dict[str, object]:
    """Every public name, spelt as users write it, found independently of the script."""
    train = sys.modules["symdl.training.loop"]
    names = {f"sd.{n}": getattr(symdl, n) for n in symdl.__all__}
    for prefix, module in (
        ("sd.nn", symdl.nn),
        ("sd.optim", symdl.optim),
        ("sd.datasets", symdl.training.datasets),
    ):
        names |= {f"{prefix}.{n}": getattr(module, n) for n in module.__all__}
    names |= {
        f"symdl.training.loop.{n}": getattr(train, n)
        for n in train.__all__
        if n not in symdl.__all__
    }
    names |= {
        f"symdl.render.export.{n}": obj
        for n, obj in vars(symdl.render.export).items()
        if not n.startswith("_")
        and callable(obj)
        and getattr(obj, "__module__", "") == "symdl.render.export"
    }
    return names


def test_every_public_object_has_a_docstring_and_an_entry():
    api = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    headings = set(re.findall(r"^### (\S+)$", api, re.MULTILINE))
    headings |= set(re.findall(r"^## .*: (\S+)$", api, re.MULTILINE))  # sd.nn and the like
    objects = public_objects()
    assert len(objects) > 90
    for name, obj in objects.items():
        assert (obj.__doc__ or "").strip(), f"{name} has no docstring"
        assert name in headings, f"{name} is missing from docs/api.md"
    for name in ("sd.derive", "sd.nn.Sequential", "sd.optim.Adam", "symdl.render.export.export"):
        entry = api.split(f"### {name}\n", 1)[1].split("\n### ", 1)[0]
        summary = inspect.cleandoc(objects[name].__doc__).splitlines()[0]
        assert summary in entry  # the docstring, not just the heading


def test_api_markdown_of_a_google_docstring(api_script):
    text = api_script._markdown(
        "Do it.\n\nArgs:\n    x: the input,\n        on two lines.\n    *rest (int): more.\n\n"
        "Returns:\n    The result.\n\n>>> 1 + 1\n2\n"
    )
    assert "**Args**\n\n- `x`: the input, on two lines.\n- `*rest` (int): more." in text
    assert "**Returns**\n\nThe result." in text
    assert "```python\n>>> 1 + 1\n2\n```" in text


def test_readme_links_to_the_documentation():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    docs = readme.split("## Documentation", 1)[1]
    for page in (
        "guide.md",
        "api.md",
        "gallery/README.md",
        "checking.md",
        "latex.md",
        "benchmarks.md",
    ):
        assert f"(docs/{page})" in docs, page
    for link in re.findall(r"\]\(((?:docs|examples)/[^)#]+)\)", readme):
        assert (ROOT / link).exists(), link
