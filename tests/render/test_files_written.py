"""Files symdl writes: atomic, with the permissions the umask gives, and never into a folder
that does not exist unless the caller asked for it to be created."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest
import sympy

import symdl as sd
from symdl.cli.main import main
from symdl.render.export import export
from symdl.render.files import MissingFolder, write_atomic
from symdl.training.checkpoint import save_arrays, save_checkpoint

x = sympy.Symbol("x", real=True)


@pytest.fixture(params=[0o022, 0o077, 0o002])
def umask(request):
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_every_writer_honours_the_umask(tmp_path, umask):
    expected = 0o666 & ~umask
    derivation = sd.derive(x**2, x)
    written = [
        write_atomic(tmp_path / "a.txt", "text"),
        export(derivation, tmp_path / "d.tex"),
        export(derivation, tmp_path / "d.md"),
        save_arrays(tmp_path / "p.npz", {"w": np.ones(2)}),
        save_checkpoint(tmp_path / "c.npz", {"param": {"w": np.ones(2)}}, {}),
        save_checkpoint(tmp_path / "c.npz", {"param": {"w": np.ones(2)}}, {}),  # rotates
        tmp_path / "c.prev.npz",
    ]
    for path in written:
        assert _mode(path) == expected, (path.name, oct(_mode(path)))
    assert os.umask(umask) == umask  # reading the umask left it as it was


def test_a_missing_folder_is_an_error_unless_asked_for(tmp_path):
    target = tmp_path / "no" / "such" / "x.tex"
    with pytest.raises(MissingFolder, match=r"folder .*no/such' does not exist; create it"):
        export(sd.derive(x**2, x), target)
    with pytest.raises(MissingFolder):
        save_arrays(target.with_suffix(".npz"), {"w": np.ones(1)})
    assert not (tmp_path / "no").exists()
    save_arrays(target.with_suffix(".npz"), {"w": np.ones(1)}, parents=True)
    assert target.with_suffix(".npz").is_file()


def test_the_command_line_refuses_a_missing_output_folder(tmp_path, capsys):
    target = tmp_path / "nonexistent" / "dir" / "x.tex"
    code = main(["derive", "x**2", "--wrt", "x", "-o", str(target)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "does not exist" in err, err
    assert not (tmp_path / "nonexistent").exists()


@pytest.mark.parametrize(
    "rows, message",
    [
        (["a &= " + r"\frac{1}{" * 55 + "x" + "}" * 55], "55 nested braces"),
        (["a &= " + r"\sqrt{" * 31 + "x" + "}" * 31], "31 nested braces"),
        (["a &= " + "x + " * 1_000], "4005 characters"),
        (["a &= x"] * 20_000, "characters of LaTeX"),
        ("x" * 1_000_000, "characters"),
    ],
)
def test_png_export_refuses_what_mathtext_cannot_draw(tmp_path, rows, message):
    from symdl.render.export import ExportError, render_png

    with pytest.raises(ExportError, match=message) as caught:
        render_png(rows, tmp_path / "big.png")
    assert "export to .pdf or .tex" in str(caught.value)
    assert not list(tmp_path.iterdir())
