"""The main job runs and writes what it says it writes."""

from __future__ import annotations

import subprocess
import sys

from symdl.demo import run


def test_demo_writes_tex_and_markdown(tmp_path, capsys):
    written = run(tmp_path / "out")
    out = capsys.readouterr().out
    assert "max relative error" in out
    names = sorted(p.name for p in written)
    assert names == ["derivation.md", "derivation.tex"]
    tex = (tmp_path / "out" / "derivation.tex").read_text()
    assert r"\begin{document}" in tex and r"\begin{align*}" in tex and r"\end{document}" in tex
    for path in written:
        assert str(path.resolve()) in out
    assert not list((tmp_path / "out").glob(".*tmp"))


def test_python_dash_m_symdl_demo(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "symdl", "demo", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "derivation.md").exists()
