"""A corpus of matrix-calculus cases (Matrix Cookbook §2 and machine-learning objectives), each
derived in matrix form at symbolic sizes and compiled; the compiled gradient is compared with
central finite differences of the compiled value at random small sizes."""

from __future__ import annotations

import numpy as np
import pytest
import sympy
from sympy import (
    Determinant,
    HadamardProduct,
    KroneckerProduct,
    MatrixExpr,
    MatrixSymbol,
    OneMatrix,
    Trace,
    log,
    sqrt,
)

import symdl as sd

n, m, N, h = sympy.symbols("n m N h", integer=True, positive=True)
A, B, C, D, X, Y = (MatrixSymbol(s, n, n) for s in "ABCDXY")
a, b, c, d, x, y, mu = (MatrixSymbol(s, n, 1) for s in ("a", "b", "c", "d", "x", "y", "mu"))
S = MatrixSymbol("S", n, n)  # symmetric positive definite where it appears
M = MatrixSymbol("M", n, n)  # positive definite too (a metric)
lam = sympy.Symbol("lambda", positive=True)
one_n, one_N = OneMatrix(n, 1), OneMatrix(N, 1)

# data in columns: n features, N examples
Xd, Yd = MatrixSymbol("X_d", n, N), MatrixSymbol("Y_d", m, N)
w, t = MatrixSymbol("w", n, 1), MatrixSymbol("t", N, 1)
W, V = MatrixSymbol("W", m, n), MatrixSymbol("V", m, n)
W1, W2, W3 = MatrixSymbol("W_1", h, n), MatrixSymbol("W_2", h, h), MatrixSymbol("W_3", m, h)
b1 = MatrixSymbol("b_1", h, 1)
U, Vr = MatrixSymbol("U", n, m), MatrixSymbol("V_r", N, m)
Q, K, Vv = MatrixSymbol("Q", m, N), MatrixSymbol("K", m, N), MatrixSymbol("V_v", n, N)
Cout = MatrixSymbol("C_o", n, N)
Z = MatrixSymbol("Z", n, N)
Ww, Uw = MatrixSymbol("W_h", n, n), MatrixSymbol("U_x", n, m)
x1, x2, x3 = (MatrixSymbol(f"x_{i}", m, 1) for i in (1, 2, 3))
h0 = MatrixSymbol("h_0", n, 1)
P = MatrixSymbol("P", n, m)
Bk = MatrixSymbol("B_k", m, m)
v = MatrixSymbol("v", n, 1)
p = sympy.Symbol("p")


def tanh(E):
    return sd.elementwise(sympy.tanh, E)


def sq(E):
    return HadamardProduct(E, E)


def frob2(E):
    return Trace(E.T * E)


def mean_columns(E, rows):
    return OneMatrix(rows, rows) * E / rows


def _softplus(E):
    return sd.elementwise(lambda u: log(1 + sympy.exp(u)), E)


def _layer_norm(E):
    centred = E - mean_columns(E, n)
    variance = OneMatrix(1, n) * sq(centred) / n
    scale = OneMatrix(n, 1) * sd.elementwise(
        lambda u: 1 / sqrt(u + sympy.Rational(1, 10)), variance
    )
    return HadamardProduct(centred, scale)


def _batch_norm(E):
    centred = E - E * OneMatrix(N, N) / N
    variance = sq(centred) * OneMatrix(N, 1) / N
    scale = sd.elementwise(lambda u: 1 / sqrt(u + sympy.Rational(1, 10)), variance) * OneMatrix(
        1, N
    )
    return HadamardProduct(centred, scale)


def _mlp(E):
    a1 = tanh(W1 * E + b1 * OneMatrix(1, N))
    a2 = sd.elementwise(sd.sigmoid, W2 * a1)
    return W3 * a2


def _rnn(steps):
    state = h0
    for xi in steps:
        state = tanh(Ww * state + Uw * xi)
    return state


def _attention():
    scores = sd.softmax(K.T * Q / sqrt(m))  # N x N, a column per query
    return Vv * scores


_gauss = Trace((x - mu).T * S.I * (x - mu)) / 2 + log(Determinant(S)) / 2
_gauss_N = Trace(S.I * (Xd - mu * OneMatrix(1, N)) * (Xd - mu * OneMatrix(1, N)).T) / 2 + (
    N * log(Determinant(S)) / 2
)
_logistic = (OneMatrix(1, N) * (_softplus(Xd.T * w) - HadamardProduct(t, Xd.T * w))) / N

