"""The claim language people write (issue 10): transposes, inverses, trace and det, document
wrappers ($...$, \\[...\\]) and left sides (\\nabla_X f =, \\frac{\\partial f}{\\partial X} =),
1x1 factors on either side, sech; and the more relevant error when both readers fail."""

import pytest
import sympy

import symdl as sd
from symdl.parsing.errors import ParseError

X = sympy.MatrixSymbol("X", 3, 3)
a, b = sympy.MatrixSymbol("a", 3, 1), sympy.MatrixSymbol("b", 3, 1)
F = (a.T * X * b)[0, 0]
z = sympy.Symbol("z", real=True)

SPELLINGS = [
    "a*b^T",
    "a b^T",
    "a*b.T",
    r"a b^{T}",
    r"a b^\top",
    r"a b^\mathsf{T}",
    r"$a b^\top$",
    r"$$a b^\top$$",
    r"\[a b^\top\]",
    r"\nabla_X f = a b^\top",
    r"\frac{\partial f}{\partial X} = a b^\top",
]


@pytest.mark.parametrize("claim", SPELLINGS)
def test_spellings_of_an_outer_product(claim):
    assert sd.verify(F, X, claim).status == "EQUAL"


def test_inverse_trace_det_and_sech():
    logdet = sympy.log(sympy.Determinant(X))
    assert sd.verify(logdet, X, "inv(X).T")
    assert sd.verify(logdet, X, r"(X^{-1})^T")
    assert sd.verify(sympy.Trace(X) ** 2, X, "2*trace(X)*eye(3)")
    assert sd.verify(sympy.Trace(X) ** 2, X, "2*tr(X)*eye(3)")
    assert sd.verify(sympy.tanh(z), z, "sech(z)**2")


def test_one_by_one_factors_act_as_scalars_on_either_side():
    w, x = sympy.MatrixSymbol("w", 3, 1), sympy.MatrixSymbol("x", 3, 1)
    f = ((w.T * x)[0, 0] - 1) ** 2
    for claim in ("2*x*(w.T*x - 1)", "2*(w.T*x - 1)*x", r"2 (w^T x - 1) x", r"2 x (w^T x - 1)"):
        assert sd.verify(f, w, claim), claim
    assert not sd.verify(f, w, "x*(w.T*x - 1)")


def test_a_shape_error_is_shown_rather_than_a_syntax_error():
    w, x = sympy.MatrixSymbol("w", 3, 1), sympy.MatrixSymbol("W", 2, 3)
    with pytest.raises(ParseError, match="cannot multiply"):
        sd.parsing.parse("2 w w", sd.parsing.namespace.namespace_of(w))
    verdict = sd.verify((x * w).T * (x * w), w, "2 w w")
    assert verdict.status == "DIFFERENT" and "cannot multiply a 3x1 matrix by a 3x1" in str(verdict)


def test_claims_that_cannot_fit_the_shapes_are_different_so_a_loop_needs_no_try():
    w, W = sympy.MatrixSymbol("w", 3, 1), sympy.MatrixSymbol("W", 2, 3)
    f = (W * w).T * (W * w)
    claims = {
        "2*W.T*W*w": "EQUAL",
        "2*W*W*w": "cannot multiply a 2x3 matrix by a 2x3",
        "2 W^T W w + W": "cannot add a 3x1 and a 2x3",
        "W.T*W*w / W": "cannot divide by a matrix (2x3)",
        "W^2 w": "a matrix power needs a square matrix (got 2x3)",
        r"\operatorname{tr}(W) w": "trace needs a square matrix, got 2x3",
        "2*W*w": "the claim has shape 2x1 but the gradient has shape 3x1",
    }
    for claim, expected in claims.items():
        verdict = sd.verify(f, w, claim)
        if expected == "EQUAL":
            assert verdict.status == "EQUAL", claim
        else:
            assert verdict.status == "DIFFERENT" and not verdict, claim
            assert verdict.method == "shape" and expected in verdict.reason, (claim, verdict.reason)


def test_inverse_transposes_primes_det_and_operatorname_tr():
    logdet = sympy.log(sympy.Determinant(X))
    for claim in (
        r"X^{-T}",
        r"X^{-\top}",
        r"(X^{-1})'",
        "inv(X)'",
        "X.I.T",
        r"\det(X) X^{-T} / \det X",
    ):
        assert sd.verify(logdet, X, claim), claim
    assert sd.verify(sympy.Determinant(X), X, r"\det(X) X^{-T}")
    assert sd.verify(sympy.Trace(X) ** 2, X, r"2 \operatorname{tr}(X) I_3".replace("I_3", "eye(3)"))
    assert sd.verify(F, X, "a b'") and sd.verify(F, X, "a*b'")
    assert not sd.verify(F, X, "b a'")


