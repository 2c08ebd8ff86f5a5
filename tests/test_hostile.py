"""Hostile input at scale: over a thousand generated texts (tests/hostile.py) through the
parser, sd.verify, sd.grad of what parses, and a sample through the command line. None runs
code (an exploit would create a sentinel file or set a builtin), each ends with a result or a
clear error: a ParseError or another error of symdl's own, with a message."""

from __future__ import annotations

import builtins
import faulthandler
import os
import subprocess
import sys
from pathlib import Path

import pytest
import sympy

import symdl as sd
from symdl.parsing import parse
from tests.hostile import SENTINEL, corpus

x, y = sympy.symbols("x y", real=True)
TEXTS = corpus(seed=16)


def _clear(error: Exception) -> bool:
    """An error of symdl's own (ParseError, a shape error), or a ValueError whose message
    names the function that raised it ("verify: no point where ...")."""
    own = type(error).__module__.startswith("symdl")
    named = isinstance(error, ValueError) and str(error).startswith(("verify:", "grad:"))
    return (own or named) and bool(str(error).strip())


@pytest.fixture
def guarded(tmp_path, monkeypatch):
    """Run in an empty folder; fail loudly rather than hang (no timing is asserted)."""
    monkeypatch.chdir(tmp_path)
    faulthandler.dump_traceback_later(600, exit=True)
    yield tmp_path
    faulthandler.cancel_dump_traceback_later()
    assert not (tmp_path / SENTINEL).exists(), "a hostile text ran code"
    assert not hasattr(builtins, "symdl_pwned")


def test_the_corpus_is_large_and_varied():
    assert len(TEXTS) >= 1000
    assert any("__import__" in t for t in TEXTS) and any(r"\write18" in t for t in TEXTS)
    assert any(len(t) >= 1_000_000 for t in TEXTS) and any("\u0445" in t for t in TEXTS)


def test_parse_and_grad_of_every_hostile_text(guarded):
    unclear, parsed = [], 0
    for text in TEXTS:
        try:
            result = parse(text)
        except Exception as error:
            if not _clear(error):
                unclear.append((text[:80], type(error).__name__, str(error)[:120]))
            continue
        parsed += 1
        if not isinstance(result, sympy.Expr) or not result.free_symbols:
            continue
        wrt = sorted(result.free_symbols, key=str)[:3]
        try:
            gradient = sd.grad(result, wrt)
            assert len(gradient) == len(wrt)
        except Exception as error:
            if not _clear(error):
                unclear.append((text[:80], "grad " + type(error).__name__, str(error)[:120]))
    assert not unclear, unclear[:20]
    assert 0 < parsed < len(TEXTS)  # some texts are formulas (look-alikes, wrapped junk)


def test_verify_with_every_hostile_claim(guarded):
    unclear = []
    for text in TEXTS:
        try:
            verdict = sd.verify(x**2 * y, x, text)
            assert isinstance(bool(verdict), bool) and verdict.method
        except Exception as error:
            if not _clear(error):
                unclear.append((text[:80], type(error).__name__, str(error)[:120]))
    assert not unclear, unclear[:20]


SAMPLE = [
    "__import__('os').system('touch symdl_pwned')",
    "().__class__.__bases__[0].__subclasses__()",
    "import os",
    r"\write18{touch symdl_pwned}",
    "9**9**9**9",
    "E**E**E**E**E",
    "exp(" * 55 + "x" + ")" * 55,
    "(" * 10_000 + "x" + ")" * 10_000,
    "\u0445**2 + x",
    "max(" + ",".join(f"x{i}" for i in range(100)) + ")",
]


@pytest.mark.parametrize("text", SAMPLE, ids=range(len(SAMPLE)))
def test_the_command_line_with_hostile_text(guarded, text):
    env = os.environ | {"PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    commands = [["grad", text, "--wrt", "x"], ["verify", "x**2", "--wrt", "x", "--claimed", text]]
    for argv in commands[SAMPLE.index(text) % 2 :][:1]:  # each text through one command
        result = subprocess.run(
            [sys.executable, "-m", "symdl", *argv],
            capture_output=True,
            text=True,
            env=env,
            cwd=guarded,
            timeout=120,
        )
        assert result.returncode in (0, 1, 2), (argv[0], text[:60], result.stderr[-500:])
        assert "Traceback" not in result.stderr, result.stderr[-2000:]
        if result.returncode == 2:
            assert result.stderr.startswith(f"symdl {argv[0]}: error: ")
