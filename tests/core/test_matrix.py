"""Matrix calculus: results in matrix notation, checked entry by entry against sympy.diff of
the explicit scalar function at small sizes (ops expanded to their elementary definitions)."""

from __future__ import annotations

import numpy as np
import pytest
import sympy
from sympy import Determinant, Identity, Inverse, MatrixSymbol, OneMatrix, Trace, log
from sympy.matrices.expressions import MatrixExpr
from sympy.matrices.expressions.matexpr import MatrixElement

import symdl as sd
from symdl.core.explicit import entries, evaluate, expand
from symdl.core.rules import RULES
from symdl.ops.base import MatrixLoss, MatrixOp, elementary

from ..conftest import expand_ops

n, N = sympy.symbols("n N", integer=True, positive=True)
SIZES = {n: 2, N: 2}
ARRAY_FORMS = ("ArrayTensorProduct", "PermuteDims", "ArrayDiagonal", "ArrayContraction")


def sample(M: MatrixSymbol, rng, low=-1.0, high=1.0) -> np.ndarray:
    rows, cols = (int(d) for d in M.shape)
    value = rng.uniform(low, high, size=(rows, cols))
    return value + 3 * np.eye(rows) if rows == cols else value  # square: well conditioned


def assert_matches_scalar_path(f, wrt, sizes, rng, ranges=None, points=2):
    """sd.grad(f, W) is a matrix expression of W's shape whose entries, at explicit sizes,
    equal sympy.diff of the explicit scalar f at random points."""
    gradients = sd.grad(f, list(wrt))
    for W, G in zip(wrt, gradients, strict=True):
        assert isinstance(G, MatrixExpr), (W, G)
        assert G.shape == W.shape
        assert not any(form in sympy.srepr(G) for form in ARRAY_FORMS), G
    f_sized = f.xreplace(sizes)
    matrices = sorted(_matrix_symbols(f_sized), key=str)
    explicit_f = expand_ops(_scalar(expand(f_sized, {M: entries(M) for M in matrices})))
    inputs = [s for M in matrices for s in entries(M)]
    references = {
        W: sympy.lambdify(  # plain Python floats: NumPy's printer simplifies every condition
            inputs,
            [sympy.diff(explicit_f, e) for e in entries(W.xreplace(sizes))],
            modules=["math", "mpmath", "sympy"],
            cse=True,
        )
        for W in wrt
    }
    for _ in range(points):
        values = {M: sample(M, rng, *(ranges or {}).get(M.name, (-1.0, 1.0))) for M in matrices}
        numbers = [float(v) for M in matrices for v in values[M].ravel()]
        for W, G in zip(wrt, gradients, strict=True):
            ours = evaluate(G.xreplace(sizes), values)
            reference = np.array(references[W](*numbers), dtype=float).reshape(ours.shape)
            np.testing.assert_allclose(ours, reference, rtol=1e-9, atol=1e-11, err_msg=str(W))


def _matrix_symbols(expr):
    return {a for a in sympy.preorder_traversal(expr) if isinstance(a, MatrixSymbol)}


def _scalar(value):
    return value[0, 0] if isinstance(value, sympy.MatrixBase) else value


@pytest.mark.parametrize("cls", list(RULES), ids=lambda c: c.__name__)
def test_every_rule_in_the_table_matches_the_scalar_path(cls, rng):
    f, wrt, sizes = RULES[cls].example()
    assert f.has(cls) or any(isinstance(a, cls) for a in sympy.preorder_traversal(f))
    assert_matches_scalar_path(f, wrt, sizes, rng)


def _matrix_ops():
    found, stack = [], [MatrixOp, MatrixLoss]
    while stack:
        for sub in stack.pop().__subclasses__():
            stack.append(sub)
            if "vjp" in vars(sub) and sub.has_entrywise_form:
                found.append(sub)
    return found


@pytest.mark.parametrize("cls", _matrix_ops(), ids=lambda c: c.__name__)
def test_every_matrix_op_matches_the_scalar_path(cls, rng):
    f, wrt, ranges = cls.example()
    assert_matches_scalar_path(f, wrt, {}, rng, ranges={M.name: r for M, r in ranges.items()})


# The Matrix Cookbook (Petersen & Pedersen, 2012 edition), by equation number.
X, Y_ = MatrixSymbol("X", n, n), MatrixSymbol("Y", n, n)
A, B, D = MatrixSymbol("A", n, n), MatrixSymbol("B", n, n), MatrixSymbol("D", n, n)
a, b, c, x = (MatrixSymbol(name, n, 1) for name in "abcx")

