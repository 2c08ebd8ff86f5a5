"""softmax, log_softmax and logsumexp along an axis (columns by default, rows by axis=1), the
signature `softmax(z, k)` the docs give, and cross-entropy as one loss (PyTorch's) in every form:
against SciPy and finite differences of the compiled code (issue 11)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.special as ss
import sympy
from sympy import Matrix, MatrixSymbol

import symdl as sd
from symdl.parsing import ParseError, parse
from symdl.parsing.namespace import namespace_of

Z = MatrixSymbol("Z", 3, 2)
FUNCTIONS = {
    "softmax": (sd.softmax, lambda z, axis: ss.softmax(z, axis=axis)),
    "log_softmax": (sd.log_softmax, lambda z, axis: ss.log_softmax(z, axis=axis)),
    "logsumexp": (sd.logsumexp, lambda z, axis: ss.logsumexp(z, axis=axis, keepdims=True)),
}


def _fd(f, z, h=1e-6):
    g = np.zeros_like(z)
    for index in np.ndindex(z.shape):
        e = np.zeros_like(z)
        e[index] = h
        g[index] = (f(z + e) - f(z - e)) / (2 * h)
    return g


@pytest.mark.parametrize("name", FUNCTIONS)
@pytest.mark.parametrize("axis", [0, 1])
def test_matrix_forms_along_each_axis_compile_to_scipys_values_and_gradients(name, axis):
    op, reference = FUNCTIONS[name]
    rng = np.random.default_rng(axis)
    f = op(Z, axis=axis)
    assert f.shape == reference(np.zeros((3, 2)), axis).shape
    C = MatrixSymbol("C", *f.shape)
    z, c = rng.normal(size=(3, 2)), rng.normal(size=f.shape)
    value, (gradient,) = sd.derive(sympy.Trace(C.T * f), [Z]).compile()(Z=z, C=c)

    def loss(zz):
        return float((c * reference(zz, axis)).sum())

    assert value == pytest.approx(loss(z), rel=1e-12)
    np.testing.assert_allclose(gradient, _fd(loss, z), atol=1e-8)


@pytest.mark.parametrize("name", FUNCTIONS)
@pytest.mark.parametrize("axis", [None, 0, 1])
def test_explicit_matrices_along_each_axis(name, axis):
    op, reference = FUNCTIONS[name]
    m = np.array([[0.5, -1.0], [2.0, 0.25], [-0.75, 1.5]])
    got = op(Matrix(m)) if axis is None else op(Matrix(m), axis=axis)
    np.testing.assert_allclose(np.array(got.evalf(), dtype=float), reference(m, axis or 0))


def test_the_docs_signature_softmax_z_k_is_entry_k():
    a, b, c = sympy.symbols("a b c", real=True)
    assert sd.softmax([a, b, c], 1) == sd.softmax(1, a, b, c) == sd.softmax([a, b, c])[1]
    assert sd.log_softmax(Matrix([a, b]), 0) == sd.log_softmax(0, a, b)
    with pytest.raises(ValueError, match="entry 3 of a vector of 3"):
        sd.softmax([a, b, c], 3)
    with pytest.raises(ValueError, match="axis is 0"):
        sd.softmax(Z, axis=2)


def test_formulas_may_give_axis_and_normalized_and_nothing_else():
    Y = MatrixSymbol("Y", 3, 2)
    ns = namespace_of(Z, Y, new_symbols=True)
    assert parse("softmax(Z, axis=1)", ns) == sd.softmax(Z, axis=1)
    assert parse("cross_entropy(Z, Y, normalized=True)", ns) == sd.cross_entropy(
        Z, Y, normalized=True
    )
    for text in ('softmax(Z, axis="1")', "softmax(Z, key=1)", "softmax(Z, axis=f(1))"):
        with pytest.raises(ParseError, match="keyword"):
            parse(text, namespace_of(Z, Y, new_symbols=True))


def test_cross_entropy_is_pytorchs_for_soft_targets_in_every_form():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    z, y = rng.normal(size=(3, 2)), rng.uniform(0.1, 1.0, size=(3, 2))  # columns sum != 1
    Y = MatrixSymbol("Y", 3, 2)
    expected = float(
        torch.nn.functional.cross_entropy(torch.tensor(z.T), torch.tensor(y.T), reduction="mean")
    )
    value, (gradient,) = sd.derive(sd.cross_entropy(Z, Y), [Z]).compile()(Z=z, Y=y)
    assert value == pytest.approx(expected, rel=1e-12)
    one_column = sd.cross_entropy(list(z[:, 0]), list(y[:, 0]))
    other = sd.cross_entropy(list(z[:, 1]), list(y[:, 1]))
    assert float((one_column + other) / 2) == pytest.approx(expected, rel=1e-12)
    tz = torch.tensor(z.T, requires_grad=True)
    torch.nn.functional.cross_entropy(tz, torch.tensor(y.T)).backward()
    np.testing.assert_allclose(gradient, tz.grad.numpy().T, rtol=1e-10)


def test_normalized_cross_entropy_has_the_textbook_gradient_and_a_model_checks_its_targets():
    Y = MatrixSymbol("Y", 3, 2)
    N = sympy.Symbol("N", integer=True, positive=True)
    Zn, Yn = MatrixSymbol("Z", 3, N), MatrixSymbol("Y", 3, N)
    assert str(sd.grad(sd.cross_entropy(Zn, Yn, normalized=True), Zn)) == "1/N*(softmax(Z) - Y)"
    rng = np.random.default_rng(4)
    z = rng.normal(size=(3, 2))
    y = ss.softmax(rng.normal(size=(3, 2)), axis=0)  # distributions: the two forms agree
    general = sd.derive(sd.cross_entropy(Z, Y), [Z]).compile()(Z=z, Y=y)
    textbook = sd.derive(sd.cross_entropy(Z, Y, normalized=True), [Z]).compile()(Z=z, Y=y)
    assert general[0] == pytest.approx(textbook[0], rel=1e-12)
    np.testing.assert_allclose(general[1][0], textbook[1][0], atol=1e-14)
    loss = sd.nn.CrossEntropy()
    assert loss.targets(np.array([[0.2, 0.8, 0.0], [1.0, 0.0, 0.0]]), 3).shape == (3, 2)
    with pytest.raises(sd.nn.losses.TargetError, match="row 1 is not a distribution"):
        loss.targets(np.array([[0.2, 0.8, 0.0], [0.5, 0.9, 0.0]]), 3)