def test_a_prime_on_a_function_is_still_its_derivative():
    assert sd.verify(sd.sigmoid(z) ** 2, z, r"2 \sigma(z) \sigma'(z)")


def test_all_ones_vectors_take_their_length_from_the_context():
    n = sympy.Symbol("n", integer=True, positive=True)
    w = sympy.MatrixSymbol("w", n, 1)
    total = (sympy.OneMatrix(1, n) * w)[0, 0] ** 2
    for claim in (
        r"2 (\mathbf{1}^T w) \mathbf{1}",
        r"2 \mathbb{1}_n \mathbf{1}_n^T w",
        r"2 (\mathbf{1}_{n}^\top w) \mathbf{1}_{n}",
        "2*ones(n, 1)*(ones(n, 1).T*w)",
    ):
        assert sd.verify(total, w, claim), claim
    v = sympy.MatrixSymbol("v", 3, 1)
    assert sd.verify((sympy.OneMatrix(1, 3) * v)[0, 0], v, r"\mathbf{1}")
    assert sd.verify((v.T * v)[0, 0] + (sympy.OneMatrix(1, 3) * v)[0, 0], v, r"2 v + \mathbf{1}")
    with pytest.raises(ParseError, match="length of the all-ones vector"):
        sd.parsing.parse(r"\mathbf{1} \mathbf{1}^T")


def test_kronecker_products():
    A, B = sympy.MatrixSymbol("A", 2, 2), sympy.MatrixSymbol("B", 2, 2)
    from symdl.parsing.namespace import namespace_of

    names = namespace_of(A, B)
    assert sd.parsing.parse(r"A \otimes B", names) == sympy.KroneckerProduct(A, B)
    assert sd.parsing.parse("kron(A, B)", names) == sympy.KroneckerProduct(A, B)
    M = sympy.Matrix([[1, 2], [3, 4]])
    assert sd.parsing.parse(r"\begin{pmatrix}1&2\\3&4\end{pmatrix} \otimes A", names).shape == (
        4,
        4,
    )
    assert sympy.Matrix(sd.parsing.parse("kron(Matrix([[1, 2], [3, 4]]), eye(2))")) == sympy.Matrix(
        sympy.kronecker_product(M, sympy.eye(2))
    )


def test_sums_over_an_index_with_limits():
    xs = sympy.symbols("x_1:4", real=True)
    f = sum(x**2 for x in xs)
    assert sd.verify(f, list(xs), [r"2 x_1", r"2 x_2", r"2 x_3"])
    assert sd.verify(f * xs[0], xs[0], r"\sum_{i=1}^{3} x_i^2 + 2 x_1^2")
    v = sympy.MatrixSymbol("v", 3, 1)
    assert sd.verify(
        (v.T * v)[0, 0] * sympy.Symbol("c"), sympy.Symbol("c"), r"\sum_{i=1}^{3} v_i^2"
    )
    n, k = sympy.Symbol("n", integer=True, positive=True), sympy.Symbol("k", real=True)
    s = sd.parsing.parse(r"\sum_{i=1}^{n} i k", sd.parsing.namespace.namespace_of(n, k))
    assert sympy.simplify(s.doit() - n * (n + 1) / 2 * k) == 0
    with pytest.raises(ParseError, match="sum"):
        sd.parsing.parse(r"\sum_{i=1}^{500} i")


def test_accented_and_greek_names():
    zbar, lam, Phi = sympy.symbols("zbar lambda Phi", real=True)
    assert sd.verify(zbar**2 * lam, zbar, r"2 \bar{z} \lambda")
    assert sd.verify(Phi * lam, lam, r"\Phi")
    assert sd.verify(Phi * lam, Phi, "lambda")
    yhat = sympy.Symbol("yhat", real=True)
    assert sd.verify((yhat - z) ** 2, yhat, r"2 (\hat{y} - z)")


def test_a_scalar_added_to_a_matrix_expression_is_added_to_each_entry():
    W, x, y = (sympy.MatrixSymbol(n, *s) for n, s in (("W", (3, 2)), ("x", (2, 1)), ("y", (3, 1))))
    r = W * x - y
    # a claim with a stray + 1 gets a verdict, never a parse error ('One' has no shape)
    verdict = sd.verify((r.T * r)[0, 0], W, "2*(W*x - y)*x.T + 1")
    assert not verdict and "DIFFERENT" in str(verdict)
    assert sd.verify((r.T * r)[0, 0], W, "2*(W*x - y)*x.T + 1 - 1")
    from symdl.parsing import parse
    from symdl.parsing.namespace import namespace_of

    assert parse("1 - W", namespace_of(W)) == sympy.OneMatrix(3, 2) - W