# (id, f, wrt, positive definite matrices)
CASES = [
    # Matrix Cookbook §2.2: traces
    ("tr X", Trace(X), [X], ()),
    ("tr AX", Trace(A * X), [X], ()),
    ("tr XA", Trace(X * A), [X], ()),
    ("tr AXB", Trace(A * X * B), [X], ()),
    ("tr AXtB", Trace(A * X.T * B), [X], ()),
    ("tr XtA", Trace(X.T * A), [X], ()),
    ("tr X^2", Trace(X * X), [X], ()),
    ("tr X^2 B", Trace(X**2 * B), [X], ()),
    ("tr X^3", Trace(X**3), [X], ()),
    ("tr A X^3", Trace(A * X**3), [X], ()),
    ("tr XtBX", Trace(X.T * B * X), [X], ()),
    ("tr XBXt", Trace(X * B * X.T), [X], ()),
    ("tr AXBX", Trace(A * X * B * X), [X], ()),
    ("tr XtX", Trace(X.T * X), [X], ()),
    ("tr XtBXC", Trace(X.T * B * X * C), [X], ()),
    ("tr BXXtC", Trace(B * X * X.T * C), [X], ()),
    ("tr AXBXtC", Trace(A * X * B * X.T * C), [X], ()),
    ("(tr XtX)^2", Trace(X.T * X) ** 2, [X], ()),
    ("exp tr AX", sympy.exp(Trace(A * X) / 10), [X], ()),
    ("tr(AX) tr(BX)", Trace(A * X) * Trace(B * X), [X], ()),
    ("tr X∘X A", Trace(A * sq(X)), [X], ()),
    ("tr X∘Y A", Trace(A * HadamardProduct(X, Y)), [X, Y], ()),
    ("tr X⊗X", Trace(KroneckerProduct(X, X)), [X], ()),
    ("‖X⊗B‖²", frob2(KroneckerProduct(X, Bk)), [X, Bk], ()),
    ("tr (X⊗B)C", Trace(KroneckerProduct(Bk, X) * KroneckerProduct(Bk, A)), [X, Bk], ()),
    # §2.2 with inverses
    ("tr X^-1", Trace(S.I), [S], (S,)),
    ("tr A X^-1 B", Trace(A * S.I * B), [S], (S,)),
    ("tr X^-1 A", Trace(S.I * A), [S], (S,)),
    ("tr X^-2", Trace(S.I * S.I), [S], (S,)),
    ("tr A X^-3", Trace(A * S**-3), [S], (S,)),
    ("tr (X+A)^-1", Trace((S + M).I), [S, M], (S, M)),
    ("a X^-1 b", a.T * S.I * b, [S, a, b], (S,)),
    ("tr(XtX)^-1", Trace((P.T * P).I), [P], ()),
    # §2.1: determinants
    ("det X", Determinant(X), [X], ()),
    ("log det X", log(Determinant(S)), [S], (S,)),
    ("det AXB", Determinant(A * X * B), [X], ()),
    ("log det XtX", log(Determinant(P.T * P)), [P], ()),
    ("log det XtAX", log(Determinant(P.T * S * P)), [P, S], (S,)),
    ("det X^2", Determinant(X) ** 2, [X], ()),
    ("det X^-1", Determinant(S.I), [S], (S,)),
    # §2.4: linear and quadratic forms
    ("a X b", a.T * X * b, [X, a, b], ()),
    ("a Xt b", a.T * X.T * b, [X], ()),
    ("a X a", a.T * X * a, [X, a], ()),
    ("b XtX c", b.T * X.T * X * c, [X, b, c], ()),
    ("(Bx+b)C(Dx+d)", (B * x + b).T * C * (D * x + d), [x, B, b, C, D, d], ()),
    ("xAx", x.T * A * x, [x, A], ()),
    ("xx", x.T * x, [x], ()),
    ("‖x−a‖²", (x - a).T * (x - a), [x, a], ()),
    ("‖x‖", sqrt((x.T * x)[0, 0]), [x], ()),
    ("x(A+At)x", x.T * (A + A.T) * x, [x], ()),
    ("(xAx)^2", (x.T * A * x) * (x.T * A * x), [x], ()),
    ("exp entry", sympy.exp((x.T * A * x)[0, 0] / 10), [x, A], ()),
    ("diag v A", Trace(sympy.DiagMatrix(v) * A * X), [v, X], ()),
    ("v diagof", Trace(v.T * sympy.DiagonalOf(A * X)), [v, X], ()),
    (
        "hadamard power p",
        Trace(A.T * sympy.HadamardPower(sd.elementwise(sympy.exp, X), p)),
        [X, p],
        (),
    ),
    ("log-sum-exp entries", log(sum(sympy.exp(x[i, 0]) for i in range(3))), [x], ()),
    # machine learning objectives
    ("least squares", frob2(Xd.T * w - t) / N, [w], ()),
    ("ridge", frob2(Xd.T * w - t) / N + lam * frob2(w), [w, lam], ()),
    ("ridge matrix", frob2(W * Xd - Yd) / N + lam * frob2(W), [W], ()),
    ("logistic regression", _logistic, [w], ()),
    ("logistic + l2", _logistic + lam * (w.T * w) / 2, [w], ()),
    ("softmax regression", sd.cross_entropy(W * Xd, Yd), [W], ()),
    ("softmax regression bias", sd.cross_entropy(W * Xd + V * OneMatrix(n, N), Yd), [W, V], ()),
    ("MLP W1", frob2(_mlp(Xd) - Yd) / N, [W1], ()),
    ("MLP W2", frob2(_mlp(Xd) - Yd) / N, [W2], ()),
    ("MLP W3", frob2(_mlp(Xd) - Yd) / N, [W3], ()),
    ("MLP b1", frob2(_mlp(Xd) - Yd) / N, [b1], ()),
    ("MLP cross-entropy", sd.cross_entropy(_mlp(Xd), Yd), [W1, W2, W3, b1], ()),
    ("gaussian mu", _gauss, [mu], (S,)),
    ("gaussian Sigma", _gauss, [S], (S,)),
    ("gaussian x", _gauss, [x], (S,)),
    ("gaussian N mu", _gauss_N, [mu], (S,)),
    ("gaussian N Sigma", _gauss_N, [S], (S,)),
    ("attention Q", Trace(Cout.T * _attention()), [Q], ()),
    ("attention K", Trace(Cout.T * _attention()), [K], ()),
    ("attention V", Trace(Cout.T * _attention()), [Vv], ()),
    ("attention squared", frob2(_attention() - Cout), [Q, K, Vv], ()),
    ("layer norm", Trace(Cout.T * _layer_norm(Z)), [Z], ()),
    ("layer norm squared", frob2(_layer_norm(Z) - Cout), [Z], ()),
    ("batch norm", Trace(Cout.T * _batch_norm(Z)), [Z], ()),
    ("batch norm squared", frob2(_batch_norm(Z) - Cout), [Z], ()),
    ("low rank U", frob2(Xd - U * Vr.T), [U], ()),
    ("low rank V", frob2(Xd - U * Vr.T), [Vr], ()),
    ("low rank regularised", frob2(Xd - U * Vr.T) + lam * (frob2(U) + frob2(Vr)), [U, Vr], ()),
    ("PCA variance", Trace(P.T * S * P), [P], (S,)),
    ("PCA reconstruction", frob2(Xd - P * P.T * Xd), [P], ()),
    ("PCA Rayleigh", Trace(P.T * S * P * (P.T * P).I), [P], (S,)),
    ("tied autoencoder", frob2(Xd - W.T * tanh(W * Xd)), [W], ()),
    ("RNN 2 steps W", frob2(_rnn([x1, x2]) - y), [Ww], ()),
    ("RNN 2 steps U", frob2(_rnn([x1, x2]) - y), [Uw], ()),
    ("RNN 3 steps", frob2(_rnn([x1, x2, x3]) - y), [Ww, Uw, h0], ()),
    ("Mahalanobis x", (x - y).T * M * (x - y), [x, y], (M,)),
    ("Mahalanobis M", (x - y).T * M * (x - y), [M], (M,)),
    ("Mahalanobis distance", sqrt(((x - y).T * M * (x - y))[0, 0]), [x, M], (M,)),
    ("Mahalanobis inverse", (x - mu).T * S.I * (x - mu), [x, mu, S], (S,)),
    ("covariance trace", Trace(Xd * Xd.T * A) / N, [Xd], ()),
    ("Frobenius as trace", Trace((A * X - B).T * (A * X - B)), [X], ()),
    ("Frobenius of tanh", frob2(tanh(X.T * A)), [X], ()),
    ("mean of entries", OneMatrix(1, n) * Z * one_N / (n * N), [Z], ()),
    ("mean squared", (OneMatrix(1, n) * sq(Z) * one_N) / N, [Z], ()),
    ("softmax column", Trace(Cout.T * sd.softmax(Z)), [Z], ()),
    (
        "huber elementwise",
        OneMatrix(1, n)
        * sd.elementwise(
            lambda u: sympy.Piecewise(
                (u**2 / 2, sympy.Abs(u) < 1), (sympy.Abs(u) - sympy.Rational(1, 2), True)
            ),
            Z - Cout,
        )
        * one_N
        / N,
        [Z],
        (),
    ),
    # sums of functions of entries, as SymPy writes the entry of a 1x1 product (an index Sum)
    ("sum of entries 1ᵀ X 1", (OneMatrix(1, n) * X * one_n)[0, 0], [X], ()),
    ("Σ exp(W x)", (OneMatrix(1, m) * sd.elementwise(sympy.exp, W * x))[0, 0], [W], ()),
    (
        "log Σ exp(W x)",
        log((OneMatrix(1, m) * sd.elementwise(sympy.exp, W * x))[0, 0]),
        [W, x],
        (),
    ),
    ("Σ softplus(A x)", (OneMatrix(1, n) * _softplus(A * x))[0, 0], [A], ()),
    ("xᵀ diag(a) x", (x.T * sympy.DiagMatrix(a) * x)[0, 0], [x, a], ()),
    ("‖diag(X)‖²", (sympy.DiagonalOf(X).T * sympy.DiagonalOf(X))[0, 0], [X], ()),
    (
        "mean relu(Z)",
        (OneMatrix(1, n) * sd.elementwise(sd.relu, Z) * one_N)[0, 0] / N,
        [Z],
        (),
    ),
    ("xᵀ (A + Aᵀ)² x", (x.T * (A + A.T) ** 2 * x)[0, 0], [A], ()),
    (
        "logistic loss Σ log(1 + exp(-wᵀx))",
        (OneMatrix(1, N) * sd.elementwise(lambda u: log(1 + sympy.exp(-u)), Xd.T * w))[0, 0] / N,
        [w],
        (),
    ),
    ("aᵀ (X ∘ A) b", (a.T * HadamardProduct(X, A) * b)[0, 0], [X], ()),
]


