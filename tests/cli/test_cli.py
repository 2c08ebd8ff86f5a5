"""The `symdl` command: exit codes 0 (holds), 1 (does not, counterexample printed), 2 (bad input),
tested through the installed console script and `python -m symdl` in subprocesses."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from symdl.cli.main import main

SCRIPT = Path(sys.executable).with_name("symdl")  # the console script next to this Python
if not SCRIPT.exists() and shutil.which("symdl"):
    SCRIPT = Path(shutil.which("symdl"))


def run(*args: str, module: bool = False, **options) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "symdl", *args] if module else [str(SCRIPT), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, **options)


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
        and r"\frac{\partial f}{\partial z} = \sigma\left(z\right)" in latex.stdout
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


# ---------------------------------------------------------------- symdl derive

NETWORK = """\
import symdl as sd

model = sd.nn.Sequential(sd.nn.Dense(3, "sigmoid"), sd.nn.Dense(2), input_shape=4)

if __name__ == "__main__":
    raise SystemExit("symdl derive must not run the main block")
"""

NEURON = """\
import sympy
import symdl as sd

w, x, b, y = sympy.symbols("w x b y")
loss = sd.binary_cross_entropy(sd.sigmoid(w*x + b), y)
wrt = [w, b]
names = {w*x + b: "z"}
"""


@pytest.fixture
def network(tmp_path) -> Path:
    path = tmp_path / "net.py"
    path.write_text(NETWORK)
    return path


def has_latex_engine() -> bool:
    return any(shutil.which(name) for name in ("pdflatex", "lualatex", "xelatex"))


@needs_script
def test_derive_expr_prints_latex_and_markdown():
    expr = ("mse(sigma(w*x + b), y)", "--wrt", "w", "b", "--name", "z=w*x + b")
    tex = run("derive", *expr)
    assert tex.returncode == 0, tex.stderr
    assert tex.stdout.startswith(r"\begin{align*}") and r"\end{align*}" in tex.stdout
    assert r"z &= b + w x \\" in tex.stdout  # the named step
    assert r"\frac{\partial L}{\partial w} &= \bar{z}\,\frac{\partial z}{\partial w}" in tex.stdout
    md = run("derive", *expr, "--format", "md", "--notation", "partial", "--title", "Neuron")
    assert md.returncode == 0, md.stderr
    assert md.stdout.startswith("# Neuron\n") and "\n$$\n\\begin{aligned}\n" in md.stdout
    assert r"\frac{\partial L}{\partial z} &=" in md.stdout and r"\bar{" not in md.stdout


@needs_script
def test_derive_a_model_file_to_every_format(network, tmp_path):
    import matplotlib.image

    out = tmp_path / "out"
    out.mkdir()  # a missing output folder is an error (tested in test_files_written)
    tex = run("derive", str(network), "--notation", "delta", "-o", str(out / "net.tex"))
    assert tex.returncode == 0, tex.stderr
    assert tex.stdout.strip() == f"wrote {out / 'net.tex'}"
    source = (out / "net.tex").read_text()
    assert source.startswith(r"\documentclass") and r"\end{document}" in source
    for part in (
        r"Z^{(1)} &= W^{(1)} X",
        r"\Delta^{(2)} &=",
        r"\frac{\partial L}{\partial W^{(1)}}",
    ):
        assert part in source
    md = run("derive", str(network), "-o", str(out / "net.md"), "--title", "Backprop")
    assert md.returncode == 0, md.stderr
    assert (out / "net.md").read_text().startswith("# Backprop\n\n## Forward pass")
    png = run("derive", str(network), "-o", str(out / "net.png"), "--dpi", "60")
    assert png.returncode == 0, png.stderr
    image = matplotlib.image.imread(out / "net.png")
    assert image.shape[0] > 200 and image.shape[1] > 200 and image.min() < 0.5  # ink on white
    if not has_latex_engine():
        pytest.skip("no LaTeX engine installed: the PDF export is not compiled here")
    pdf = run("derive", str(network), "--format", "pdf", "-o", str(out / "net.out"))
    assert pdf.returncode == 0, pdf.stderr
    assert (out / "net.out").read_bytes().startswith(b"%PDF-")


@needs_script
def test_derive_bad_input_exits_2_and_writes_nothing(network, tmp_path):
    broken = tmp_path / "broken.py"
    broken.write_text("import sympy\nx = sympy.Symbol('x')\nloss = x**2 + undefined\n")
    empty = tmp_path / "empty.py"
    empty.write_text("import sympy\nL = sympy.Symbol('a')**2\n")
    out = ("-o", str(tmp_path / "out.tex"))
    cases = {
        ("x +", "--wrt", "x", *out): "^",  # the position of the parse error
        ("x**2", *out): "needs --wrt",
        (str(broken), *out): "broken.py, line 3: NameError",
        (str(empty), *out): "defines none of derivation, model, loss, expr; set one",
        (str(tmp_path / "missing.py"), *out): "no such Python file",
        (str(network), "--wrt", "W", *out): "drop --wrt",
        ("x**2", "--wrt", "x", "-o", str(tmp_path / "out.txt")): "cannot tell the format",
        ("x**2", "--wrt", "x", "--format", "png"): "give -o OUT.png",
        ("x**2", "--wrt", "x", "--name", "z=x + 1", *out): "does not occur",
    }
    for args, message in cases.items():
        result = run("derive", *args)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert "symdl derive: error: " in result.stderr and message in result.stderr, args
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.py", "empty.py", "net.py"]


@needs_script
def test_pdf_without_latex_engine_exits_2_and_keeps_the_old_file(tmp_path):
    out = tmp_path / "neuron.pdf"
    out.write_bytes(b"old")
    no_tex = {"PATH": str(tmp_path / "empty-bin"), "HOME": str(tmp_path)}
    result = run("derive", "sigma(w*x)", "--wrt", "w", "-o", str(out), env=no_tex)
    assert result.returncode == 2, result.stderr
    assert "no LaTeX engine found" in result.stderr and "texlive-latex-base" in result.stderr
    assert out.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["neuron.pdf"]  # no temporary file left


@needs_script
def test_failing_latex_engine_exits_1_and_writes_nothing(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "pdflatex"  # writes half a PDF and an error log, then fails
    fake.write_text(
        "#!/bin/sh\nprintf '%%PDF-1.5 half' > doc.pdf\n"
        "printf '! Undefined control sequence.\\nl.7 \\\\oops\\n' > doc.log\nexit 1\n"
    )
    fake.chmod(0o755)
    out = tmp_path / "out" / "neuron.pdf"
    result = run("derive", "sigma(w*x)", "--wrt", "w", "-o", str(out), env={"PATH": str(bin_dir)})
    assert result.returncode == 1, result.stdout + result.stderr
    assert "pdflatex failed" in result.stderr and "Undefined control sequence" in result.stderr
    assert not out.exists() and not any((tmp_path / "out").glob("*"))


def test_derive_files_in_process(tmp_path, capsys):
    neuron = tmp_path / "neuron.py"
    neuron.write_text(NEURON)
    assert main(["derive", str(neuron)]) == 0
    tex = capsys.readouterr().out
    assert r"z &= b + w x \\" in tex and r"\frac{\partial L}{\partial b}" in tex
    assert main(["derive", str(neuron), "--wrt", "w", "--no-chain"]) == 0  # --wrt instead of wrt
    tex = capsys.readouterr().out
    assert r"\frac{\partial L}{\partial w} &= \bar{z} x" in tex
    assert r"\frac{\partial L}{\partial b}" not in tex
    assert main(["derive", str(neuron), "--wrt", "q"]) == 2
    assert "--wrt q: not a variable of" in capsys.readouterr().err
    derived = tmp_path / "derived.py"
    derived.write_text(NEURON + "derivation = sd.derive(loss, w)\n")
    assert main(["derive", str(derived), "--format", "md"]) == 0
    md = capsys.readouterr().out
    assert r"\frac{\partial L}{\partial w}" in md and r"\frac{\partial L}{\partial b}" not in md
    no_wrt = tmp_path / "no_wrt.py"
    no_wrt.write_text("import sympy\nx = sympy.Symbol('x')\nexpr = x**3\n")
    assert main(["derive", str(no_wrt)]) == 2
    assert "defines expr but not wrt" in capsys.readouterr().err
    assert main(["derive", str(no_wrt), "--wrt", "x"]) == 0
    assert r"\frac{\partial L}{\partial x} &= 3 x^{2}" in capsys.readouterr().out
    wrong = tmp_path / "wrong.py"
    wrong.write_text("model = 3\n")
    assert main(["derive", str(wrong)]) == 2
    assert "model is a int, not an sd.nn.Sequential" in capsys.readouterr().err


NET = """
import symdl as sd
from symdl import nn