def test_I_is_the_identity_and_negative_matrix_powers_are_inverses():
    """Published forms: d tr(X)/dX = I, d tr((X Xᵀ + I)⁻¹)/dX = -2 (X Xᵀ + I)⁻² X; a right
    claim written with a negative power was DIFFERENT ("exponent from 1 to 8")."""
    n = sympy.Symbol("n", integer=True, positive=True)
    X = sympy.MatrixSymbol("X", n, n)
    assert sd.verify(sympy.Trace(X), X, "I")
    assert sd.verify(sympy.Trace(X), X, r"\mathbf{I}")
    assert not sd.verify(sympy.Trace(X), X, "2*I").agrees
    X3 = sympy.MatrixSymbol("X", 3, 3)
    f = sympy.Trace((X3 * X3.T + sympy.Identity(3)).I)
    assert sd.verify(f, X3, "-2*(X*X.T + I)^(-2)*X").agrees
    assert not sd.verify(f, X3, "-(X*X.T + I)^(-2)*X").agrees
    assert sd.verify(sympy.log(sympy.Determinant(X3)), X3, "X^{-T}")
    assert not sd.verify(sympy.Trace(X3**2), X3, "2*X^{1.5}")  # no such power: DIFFERENT


# --------------------------------------------------------------------------- piecewise claims

xr, yr = sympy.symbols("x y", real=True)
CASES = r"\begin{cases} 1 & \text{if } x > 5 \\ 0.01 & \text{otherwise} \end{cases}"


def test_latex_cases_are_a_piecewise():
    from symdl.parsing.reader import parse

    x = sympy.Symbol("x", real=True)
    assert parse(CASES) == sympy.Piecewise((1, x > 5), (sympy.Rational(1, 100), True))
    chained = parse(r"\begin{cases} 0 & x < -1 \\ x & -1 \le x \le 1 \\ 1 & x > 1 \end{cases}")
    assert [chained.subs(x, v) for v in (-3, 0.5, 4)] == [0, 0.5, 1]
    both = parse(
        r"\begin{cases} x & \text{if } x > 0 \text{ and } y > 0 \\ 0 & \text{else}\end{cases}"
    )
    assert both.args[0].cond == sympy.And(*(sympy.Symbol(s, real=True) > 0 for s in "xy"))
    assert parse(r"\begin{cases} 1, & x \geq 0 \\ 0, & x < 0 \end{cases}").subs(x, 0) == 1


def test_latex_cases_as_sympy_prints_them_read_back():
    from symdl.parsing.reader import parse

    x, y = sympy.symbols("x y", real=True)
    for e in (
        sympy.Piecewise((x**2, x > 1), (x, True)),
        sympy.Piecewise((x, (x > 0) & (x < y)), (0, True)),
        sympy.Piecewise((1, sympy.Eq(x, 0)), (0, True)),  # its = is not an equation's
        sympy.Piecewise((x, x >= 2), (3, x <= -1), (0, True)),
        sympy.Piecewise((x, (x > 2) | (x < -1)), (0, True)),
    ):
        assert parse(sympy.latex(e)) == e, sympy.latex(e)


def test_piecewise_claims_are_verified_in_both_readers():
    assert sd.verify(sd.leaky_relu(xr - 5), xr, CASES).status == "EQUAL"
    wrong = CASES.replace("x > 5", "x > 0")  # the kink at 0, not at 5: wrong on (0, 5)
    assert sd.verify(sd.leaky_relu(xr - 5), xr, wrong).status == "DIFFERENT"
    assert sd.verify(sd.elu(xr), xr, "Piecewise((1, x > 0), (exp(x), True))").status == "EQUAL"
    assert sd.verify(sd.elu(xr - 50), xr, "Piecewise((1, x > 0), (exp(x), True))").status == (
        "DIFFERENT"
    )
    assert sd.verify(sd.relu(xr), xr, "where(x > 0, 1, 0)").status == "EQUAL"
    huber = sympy.Piecewise((xr**2 / 2, abs(xr) <= 1), (abs(xr) - sympy.Rational(1, 2), True))
    right = r"\begin{cases} x & |x| \le 1 \\ \operatorname{sign}(x) & \text{otherwise} \end{cases}"
    assert sd.verify(huber, xr, right).status == "EQUAL"
    assert sd.verify(huber, xr, right.replace(r"\le 1", r"\le 2")).status == "DIFFERENT"