def _sizes(seed: int) -> dict:
    """Random small sizes, m <= n (so that P^T P, of size m, is invertible)."""
    rng = np.random.default_rng(seed)
    return {
        n: int(rng.integers(3, 5)),
        m: int(rng.integers(2, 4)),
        N: int(rng.integers(2, 5)),
        h: int(rng.integers(2, 4)),
    }


def _size(dim, sizes) -> int:
    return int(sympy.sympify(dim).xreplace(sizes))


def finite_difference_error(compiled, wrt, sizes, spd, seed) -> float:
    rng = np.random.default_rng(seed)
    values = {}
    for arg in compiled.args:
        if isinstance(arg, MatrixSymbol):
            shape = tuple(_size(s, sizes) for s in arg.shape)
            value = rng.normal(size=shape)
            if arg in spd:
                value = value @ value.T + shape[0] * np.eye(shape[0])
            values[arg.name] = value
        else:
            values[arg.name] = rng.uniform(0.5, 1.5)
    _, grads = compiled(values)
    worst = 0.0
    for w, g in zip(wrt, grads, strict=True):
        point = np.asarray(values[w.name], dtype=float)
        fd = np.zeros(point.shape)
        step = 1e-6
        for i in np.ndindex(point.shape):
            moved = []
            for sign in (1, -1):
                shifted = point.copy()
                shifted[i] += sign * step
                if w in spd:  # keep a positive definite matrix symmetric: move both entries
                    shifted[i[::-1]] = shifted[i]
                moved.append(compiled({**values, w.name: shifted})[0])
            fd[i] = (moved[0] - moved[1]) / (2 * step)
        g = np.asarray(g, dtype=float).reshape(point.shape)
        if w in spd:  # only the symmetric part of the gradient is seen by symmetric moves
            g = g + g.T - np.diag(np.diag(g))
        worst = max(worst, float(np.max(np.abs(fd - g)) / (1 + np.max(np.abs(fd)))))
    return worst


def test_the_corpus_is_large():
    assert len(CASES) >= 80


@pytest.mark.parametrize(("case", "f", "wrt", "spd"), CASES, ids=[c[0] for c in CASES])
def test_derives_in_matrix_form_and_compiles_right(case, f, wrt, spd):
    derivation = sd.derive(f, wrt)
    for W_, G in zip(wrt, derivation.closed_form(), strict=True):
        if isinstance(W_, MatrixSymbol):  # matrix form, at symbolic sizes
            assert isinstance(G, MatrixExpr) and G.shape == W_.shape, (W_, G)
    compiled = derivation.compile()
    seed = sum(map(ord, case))
    for k in range(2):  # two random sets of sizes
        sizes = _sizes(seed + k)
        assert finite_difference_error(compiled, wrt, sizes, spd, seed + k) < 1e-5, sizes