model = nn.Sequential(nn.Dense(16, "relu"), nn.Dense({outputs}), loss="{loss}", input_shape={inputs})
"""


def test_train_a_model_file_on_the_digits(tmp_path):
    (tmp_path / "net.py").write_text(NET.format(outputs=10, loss="cross_entropy", inputs=64))
    result = run("train", "net.py", "--data", "digits", "--epochs", "10", "-o", "run", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "test accuracy" in result.stdout and "dense_1" in result.stdout
    accuracy = float(result.stdout.split("test accuracy ")[1].split("%")[0])
    assert accuracy > 85  # ten epochs of Adam on the digits
    params = np.load(tmp_path / "run" / "params.npz")
    assert params["dense_1.W"].shape == (16, 64) and params["dense_2.b"].shape == (10,)
    for png in ("history.png", "grad_norms.png"):
        assert (tmp_path / "run" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_train_on_the_files_own_data_and_bad_input(tmp_path):
    net = NET.format(outputs=1, loss="mse", inputs=2)
    data = "\nimport numpy as np\nX = np.random.default_rng(0).normal(size=(200, 2))\n"
    (tmp_path / "reg.py").write_text(net + data + "y = X[:, 0] - 2 * X[:, 1]\n")
    result = run("train", "reg.py", "--epochs", "30", "--lr", "0.01", "-o", "run", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert float(result.stdout.split("test loss ")[1].split(",")[0].split()[0]) < 0.1

    (tmp_path / "nodata.py").write_text(net)
    result = run("train", "nodata.py", "-o", "run2", cwd=tmp_path)
    assert result.returncode == 2 and "sets no X and y" in result.stderr
    (tmp_path / "nomodel.py").write_text("x = 1\n")
    result = run("train", "nomodel.py", "--data", "moons", cwd=tmp_path)
    assert result.returncode == 2 and "sets no model" in result.stderr
    assert not (tmp_path / "run2").exists()


def test_train_stops_when_the_loss_diverges(tmp_path):
    net = NET.format(outputs=1, loss="mse", inputs=2)
    data = "\nimport numpy as np\nX = 100 * np.random.default_rng(0).normal(size=(64, 2))\n"
    (tmp_path / "big.py").write_text(net + data + "y = X[:, 0] ** 2\n")
    result = run(
        "train", "big.py", "--optimizer", "sgd", "--lr", "10", "--epochs", "5", cwd=tmp_path
    )
    assert result.returncode == 1, result.stdout + result.stderr
    # stopped by a non-finite loss or by a loss past the divergence factor, whichever first
    assert "at epoch" in result.stdout and "step" in result.stdout
    assert "loss is inf" in result.stdout or "times its first" in result.stdout
    last_good = np.load(tmp_path / "symdl-train" / "last_good_params.npz")
    assert all(np.all(np.isfinite(last_good[name])) for name in last_good.files)
