"""The main job runs, says what it does, and writes what it says it writes."""

from __future__ import annotations

import subprocess
import sys

import matplotlib.image

from symdl.cli.demo import run


def test_demo_derives_verifies_checks_trains_and_writes(tmp_path, capsys):
    written = run(tmp_path / "out", epochs=2, progress=False)
    out = capsys.readouterr().out
    assert r"bar_Z^{(1)} = bar_A^{(1)} ∘ (Z^{(1)} > 0)" in out  # δ¹ = W²ᵀδ² ∘ ReLU'(Z¹)
    assert "bar_W^{(1)} = bar_Z^{(1)}*X.T" in out
    assert "->  correct" in out and "->  WRONG" in out  # one claim verified, one caught
    assert "max relative error" in out and "test accuracy" in out
    assert sorted(p.name for p in written) == [
        "derivation.md",
        "derivation.png",
        "derivation.tex",
        "loss_curve.png",
    ]
    for path in written:
        assert str(path.resolve()) in out
        assert path.stat().st_size > 0
    tex = (tmp_path / "out" / "derivation.tex").read_text()
    assert r"\begin{document}" in tex and r"\end{document}" in tex
    assert r"\frac{\partial L}{\partial W^{(1)}}" in tex
    assert not list((tmp_path / "out").glob(".*tmp*"))

    curve = matplotlib.image.imread(tmp_path / "out" / "loss_curve.png")
    assert curve.shape[:2] == (400, 1000)  # a 10 x 4 inch figure at 100 dpi
    assert curve[..., :3].std() > 0.05  # not blank
    equations = matplotlib.image.imread(tmp_path / "out" / "derivation.png")
    assert equations.shape[0] > 3 * equations.shape[1]  # 17 rows of equations, one above another
    assert equations[..., :3].std() > 0.05


def test_python_dash_m_symdl_demo(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "symdl", "demo", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "Wrote" in result.stdout
    for name in ["derivation.md", "derivation.tex", "derivation.png", "loss_curve.png"]:
        assert (tmp_path / name).exists()