COOKBOOK = {
    "49: d det(X) = det(X) X^-T": (Determinant(X), X, Determinant(X) * Inverse(X).T),
    "51: d det(AXB) = det(AXB) X^-T": (
        Determinant(A * X * B),
        X,
        Determinant(A * X * B) * Inverse(X).T,
    ),
    "57: d log det(X) = X^-T": (log(Determinant(X)), X, Inverse(X).T),
    "63: d tr(A X^-1 B) = -(X^-1 B A X^-1)^T": (
        Trace(A * Inverse(X) * B),
        X,
        -(Inverse(X) * B * A * Inverse(X)).T,
    ),
    "69: d x^T a / dx = a": (x.T * a, x, a),
    "70: d a^T X b = a b^T": (a.T * X * b, X, a * b.T),
    "81: d x^T B x = (B + B^T) x": (x.T * B * x, x, (B + B.T) * x),
    "84: d (Xb+c)^T D (Xb+c) = (D + D^T)(Xb + c) b^T": (
        (X * b + c).T * D * (X * b + c),
        X,
        (D + D.T) * (X * b + c) * b.T,
    ),
    "100: d tr(XA) = A^T": (Trace(X * A), X, A.T),
    "101: d tr(AXB) = A^T B^T": (Trace(A * X * B), X, A.T * B.T),
    "103: d tr(X^T A) = A": (Trace(X.T * A), X, A),
    "108: d tr(X^T B X) = B X + B^T X": (Trace(X.T * B * X), X, B * X + B.T * X),
}


@pytest.mark.parametrize("name", list(COOKBOOK))
def test_matrix_cookbook(name, rng):
    f, W, published = COOKBOOK[name]
    ours = sd.grad(f, W)
    matrices = sorted(_matrix_symbols(f.xreplace(SIZES)), key=str)
    values = {M: sample(M, rng) for M in matrices}
    np.testing.assert_allclose(
        evaluate(ours.xreplace(SIZES), values),
        evaluate(published.xreplace(SIZES), values),
        rtol=1e-10,
    )
    assert_matches_scalar_path(f, [W], SIZES, rng, points=1)


def test_softmax_cross_entropy_gradient_is_softmax_minus_targets_over_n(rng):
    Z, Y = MatrixSymbol("Z", n, N), MatrixSymbol("Y", n, N)
    g = sd.grad(sd.cross_entropy(Z, Y, normalized=True), Z)
    assert str(g) == "1/N*(softmax(Z) - Y)"
    # the general loss, for targets that need not sum to 1: softmax(Z) diag(1ᵀY) - Y
    g = sd.grad(sd.cross_entropy(Z, Y), Z)
    assert str(g) == "1/N*(HadamardProduct(1*Y, softmax(Z)) - Y)"  # 1 is the k x k ones
    assert_matches_scalar_path(sd.cross_entropy(Z, Y), [Z, Y], SIZES, rng)


def test_matrix_and_list_cross_entropy_are_one_loss_pytorchs(rng):
    """Soft targets that do not sum to 1: the matrix form is the list form on each column,
    -sum y log softmax(z) (issue 11 measured 0.693 against 1.616 before)."""
    Z, Y = MatrixSymbol("Z", 3, 2), MatrixSymbol("Y", 3, 2)
    z, y = rng.normal(size=(3, 2)), rng.uniform(0.2, 1.0, size=(3, 2))
    matrix_value = sd.derive(sd.cross_entropy(Z, Y), [Z]).compile()(Z=z, Y=y)[0]
    columns = [sd.cross_entropy(list(z[:, j]), list(y[:, j])) for j in range(2)]
    list_value = float(sum(elementary(c) for c in columns) / 2)
    reference = -(y * (z - np.log(np.exp(z).sum(axis=0)))).sum(axis=0).mean()
    assert matrix_value == pytest.approx(reference, rel=1e-12)
    assert list_value == pytest.approx(reference, rel=1e-12)
    exact = sd.cross_entropy(sympy.Matrix(z), sympy.Matrix(y)).doit()
    assert float(elementary(exact)) == pytest.approx(reference, rel=1e-12)


def _network(hidden=1, activation=sd.sigmoid):
    d, h, k = 2, 3, 2
    X = MatrixSymbol("X", d, N)
    Y = MatrixSymbol("Y", k, N)
    params, layer, names = [], X, {}
    sizes = [h] * hidden + [k]
    for i, size in enumerate(sizes, start=1):
        W = MatrixSymbol(f"W^{{({i})}}", size, layer.shape[0])
        bias = MatrixSymbol(f"b^{{({i})}}", size, 1)
        params += [W, bias]
        Z = W * layer + bias * OneMatrix(1, N)
        names[Z] = f"Z^{{({i})}}"
        layer = Z if i == len(sizes) else activation(Z)
        if i < len(sizes):
            names[layer] = f"A^{{({i})}}"
    return sd.cross_entropy(layer, Y, normalized=True), params, names