@pytest.mark.parametrize(
    "text, message",
    [
        ("x > 0", "is not a formula's value"),
        ("(x > 0) + 1", "is not a number"),
        ("exp(x > 0)", "is not a number"),
        ("Piecewise((x, x), (0, True))", "is not a comparison"),
        ("Piecewise((x, True), 3)", "must be a pair"),
        ("x & y", "join conditions"),
        (r"\begin{cases} x & \text{otherwise} \\ 1 & x > 0 \end{cases}", "must be the last"),
        (r"\begin{cases} x & x \end{cases}", "expected a condition"),
        (r"\begin{cases} x & x > 0 \end{pmatrix}", "closed by a different"),
        (
            "".join([r"\begin{cases}", *(rf" x & x > {i} \\" for i in range(150)), r"\end{cases}"]),
            "more than 100 cases",
        ),
        ("Piecewise(" + "(x, x > 1), " * 150 + "(0, True))", "more than 100 arguments"),
    ],
)
def test_conditions_out_of_place_are_parse_errors(text, message):
    from symdl.parsing.reader import parse

    with pytest.raises(ParseError, match=message):
        parse(text)


# --------------------------------------------------------------------------- as papers write them

_x, _mu = sympy.symbols("x mu", real=True)
_sig = sympy.Symbol("sigma", positive=True)
_W, _xv, _yv = (
    sympy.MatrixSymbol("W", 2, 3),
    sympy.MatrixSymbol("x", 3, 1),
    sympy.MatrixSymbol("y", 2, 1),
)
_w = sympy.MatrixSymbol("w", 3, 1)
_y = sympy.Symbol("y", real=True)
PUBLISHED = [
    (((_W * _xv - _yv).T * (_W * _xv - _yv))[0, 0], _W, r"\nabla_W \|Wx - y\|^2 = 2(Wx-y)x^\top"),
    (sympy.tanh(_x), _x, r"\frac{d}{dx} \tanh x = \operatorname{sech}^2 x"),
    (sd.gelu(_x), _x, r"\Phi(x) + x\phi(x)"),
    (sd.gelu(_x), _x, r"\Phi(x) + x \varphi(x)"),
    (sd.gelu(_x), _x, "Phi(x) + x*phi(x)"),
    (sympy.log(1 + sympy.exp(-_y * (_w.T * _xv)[0, 0])), _w, r"-\frac{y x}{1+e^{y w^\top x}}"),
    (sd.relu(_x), _x, r"\mathbb{1}[x > 0]"),
    (sd.relu(_x), _x, r"\mathbb{1}_{x > 0}"),
    (sd.relu(_x), _x, r"\mathbb{1}_{\{x > 0\}}"),
    (sd.leaky_relu(_x), _x, r"\mathbb{1}_{x>0} + 0.01 \cdot \mathbb{1}_{x \le 0}"),
    (sd.relu(_x), _x, "H(x)"),
    (sd.silu(_x), _x, r"\sigma(x)(1 + x(1-\sigma(x)))"),
    ((_x - _mu) ** 2 / (2 * _sig**2), _mu, r"\frac{\mu - x}{\sigma^2}"),
]


@pytest.mark.parametrize("f, wrt, claim", PUBLISHED, ids=[c for _, _, c in PUBLISHED])
def test_published_derivatives_as_written_are_proved(f, wrt, claim):
    verdict = sd.verify(f, wrt, claim)
    assert verdict.status == "EQUAL", verdict.explain()


def test_a_symbol_of_the_function_hides_phi_and_H():
    phi, H = sympy.symbols("phi H", real=True)
    assert sd.verify(phi * _x**2, _x, r"2\phi(x)").status == "EQUAL"  # phi times (x)
    with pytest.raises(ParseError, match="H is a symbol, not a function"):
        sd.verify(H * _x**2, _x, "2*H(x)")  # in Python syntax a call is a call: said so


def test_I_with_square_matrices_of_several_sizes_is_an_error_naming_them():
    """I is the identity only when the formula's square matrices share one size; with several
    it would be a guess, so it is refused with the sizes and how to write the one meant."""

    n, m = sympy.symbols("n m", integer=True, positive=True)
    X, A = sympy.MatrixSymbol("X", n, n), sympy.MatrixSymbol("A", m, m)
    B = sympy.MatrixSymbol("B", n, m)
    f = sympy.Trace(X) + sympy.Trace(A * B.T * B)
    for claim in ("I", r"\mathbf{I}", "2*I"):
        with pytest.raises(ParseError, match=r"I is ambiguous.*sizes m, n.*eye\(m\) or Identity"):
            sd.verify(f, X, claim)
    assert sd.verify(f, X, "eye(n)")
    assert sd.verify(f, X, "Identity(n)")
    assert not sd.verify(f, X, "2*eye(n)").agrees
    assert sd.verify(f, X, "I", where={"I": sympy.Identity(n)})  # defined by the user: no guess
    assert sd.verify(sympy.Trace(X), X, "eye(n)")  # one size: eye(n) and I are the same
