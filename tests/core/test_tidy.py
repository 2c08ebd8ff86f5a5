"""Closed forms in their textbook form: numeric constants cancelled ((μ−x)/σ², not
(2μ−2x)/(2σ²)), a scale common to a matrix sum written once ((softmax(Z)−Y)/N), never more
operations than the hand-written form; each still equal to an independent derivative."""

import sympy
from sympy import MatMul, MatrixSymbol, OneMatrix, Trace

import symdl as sd
from symdl.core.tidy import textbook_form
from symdl.prob.distributions import Gaussian

mu, x, b, w = sympy.symbols("mu x b w", real=True)
sigma = sympy.Symbol("sigma", positive=True)
k, N = sympy.symbols("k N", integer=True, positive=True)
Z, Y = MatrixSymbol("Z", k, N), MatrixSymbol("Y", k, N)


def test_gaussian_nll_gradient_in_mu_has_its_twos_cancelled():
    nll = sympy.log(sigma) + (mu - x) ** 2 / (2 * sigma**2) + sympy.log(2 * sympy.pi) / 2
    for f in (nll, Gaussian(mu, sigma**2).nll(x)):
        gradient = sd.grad(f, mu)
        assert gradient == (mu - x) / sigma**2
        assert str(gradient) == "(mu - x)/sigma**2"
        assert sympy.simplify(gradient - sympy.diff(f, mu)) == 0


def test_softmax_cross_entropy_in_matrix_form_is_softmax_minus_targets_over_n():
    """(1/N) Σ_j logsumexp(Z_j) − Y_jᵀ Z_j, the cross-entropy for targets that sum to 1,
    written by hand: its gradient is (softmax(Z) − Y)/N, the 1/N once."""
    f = (Trace(sd.logsumexp(Z) * OneMatrix(N, 1)) - Trace(Y.T * Z)) / N
    gradient = sd.grad(f, Z)
    textbook = MatMul(1 / N, sd.softmax(Z) - Y)
    assert gradient == textbook
    assert sympy.count_ops(gradient) <= sympy.count_ops(textbook)
    assert sd.verify(f, Z, "(softmax(Z) - Y)/N")


def test_pytorch_cross_entropy_by_hand_writes_its_one_over_n_once():
    """−tr(Yᵀ log softmax(Z))/N: (softmax(Z) ∘ (1 1ᵀ Y) − Y)/N, the 1/N factored out of
    both terms (before: (−1/N) Y + ((1/N) 1 1ᵀ Y) ∘ softmax(Z))."""
    f = -Trace(Y.T * sd.log_softmax(Z)) / N
    gradient = sd.grad(f, Z)
    assert isinstance(gradient, MatMul) and gradient.args[0] == 1 / N
    totals = OneMatrix(k, 1) * OneMatrix(1, k) * Y
    by_hand = (sympy.HadamardProduct(sd.softmax(Z), totals) - Y) / N
    assert sympy.count_ops(gradient) <= sympy.count_ops(by_hand)
    assert sd.verify(f, Z, "(hadamard(softmax(Z), ones(k, k)*Y) - Y)/N")


def test_mse_of_a_linear_layer_keeps_its_two_thirds_out_of_each_residual():
    xs, ys = sympy.symbols("x1:4", real=True), sympy.symbols("y1:4", real=True)
    f = sd.mse([w * xi + b for xi in xs], list(ys))
    by_hand = sum(2 * xi * (w * xi + b - yi) / 3 for xi, yi in zip(xs, ys, strict=True))
    gradient = sd.grad(f, w)
    assert gradient == by_hand  # before: x1*(2*b/3 + 2*w*x1/3 - 2*y1/3) + ...
    assert sympy.count_ops(gradient) <= sympy.count_ops(by_hand)
    reference = sympy.diff(
        sum((w * xi + b - yi) ** 2 for xi, yi in zip(xs, ys, strict=True)) / 3, w
    )
    assert sympy.expand(gradient - reference) == 0


def test_mse_of_a_linear_layer_in_matrix_form_is_the_textbook_form():
    n = sympy.Symbol("n", integer=True, positive=True)
    W, X, c = MatrixSymbol("W", k, n), MatrixSymbol("X", n, N), MatrixSymbol("c", k, 1)
    residual = W * X + c * OneMatrix(1, N) - Y
    gradient = sd.grad(sd.mse(W * X + c * OneMatrix(1, N), Y), W)
    textbook = MatMul(2 / (k * N), residual, X.T)
    assert sympy.count_ops(gradient) <= sympy.count_ops(textbook)
    assert sd.verify(
        sd.mse(W * X + c * OneMatrix(1, N), Y), W, "2/(k*N)*(W*X + c*ones(1, N) - Y)*X.T"
    )