@pytest.mark.parametrize("hidden, activation", [(1, sd.sigmoid), (2, sd.relu), (2, sd.gelu)])
def test_networks_match_the_scalar_path(hidden, activation, rng):
    loss, params, _ = _network(hidden, activation)
    assert_matches_scalar_path(loss, params, {N: 2}, rng, ranges={"Y": (0.0, 1.0)}, points=1)


def test_network_derivation_reads_as_textbook_backprop():
    loss, params, names = _network(1, sd.sigmoid)
    derivation = sd.derive(loss, params, names=names)
    lines = {str(step.name): str(step.rhs) for step in derivation.steps}
    assert lines["bar_Z^{(2)}"] == "1/N*(softmax(Z^{(2)}) - Y)"
    assert lines["bar_W^{(2)}"] == "bar_Z^{(2)}*A^{(1)}.T"
    assert lines["bar_A^{(1)}"] == "W^{(2)}.T*bar_Z^{(2)}"
    assert lines["bar_W^{(1)}"] == "bar_Z^{(1)}*X.T"
    assert lines["bar_Z^{(1)}"].startswith("HadamardProduct(bar_A^{(1)}, ")
    tex = derivation.to_latex()
    assert r"\bar{Z}^{(2)}" in tex and r"\circ" in tex and r"X^{T}" in tex


# SymPy 1.14's MatrixExpr.diff returns 0 for the first two of these, array forms for the
# network, and nothing readable for a^T X b in older versions: symdl's answers.
def test_regression_log_det_is_not_zero():
    assert sd.grad(log(Determinant(X)), X) == Inverse(X).T


def test_regression_log_sum_exp_is_not_zero(rng):
    z = MatrixSymbol("z", n, 1)
    ones_exp = OneMatrix(1, n) * z.applyfunc(sympy.exp)
    for f in (log(Trace(ones_exp)), log(MatrixElement(ones_exp, 0, 0))):
        g = sd.grad(f, z)
        z3 = rng.normal(size=(2, 1))
        values = {z.xreplace(SIZES): z3}
        expected = np.exp(z3) / np.exp(z3).sum()
        np.testing.assert_allclose(evaluate(g.xreplace(SIZES), values), expected, rtol=1e-12)
    assert sd.grad(sd.logsumexp(z), z) == sd.softmax(z)


def test_regression_bilinear_form_is_in_matrix_notation():
    g = sd.grad(a.T * X * b, X)
    assert g == a * b.T and "Array" not in sympy.srepr(g)


def test_regression_two_layer_network_first_weight_matrix():
    W1, W2, v = MatrixSymbol("W1", 3, n), MatrixSymbol("W2", 1, 3), MatrixSymbol("v", n, 1)
    g = sd.grad(W2 * (W1 * v).applyfunc(sympy.tanh), W1)
    assert isinstance(g, MatrixExpr) and g.shape == (3, n) and "Array" not in sympy.srepr(g)


def test_jacobian_and_hessian_of_vector_functions():
    assert sd.hessian(x.T * A * x, x) == A + A.T
    w = MatrixSymbol("w", n, 1)
    y = sympy.Symbol("y", real=True)
    logistic = sd.binary_cross_entropy_with_logits(x.T * w, y * Identity(1))
    H = sd.hessian(logistic, w)
    s = sd.sigmoid(MatrixElement(x.T * w, 0, 0))
    rng = np.random.default_rng(0)
    xv, wv = rng.normal(size=(2, 1)), rng.normal(size=(2, 1))
    values = {x.xreplace(SIZES): xv, w.xreplace(SIZES): wv, y: 1.0}
    sig = 1 / (1 + np.exp(-(xv.T @ wv)[0, 0]))
    np.testing.assert_allclose(
        evaluate(H.xreplace(SIZES), values), sig * (1 - sig) * xv @ xv.T, rtol=1e-10
    )
    assert s.has(w)
    J = sd.jacobian(A * x, x)
    assert J == A


def test_unsupported_matrix_operation_is_named():
    K = sympy.BlockMatrix([[X, Y_]])
    with pytest.raises(TypeError, match="BlockMatrix"):
        sd.grad(Trace(K * K.T), X)


def test_non_scalar_matrix_function_is_refused():
    with pytest.raises(ValueError, match="not a scalar"):
        sd.grad(A * X, X)
