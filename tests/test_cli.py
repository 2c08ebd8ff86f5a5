"""The `symdl` command: exit codes 0 (holds), 1 (does not, counterexample printed), 2 (bad input),
tested through the installed console script and `python -m symdl` in subprocesses."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from symdl.cli import main

SCRIPT = Path(sys.executable).with_name("symdl")  # the console script next to this Python
if not SCRIPT.exists() and shutil.which("symdl"):
    SCRIPT = Path(shutil.which("symdl"))


def run(*args: str, module: bool = False) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "symdl", *args] if module else [str(SCRIPT), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


needs_script = pytest.mark.skipif(
    not SCRIPT.exists(),
    reason="the console script is not installed (pip install -e .)",
)


@needs_script
def test_verify_exit_codes_from_the_installed_command():
    holds = run("verify", "sigma(z)", "--wrt", "z", "--claimed", r"\sigma(z)\,(1-\sigma(z))")
    assert holds.returncode == 0, holds.stderr
    assert "EQUAL" in holds.stdout
    fails = run("verify", "sigma(z)", "--wrt", "z", "--claimed", "sigma(z)*(1 + sigma(z))")
    assert fails.returncode == 1, fails.stderr
    assert "DIFFERENT" in fails.stdout and "the claim gives" in fails.stdout  # the counterexample
    hostile = run("verify", "x**2", "--wrt", "x", "--claimed", "__import__('os').system('false')")
    assert hostile.returncode == 2
    assert "error" in hostile.stderr and "^" in hostile.stderr  # points at the position


@needs_script
def test_grad_and_check_from_the_installed_command():
    grad = run("grad", "mse(sigma(w*x + b), y)", "--wrt", "w", "b")
    assert grad.returncode == 0, grad.stderr
    assert grad.stdout.startswith("d/dw = ") and "\nd/db = " in grad.stdout
    latex = run("grad", "log(1 + exp(z))", "--wrt", "z", "--latex")
    assert (
        latex.returncode == 0
        and r"\frac{\partial f}{\partial z} = \frac{e^{z}}{e^{z} + 1}" in latex.stdout
    )
    check = run("check", "relu(w*x + b)*y", "--wrt", "w", "b", "--method", "complex")
    assert check.returncode == 0, check.stdout + check.stderr
    assert "gradient check holds (complex" in check.stdout


@needs_script
def test_bad_input_exits_2():
    assert run("grad", "x +", "--wrt", "x").returncode == 2
    assert run("grad", "x**2").returncode == 2  # argparse: --wrt is required
    assert (
        run("check", "log(x)", "--wrt", "x", "--at", "x=-1").returncode == 2
    )  # outside the domain


def test_python_m_symdl_runs_the_same_command():
    result = run("verify", "(w*x - y)^2", "--wrt", "w", "--claimed", "2 (w x - y) x", module=True)
    assert result.returncode == 0, result.stderr


def test_exit_codes_in_process(capsys):
    assert main(["verify", "x**2*y", "--wrt", "x", "--claimed", "3", "--at", "x=1.5", "y=1"]) == 0
    assert main(["verify", "x**2*y", "--wrt", "x", "--claimed", "3", "--at", "x=1", "y=1"]) == 1
    assert main(["verify", "x*y", "--wrt", "x", "y", "--claimed", "[y, y]"]) == 1
    assert "at x = " in capsys.readouterr().out
    assert main(["verify", "x**2", "--wrt", "x", "--claimed", "2*q"]) == 2
    assert "unknown name 'q'" in capsys.readouterr().err
    assert main(["check", "x**2", "--wrt", "x", "--at", "y=1"]) == 2
    assert main(["check", "x**2", "--wrt", "x", "--points", "0"]) == 2
    assert main(["check", "W_00*x0 + W_01*x1 + W_10*x0 + W_11*x1", "--wrt", "W"]) == 0
    assert "W_11 [1, 1]" in capsys.readouterr().out
    assert main(["grad", "W_00*x0 + W_01*x1 + W_10*x0 + W_11*x1", "--wrt", "W"]) == 0
    assert "d/dW = [[x0, x1], [x0, x1]]" in capsys.readouterr().out
    with pytest.raises(SystemExit) as usage:
        main(["verify", "x", "--wrt", "x"])  # --claimed missing
    assert usage.value.code == 2
