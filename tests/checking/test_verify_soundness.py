"""verify is sound: EQUAL only when proved, wrong claims that agree near the origin are
DIFFERENT (thresholds and kinks far out, exact tiny constants), right claims written in other
forms than symdl's are EQUAL, and ordinary claims never crash (issue 10)."""

import pytest
import sympy
from sympy import Abs, Heaviside, MatrixSymbol, Max, Min, Piecewise, exp, log

import symdl as sd
from symdl.parsing.reader import parse

x, y, w, a, b, c = sympy.symbols("x y w a b c", real=True)
W = sympy.Matrix(2, 2, lambda i, j: sympy.Symbol(f"W_{i}{j}", real=True))
x0, x1 = sympy.symbols("x0 x1", real=True)
wv, xv = MatrixSymbol("w", 3, 1), MatrixSymbol("x", 3, 1)
inner = (wv.T * xv)[0, 0]


def clip(v, lo, hi):
    return Min(Max(v, lo), hi)


# (f, wrt, claim): each agrees with the true derivative near the origin, and is wrong
WRONG = [
    # the examples of issue 10
    (sd.relu(x - 4), x, "0"),
    (sd.relu(x - 10), x, "0"),
    (sd.relu(w * x - 10), w, "0"),
    (Max(x, 100), x, "0"),
    (Min(x, -30), x, "0"),
    (Abs(x - 10), x, "-1"),
    (clip(x, -50, 50), x, "1"),
    (sd.softplus(x), x, "Min(sigmoid(x), sigmoid(30))"),
    (log(exp(x) + exp(200)), x, "0"),
    (Heaviside(x - 10) * x, x, "0"),
    # one variable: far kinks and thresholds, exact tiny constants
    (sd.relu(x + 4), x, "1"),
    (sd.relu(-x - 7), x, "0"),
    (Max(x, -500), x, "1"),
    (Abs(x + 500), x, "1"),
    (Abs(x - 250), x, "-1"),
    (x**2, x, "2*x + 10**-12"),
    (x**3, x, "3*x**2 - 10**-20"),
    (sympy.sin(x), x, "cos(x) + 10**-30"),
    (Piecewise((x**2, x < 4), (8 * x - 16, True)), x, "2*x"),
    (Piecewise((x, x < 250), (2 * x, True)), x, "1"),
    (sd.leaky_relu(x - 6), x, "0.01"),
    (sd.elu(x - 5), x, "exp(x - 5)"),
    (Min(x**2, 400), x, "2*x"),
    (sd.relu(x**2 - 100), x, "0"),
    (clip(x, -4, 4), x, "1"),
    (sympy.tanh(x) + sd.relu(x - 300), x, "1 - tanh(x)**2"),
    # two and three variables
    (Max(x * y, 50), x, "0"),
    (sd.relu(x + y - 20), x, "0"),
    (Abs(x - y - 30), x, "-1"),
    (Min(x, y + 40), x, "1"),
    (sd.relu(w * x - 10) ** 2, w, "0"),
    (Max(0, 20 - y * x), x, "-y"),
    (x * Heaviside(y - 15), x, "0"),
    (Piecewise((x * y, x + y < 60), (0, True)), x, "y"),
    (sd.relu(a * x + b - 25), b, "0"),
    (Max(a * x, b * x, 300), x, "a*Heaviside(a*x - b*x) + b*Heaviside(b*x - a*x)"),
    (Abs(a + b + c - 50), a, "-1"),
    (a * b * c, [a, b], "[b*c, a*c + 10**-14]"),
    # thresholds of smooth functions far out, a region cut out by two kinks, beyond 500
    (sd.sigmoid(x - 300), x, "0"),
    (sd.softplus(x - 400), x, "0"),
    (log(1 + exp(x - 600)), x, "0"),
    (sympy.tanh(x + 250) + x, x, "1"),
    (Min(x, y, 500), x, "Heaviside(y - x)"),
    (Max(x, y, -300), y, "Heaviside(y - x)"),
    (sd.relu(x - 1000), x, "0"),
    (Abs(x - 5000), x, "-1"),
    (x * sympy.sign(x - 700), x, "-1"),
    # matrix form
    (sd.relu(inner - 10), wv, "0*x"),
    (sd.sigmoid(inner - 200), wv, "0*x"),
    (Max(inner, -400), wv, "x"),
    (Max(inner, 40), wv, "0*x"),
    (inner**2, wv, "2*x*(w.T*x) + 10**-15*x"),
    (sd.relu(W[0, 0] * x0 + W[0, 1] * x1 - 8), W, "zeros(2, 2)"),
    (Abs((W * sympy.Matrix([x0, x1]))[1] + 60), W, "zeros(2, 2)"),
]

