"""The command line's expression mode with declared matrices (issue 10): --shapes makes
MatrixSymbols, a --wrt name EXPR does not have is bad input (exit 2, one line naming it), and a
transposed scalar name is a parse error, not a silently dropped .T."""

import pytest

from symdl.cli.main import main


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    "shapes",
    [("A=3x3", "x=3x1"), ("A=3x3,x=3x1",), ("A:n x n, x:n",), ("A=nxn", "x=n")],
)
def test_shapes_declare_matrices(capsys, shapes):
    code, out, err = run(capsys, "grad", "x.T*A*x", "--wrt", "x", "--shapes", *shapes)
    assert (code, out, err) == (0, "d/dx = (A + A.T)*x\n", "")  # the Cookbook form


def test_verify_with_shapes(capsys):
    shapes = ("--shapes", "W=3x2,x=2x1,y=3x1")
    f = "(W*x - y).T*(W*x - y)"
    assert run(capsys, "verify", f, "--wrt", "W", *shapes, "--claimed", "2*(W*x - y)*x.T")[0] == 0
    code, out, _ = run(capsys, "verify", f, "--wrt", "W", *shapes, "--claimed", "2*x*(W*x - y).T")
    assert code == 1 and "shape 2x3" in out  # a transpose too many: the shapes differ
    code, out, _ = run(
        capsys, "verify", "x^T A x", "--wrt", "x", "--shapes", "A:n x n, x:n", "--claimed", "2 A x"
    )
    assert code == 1 and "Diagnosis: a transpose" in out
    assert run(capsys, "check", f, "--wrt", "W", *shapes)[0] == 0


@pytest.mark.parametrize("command", ["grad", "verify", "check", "derive"])
def test_an_unknown_wrt_is_bad_input(capsys, command):
    claim = ("--claimed", "0") if command == "verify" else ()
    code, out, err = run(capsys, command, "mse(sigmoid(w*x+b), y)", "--wrt", "q", *claim)
    assert code == 2 and out == ""
    assert err == (
        f"symdl {command}: error: --wrt q: q does not occur in EXPR (its variables: b, w, x, y)\n"
    )


@pytest.mark.parametrize("expr", ["x.T*A*x", "x^T A x", "x' A x"])
def test_a_transposed_scalar_is_a_parse_error(capsys, expr):
    code, out, err = run(capsys, "grad", expr, "--wrt", "x")
    assert code == 2 and out == ""
    assert err.startswith("symdl grad: error: x is a scalar, so x.T (a transpose) is meaningless;")
    assert "--shapes x=3x1" in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("shapes", "message"),
    [
        (("A=3y3",), "--shapes A=3y3: expected NAME=ROWSxCOLS"),
        (("A=3x3", "A=2x2"), "A is declared twice"),
        (("A=0x3",), "a size must be at least 1"),
        (("A=3x3", "x=3x1", "B=3x3"), "--shapes B: B does not occur in EXPR"),
        (("A=3x3", "x=3x3"), "EXPR must be a scalar; it is a 3x3 matrix"),
    ],
)
def test_bad_shapes_are_named(capsys, shapes, message):
    code, out, err = run(capsys, "grad", "x.T*A*x", "--wrt", "x", "--shapes", *shapes)
    assert code == 2 and message in err and len(err.splitlines()) == 1


def test_a_transposed_scalar_in_the_claim_is_a_parse_error(capsys):
    code, out, err = run(capsys, "verify", "x**2", "--wrt", "x", "--claimed", "2*x.T")
    assert code == 2 and out == ""
    assert err.startswith("symdl verify: error: x is a scalar, so x.T (a transpose) is meaningless")
    # a claim whose matrices do not fit is still a verdict, not an input error
    shapes = ("--shapes", "W=3x2,x=2x1,y=3x1")
    code, out, _ = run(
        capsys, "verify", "(W*x - y).T*(W*x - y)", "--wrt", "W", *shapes, "--claimed", "2*x*x"
    )
    assert code == 1 and "do not fit together" in out
