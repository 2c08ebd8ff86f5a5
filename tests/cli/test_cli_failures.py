"""Every failure of the command line is one clear message and an exit code with one meaning:
0 done, 1 the answer is no, 2 bad input, 3 an internal error; never a traceback, never a wrong
answer read from text that is not a formula."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import sympy

import symdl as sd
from symdl.cli.main import main

TWENTY_BIG = "*".join(["2**9000"] * 20) + "*x"


@pytest.mark.parametrize(
    "argv, message",
    [
        (["grad", "import os", "--wrt", "x"], "not valid Python syntax"),
        (["grad", "import os; os.system('true')", "--wrt", "x"], "not valid Python"),
        (["grad", "lambda: 0", "--wrt", "x"], ""),
        (["verify", "x**2", "--wrt", "x", "--claimed", "10.0**400"], "beyond double precision"),
        (["grad", TWENTY_BIG, "--wrt", "x"], "beyond double precision"),
        (["verify", "x**2", "--wrt", "x", "--claimed", "2**9000*x"], "beyond double precision"),
        (["check", "x**2", "--wrt", "x", "--points", "0"], "--points"),
    ],
)
def test_bad_input_is_one_message_and_exit_2(argv, message, capsys):
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert err.startswith(f"symdl {argv[0]}: error: ") and message in err, err
    assert "Traceback" not in err and "d/dx" not in out


def test_the_trace_of_a_scalar_is_the_scalar(capsys):
    assert main(["grad", "trace(x)", "--wrt", "x"]) == 0
    assert "d/dx = 1" in capsys.readouterr().out


def test_text_that_is_neither_python_nor_code_is_still_read_as_latex(capsys):
    assert main(["verify", "(w*x - y)^2", "--wrt", "w", "--claimed", "2 (w x - y) x"]) == 0
    assert main(["grad", "2(a - y)x", "--wrt", "a"]) == 0
    assert "d/da = 2*x" in capsys.readouterr().out


def test_a_step_function_has_a_right_answer_not_a_traceback(capsys):
    assert main(["check", "step(x)*x", "--wrt", "x"]) == 0
    assert "ok" in capsys.readouterr().out
    x = sympy.Symbol("x", real=True)
    assert sd.check_grad(sympy.Heaviside(x) * x, x)
    assert sd.check_grad(sympy.Heaviside(x) * x, x, method="complex")
    assert sd.check_grad(sympy.Heaviside(x - 1) * x**2, x, at={x: 2.0})


def test_an_internal_error_is_one_line_and_exit_3(capsys, monkeypatch):
    import symdl.core.calculus

    def broken(*args):
        raise RuntimeError("an invariant broke\nsecond line")

    monkeypatch.setattr(symdl.core.calculus, "grad", broken)
    assert main(["grad", "x**2", "--wrt", "x"]) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "internal error (RuntimeError: an invariant broke)" in err
    monkeypatch.setenv("SYMDL_TRACEBACK", "1")
    with pytest.raises(RuntimeError):
        main(["grad", "x**2", "--wrt", "x"])


def test_the_command_itself_never_prints_a_traceback(tmp_path):
    env = os.environ | {"PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    for argv, code in [
        (["grad", "import os", "--wrt", "x"], 2),
        (["grad", "trace(x)", "--wrt", "x"], 0),  # a scalar is its own trace: d/dx = 1
        (["verify", "x**2", "--wrt", "x", "--claimed", "10.0**400"], 2),
        (["check", "step(x)*x", "--wrt", "x"], 0),
    ]:
        result = subprocess.run(
            [sys.executable, "-m", "symdl", *argv],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=120,
        )
        assert result.returncode == code, (argv, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr, result.stderr


def test_a_reader_that_stops_early_is_not_an_error(tmp_path):
    """symdl derive ... | head: the pipe closes before the output ends; exit 0, no report."""
    expr = "+".join(f"sigmoid(w*x{i} + b)**2" for i in range(400))
    command = [sys.executable, "-m", "symdl", "derive", expr, "--wrt", "w", "b"]
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
        env=os.environ | {"PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    process.stdout.read(10)
    process.stdout.close()
    stderr = process.stderr.read().decode()
    assert process.wait(timeout=120) == 0, stderr
    assert "error" not in stderr