RIGHT = [
    (sd.sigmoid(x), x, "exp(-x)/(1 + exp(-x))**2"),
    (sd.sigmoid(x), x, "sigma(x)*sigma(-x)"),
    (sd.sigmoid(x), x, r"\sigma(x)\,(1-\sigma(x))"),
    (sympy.tanh(x), x, "1/cosh(x)**2"),
    (sympy.tanh(x), x, "1 - tanh(x)**2"),
    (sd.softplus(x), x, "1/(1 + exp(-x))"),
    (sd.relu(x), x, "Heaviside(x)"),
    (sd.relu(x), x, "(sign(x) + 1)/2"),
    (sd.relu(x - 4), x, "Heaviside(x - 4)"),
    (Abs(x), x, "sign(x)"),
    (Abs(x - 10), x, "(x - 10)/abs(x - 10)"),
    (Max(x, 100), x, "Heaviside(x - 100)"),
    (Min(x, -30), x, "Heaviside(-30 - x)"),
    (clip(x, -50, 50), x, "Heaviside(x + 50)*Heaviside(50 - x)"),
    (x**2, x, "x + x"),
    (log(exp(x) + exp(200)), x, "exp(x)/(exp(x) + exp(200))"),
    (log(exp(x) + exp(200)), x, "1/(1 + exp(200 - x))"),
    (Max(x, 0) ** 2, x, "2*max(x, 0)"),
    (sd.relu(x) ** 2, x, "2*x*Heaviside(x)"),
    (Heaviside(x - 10) * x, x, "Heaviside(x - 10)"),
    (exp(2 * x), x, "2*exp(x)**2"),
    (log(x**2 + 1), x, "2*x/(x**2 + 1)"),
    (sympy.sqrt(x**2 + 1), x, "x/sqrt(x**2 + 1)"),
    (sympy.cosh(x), x, "(exp(x) - exp(-x))/2"),
    (Piecewise((x**2, x < 4), (8 * x - 16, True)), x, "2*x*Heaviside(4 - x) + 8*Heaviside(x - 4)"),
    (Min(x**2, 400), x, "2*x*Heaviside(400 - x**2)"),
    (sd.leaky_relu(x), x, "Heaviside(x) + 0.01*Heaviside(-x)"),
    (sd.elu(x), x, "Heaviside(x) + exp(x)*Heaviside(-x)"),
    (x * y, [x, y], "[y, x]"),
    (sd.relu(w * x - 10), w, "x*Heaviside(w*x - 10)"),
    (sd.relu(w * x - 10), w, "x*(1 + sign(w*x - 10))/2"),
    (Abs(x - y), x, "sign(x - y)"),
    (Max(x, y), x, "Heaviside(x - y)"),
    (Min(x, y), y, "Heaviside(x - y)"),
    (sd.relu(a * x + b - 25), b, "Heaviside(a*x + b - 25)"),
    (sd.sigmoid(a * x + b), a, "x*exp(-a*x - b)/(1 + exp(-a*x - b))**2"),
    (
        sd.mse(sd.sigmoid(w * x + b), y),
        w,
        r"2 (\sigma(w x + b) - y) \sigma(w x + b) (1 - \sigma(w x + b)) x",
    ),
    ((inner - 1) ** 2, wv, "2*x*(w.T*x - 1)"),
    ((inner - 1) ** 2, wv, "2*(x.T*w - 1)*x"),
    (inner**2, wv, "2*x*x.T*w"),
    (sympy.Trace(MatrixSymbol("X", 3, 3)) ** 2, MatrixSymbol("X", 3, 3), "2*trace(X)*eye(3)"),
    ((xv.T * MatrixSymbol("A", 3, 3) * xv)[0, 0], xv, "(A + A.T)*x"),
    ((xv.T * xv)[0, 0], xv, "2*x"),
    (
        sd.relu(W[0, 0] * x0 + W[0, 1] * x1),
        W,
        "Matrix([[Heaviside(W_00*x0 + W_01*x1)*x0, Heaviside(W_00*x0 + W_01*x1)*x1], [0, 0]])",
    ),
]


@pytest.mark.parametrize("f, wrt, claim", WRONG, ids=[str(i) for i in range(len(WRONG))])
def test_wrong_claims_that_agree_near_the_origin_are_different(f, wrt, claim):
    verdict = sd.verify(f, wrt, claim)
    assert verdict.status == "DIFFERENT", verdict.explain()
    assert not verdict and verdict.counterexample is not None