def test_textbook_form_leaves_what_has_nothing_to_cancel():
    for expr in (2 * w * x, w**2, (w + x) / 2, sympy.sin(2 * w + 2) / 2, mu - x):
        assert textbook_form(expr) == expr
    assert textbook_form((4 * w + 4) ** 2 / 8) == 2 * (w + 1) ** 2
    assert textbook_form(3 / (3 * w + 3)) == 1 / (w + 1)


def _reciprocals(expr) -> list:
    """Entrywise reciprocals 1/x of a matrix inside `expr`."""
    return [
        node
        for node in sympy.preorder_traversal(expr)
        if isinstance(node, sd.elementwise) and node.body == 1 / node.function.variables[0]
    ]


def test_the_gallery_cross_entropy_loses_the_reciprocal_of_softmax():
    """-(1/N) 1ᵀ (Y ∘ log softmax(Z)) 1, as in the gallery: log's derivative 1/P meets the
    softmax Jacobian's P, and they cancel: (1/N)((1 1ᵀ Y) ∘ softmax(Z) - Y), the hand-written
    form (before: ((-1/N)(Y ∘ P^{∘-1}) - 1 1ᵀ ((-1/N)(Y ∘ P ∘ P^{∘-1}))) ∘ P, 10 operations)."""
    loss = -(1 / N) * OneMatrix(1, k) * sd.hadamard(Y, sd.elementwise(sympy.log, sd.softmax(Z)))
    loss = loss * OneMatrix(N, 1)
    gradient = sd.grad(loss, Z)
    assert not _reciprocals(gradient), gradient
    by_hand = MatMul(1 / N, sympy.HadamardProduct(OneMatrix(k, k) * Y, sd.softmax(Z)) - Y)
    assert sympy.count_ops(gradient) <= sympy.count_ops(by_hand)
    assert str(gradient) == "1/N*(HadamardProduct(1*Y, softmax(Z)) - Y)"
    assert sd.check_grad(loss, Z, grad=gradient)


def test_a_matrix_shared_by_terms_is_factored_out_as_in_the_cookbook():
    """d xᵀAx/dx = (A + Aᵀ)x (Matrix Cookbook eq. 81), not Ax + Aᵀx; the PCA Lagrangian's
    gradient (Σ + Σᵀ)w - 2λw."""
    n = sympy.Symbol("n", integer=True, positive=True)
    x, A = MatrixSymbol("x", n, 1), MatrixSymbol("A", n, n)
    gradient = sd.grad(x.T * A * x, x)
    assert gradient == (A + A.T) * x
    assert sd.hessian(x.T * A * x, x) == A + A.T
    S, lam = MatrixSymbol("Sigma", n, n), sympy.Symbol("lam", real=True)
    lagrangian = x.T * S * x - lam * (x.T * x - sympy.Identity(1))
    gradient = sd.grad(lagrangian, x)
    by_hand = (S + S.T) * x - 2 * lam * x
    assert sympy.count_ops(gradient) <= sympy.count_ops(by_hand)
    assert sd.verify(lagrangian, x, "(Sigma + Sigma.T)*x - 2*lam*x")
    assert sd.check_grad(lagrangian, x, grad=gradient)


def test_sigmoid_softmax_and_signs_come_out_as_textbooks_write_them():
    z, y = sympy.symbols("z y", real=True)
    assert sd.grad(sympy.log(1 + sympy.exp(z)) - y * z, z) == sd.sigmoid(z) - y
    assert sd.grad(sympy.log(1 + sympy.exp(-z)), z) == -sd.sigmoid(-z)
    p0, p1, z0, z1, z2 = sympy.symbols("p_0 p_1 z0 z1 z2", real=True)
    s = [sd.softmax(k, z0, z1, z2) for k in range(3)]
    p = [p0, p1, 1 - p0 - p1]
    kl = sum(pk * sympy.log(pk / sk) for pk, sk in zip(p, s, strict=True))
    assert sd.grad(kl, z0) == s[0] - p0  # p - softmax's terms collapse
    k = sympy.Symbol("k", integer=True, positive=True)
    mu_p, mu_q = sympy.MatrixSymbol("mu_p", k, 1), sympy.MatrixSymbol("mu_q", k, 1)
    Sq = sympy.MatrixSymbol("Sigma_q", k, k)
    quad = sympy.Trace((mu_q - mu_p).T * Sq.I * (mu_q - mu_p)) / 2
    assert str(sd.grad(quad, mu_p)) == "(1/2)*(Sigma_q**(-1) + Sigma_q.T**(-1))*(mu_p - mu_q)"
    x, m = sympy.MatrixSymbol("x", k, 1), sympy.MatrixSymbol("mu", k, 1)
    pair = sd.grad((x - m).T * Sq.I * (x - m), Sq)  # (x - mu)(x - mu)^T keeps its pair
    assert str(pair) == "-Sigma_q.T**(-1)*(-mu + x)*(-mu.T + x.T)*Sigma_q.T**(-1)"
    for f, w in ((sympy.log(1 + sympy.exp(z)) - y * z, z), (kl, z0)):
        assert sd.verify(f, w, sd.grad(f, w))