@pytest.mark.parametrize("f, wrt, claim", RIGHT, ids=[str(i) for i in range(len(RIGHT))])
def test_right_claims_in_other_forms_are_proved_equal(f, wrt, claim):
    verdict = sd.verify(f, wrt, claim)
    assert verdict.status == "EQUAL", verdict.explain()
    assert verdict


def test_the_corpus_is_as_large_as_the_docs_say():
    assert len(WRONG) >= 40 and len(RIGHT) >= 40


n_, m_ = sympy.symbols("n m", integer=True, positive=True)
An, Bn, Xn = (MatrixSymbol(s, n_, n_) for s in "ABX")
xn, bn, ym = MatrixSymbol("x", n_, 1), MatrixSymbol("b", n_, 1), MatrixSymbol("y", m_, 1)
Wmn, lam = MatrixSymbol("W", m_, n_), sympy.Symbol("lambda", real=True)
r = Wmn * xn - ym

# right claims at symbolic sizes: proved for every size, not only for the sizes written out
FOR_EVERY_SIZE = [
    ((xn.T * An * xn)[0, 0], xn, "(A + A.T)*x"),
    ((xn.T * An * xn)[0, 0], xn, "(A^T + A) x"),
    ((r.T * r)[0, 0], Wmn, "2*(W*x - y)*x.T"),
    ((r.T * r)[0, 0] + lam * sympy.Trace(Wmn.T * Wmn), Wmn, "2*(W*x - y)*x.T + 2*lambda*W"),
    ((r.T * r)[0, 0], xn, "2*(W.T*W*x - W.T*y)"),
    (sympy.Trace(Xn * An * Xn.T), Xn, "X*(A + A.T)"),
    (sympy.Trace(An * Xn * Bn), Xn, "(B*A).T"),
    (sympy.log(sympy.Determinant(Xn)), Xn, "X^{-T}"),
    (sympy.Trace(Xn.I * An), Xn, "-(X.I*A*X.I).T"),
    (((xn - bn).T * (xn - bn))[0, 0] / 2, xn, "x - b"),
    (((An * xn - bn).T * (An * xn - bn))[0, 0], xn, "2 A^T (A x - b)"),
]


@pytest.mark.parametrize(
    "f, wrt, claim", FOR_EVERY_SIZE, ids=[str(i) for i in range(len(FOR_EVERY_SIZE))]
)
def test_right_claims_at_symbolic_sizes_are_proved_for_every_size(f, wrt, claim):
    verdict = sd.verify(f, wrt, claim)
    assert verdict.status == "EQUAL" and verdict.method == "symbolic", verdict.explain()


def test_lambda_is_a_name_in_a_python_claim():
    f = (w * x - y) ** 2 + lam * w**2
    assert sd.verify(f, w, "2*x*(w*x - y) + 2*lambda*w")
    assert {s.name for s in parse("2*lambda*w").free_symbols} == {"lambda", "w"}


Nn = sympy.Symbol("N", integer=True, positive=True)
Xs, wn, ys = MatrixSymbol("X", Nn, n_), MatrixSymbol("w", n_, 1), MatrixSymbol("y", Nn, 1)
residual = Xs * wn - ys
ANY_CLAIM = [
    "2/N*X.T*(X*w - y)", r"\frac{2}{N} X^\top (X w - y)", "(A+A.T)*w", "2*A*w", "2*A", "A^{-T}",
    r"\mathbf{1}", "ones(n,1)", "0", "w", "w.T", "trace(A)*eye(n)", r"\operatorname{tr}(A) I",
    "kron(A, A)", "hadamard(w, w)", r"w \odot w", "x", "N", "1/N", r"\sum_{i=1}^{n} w_i",
    "X.T*y", "(X*w-y).T*X", "exp(w)", "abs(w)", "max(w, 0)", "Heaviside(w)", "w^2", "A^2",
    "I", "1", r"\nabla_w L = 2 X^T (Xw-y)/N", "softmax(w)", "relu(w)",
]  # fmt: skip


@pytest.mark.parametrize("claim", ANY_CLAIM)
@pytest.mark.parametrize(
    "f, wrt",
    [((residual.T * residual)[0, 0] / Nn, wn), ((wn.T * An * wn)[0, 0], wn)],
    ids=["least-squares", "quadratic-form"],
)
def test_any_claim_that_parses_gets_a_verdict(f, wrt, claim):
    try:
        verdict = sd.verify(f, wrt, claim)
    except sd.ParseError:
        return  # not a formula here (a name f does not have): a ParseError, named
    assert verdict.status in ("EQUAL", "AGREES", "DIFFERENT")
