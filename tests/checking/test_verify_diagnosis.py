"""Diagnosis of a wrong claim (issue 10, part): a constant factor or a wrong sign is named in
the verdict's details; a claim wrong otherwise gets no diagnosis."""

import numpy as np
import sympy

import symdl as sd

x, y = sympy.symbols("x y", real=True)
W = sympy.MatrixSymbol("W", 3, 3)
a, b = sympy.MatrixSymbol("a", 3, 1), sympy.MatrixSymbol("b", 3, 1)


def test_a_constant_factor_is_named():
    assert "the claim is 2x the derivative" in sd.verify(x**2 * y, x, "4*x*y").details
    assert "the claim is 1/2x the derivative" in sd.verify(x**2 * y, x, "x*y").explain()
    f = (a.T * W * b)[0, 0] ** 2
    verdict = sd.verify(f, W, "4*(a.T*W*b)*a*b.T")
    assert verdict.status == "DIFFERENT" and "2x the derivative" in verdict.details


def test_a_wrong_sign_is_named():
    assert "wrong sign" in sd.verify(sympy.exp(-x), x, "exp(-x)").details


def test_no_diagnosis_for_other_mistakes():
    assert "Diagnosis" not in sd.verify(x**2 * y, x, "x*y + 1").details


w, bias, lam, N = sympy.symbols("w b lambda N", real=True)
n = sympy.Symbol("n", integer=True, positive=True)
X, u, t = (
    sympy.MatrixSymbol("X", n, n),
    sympy.MatrixSymbol("u", n, 1),
    sympy.MatrixSymbol("t", n, 1),
)
A = sympy.MatrixSymbol("A", n, n)


def diagnosis(f, wrt, claimed) -> str:
    verdict = sd.verify(f, wrt, claimed)
    assert verdict.status == "DIFFERENT"
    return verdict.details.split(" Compared at")[0]


def test_a_missing_term_is_named():
    f = sd.mse(sd.sigmoid(w * x + bias), y) + lam * w**2  # the regulariser's term left out
    claim = "2*x*(sigmoid(w*x + b) - y)*sigmoid(w*x + b)*(1 - sigmoid(w*x + b))"
    assert diagnosis(f, w, claim) == (
        "Diagnosis: a missing term: the claim is the derivative without 2*lambda*w."
    )
    # the bias, named inside the residual of the gradient 2 x (w x + b - y)
    assert "without b (in b + w*x - y)" in diagnosis(sd.mse(w * x + bias, y), w, "2*x*(w*x - y)")
    r = X * u - t
    f = (r.T * r)[0, 0] / n + lam * sympy.Trace(X.T * X)
    assert "a missing term" in diagnosis(f, X, "2/n*(X*u - t)*u.T")
    # the gradient is (A + Aᵀ)u, the Cookbook form: the term left out is named inside the sum
    assert "without A.T (in A + A.T)" in diagnosis((u.T * A * u)[0, 0], u, "A*u")


def test_an_extra_term_is_named():
    assert "an extra term" in diagnosis((w * x - y) ** 2, w, "2*x*(w*x - y) + 1")


def test_a_missing_activation_derivative_is_named():
    f = sd.mse(sd.sigmoid(w * x + bias), y)
    found = diagnosis(f, w, "2*x*(sigmoid(w*x + b) - y)")
    assert "a missing factor" in found
    assert "(1 - sigmoid(b + w*x))*sigmoid(b + w*x)" in found


def test_a_missing_one_over_n_is_named():
    assert "a missing 1/N" in diagnosis((w * x - y) ** 2 / N, w, "2*x*(w*x - y)")
    r = X * u - t
    assert "a missing 1/n" in diagnosis((r.T * r)[0, 0] / n, X, "2*(X*u - t)*u.T")


def test_a_transpose_is_named():
    r = X * u - t
    assert "the transpose of the derivative" in diagnosis((r.T * r)[0, 0], X, "2*u*(X*u - t).T")
    assert "the claim has A where the derivative has A.T" in diagnosis(
        (u.T * A * u)[0, 0], u, "2*A*u"
    )
    V, z, v = (
        sympy.MatrixSymbol("V", 3, 3),
        sympy.MatrixSymbol("z", 3, 1),
        sympy.MatrixSymbol("v", 3, 1),
    )
    assert "the claim has V where the derivative has V.T" in diagnosis(
        (z.T * V * v)[0, 0], v, "V*z"
    )


def test_a_diagnosis_is_named_only_when_it_is_checked():
    # wrong in a way no single classic mistake explains: nothing is named
    f = sd.mse(sd.sigmoid(w * x + bias), y)
    assert "Diagnosis" not in diagnosis(f, w, "x*(sigmoid(w*x + b) - y)")  # 1/2 and sigma'
    assert "Diagnosis" not in diagnosis((w * x - y) ** 2, w, "x*(w*x + y)")  # 1/2 and a sign
    assert "Diagnosis" not in diagnosis(sympy.sin(w) * x, w, "-x*sin(w)")
    assert "without the factor x" in diagnosis(sympy.sin(w) * x, w, "cos(w)")


def test_a_matrix_counterexample_leads_with_the_worst_entry_and_stays_short():
    W8, a8, b8 = (sympy.MatrixSymbol(s, 8, k) for s, k in (("W", 8), ("a", 1), ("b", 1)))
    verdict = sd.verify((a8.T * W8 * b8)[0, 0] ** 2, W8, "4*(a.T*W*b)*a*b.T")
    c = verdict.counterexample
    text = str(c)
    assert len(text) < 250 and text.startswith(f"entry {list(c.index)} (d/dW_{{")
    assert f"is {c.true:.10g}, the claim gives {c.claimed:.10g}" in text
    assert "all in .point" in text and len(c.point) == 80
    # the entry is the one where claim and truth differ most, computed here independently
    value = {s.name: v for s, v in c.point.items()}
    a_, b_ = (np.array([value[f"{v}_{{{i},0}}"] for i in range(8)]) for v in "ab")
    Wn = np.array([[value[f"W_{{{i},{j}}}"] for j in range(8)] for i in range(8)])
    true = 2 * (a_ @ Wn @ b_) * np.outer(a_, b_)
    gap = np.abs(2 * true - true)
    assert c.index == np.unravel_index(np.argmax(gap), gap.shape)
    assert np.isclose(c.true, true[c.index]) and np.isclose(c.claimed, 2 * true[c.index])
    assert len(str(verdict)) < 500


def test_the_verdict_carries_the_diagnosis():
    verdict = sd.verify((w * x - y) ** 2 / N, w, "2*x*(w*x - y)")
    assert verdict.diagnosis == "a missing 1/N: the claim is N times the derivative"
    assert verdict.details.startswith(f"Diagnosis: {verdict.diagnosis}. Compared at")
    assert sd.verify((w * x - y) ** 2, w, "x*(w*x + y)").diagnosis == ""  # two mistakes
    assert sd.verify((w * x - y) ** 2, w, "2*x*(w*x - y)").diagnosis == ""  # EQUAL


def test_each_wrong_entry_of_a_list_is_diagnosed_by_its_variable():
    f = sd.mse(sd.sigmoid(w * x + bias), y)
    s = "sigmoid(w*x + b)"
    claim = f"[2*x*({s} - y)*{s}*(1 - {s}), 2*({s} - y)]"
    assert sd.verify(f, [w, bias], claim).diagnosis == (
        "d/db: a missing factor: the claim is the derivative without the factor"
        " (1 - sigmoid(b + w*x))*sigmoid(b + w*x)"
    )


def test_the_missing_derivative_of_tanh_and_relu_is_a_factor():
    assert sd.verify(sympy.tanh(w * x), w, "x").diagnosis.endswith("factor 1 - tanh(w*x)**2")
    assert "factor Heaviside(w*x" in sd.verify(sd.relu(w * x), w, "x").diagnosis


def test_no_diagnosis_from_one_given_point():
    # at x = 1 the claim 2 equals 2*x, the derivative 2*x*y**2 without its factor y**2; one
    # point does not check that (and 2 is not 2*x)
    verdict = sd.verify(x**2 * y**2, x, "2", at={x: 1, y: 2})
    assert verdict.status == "DIFFERENT" and verdict.diagnosis == ""
    assert "without the factor y**2" in sd.verify(x**2 * y**2, x, "2*x").diagnosis


def test_a_term_of_the_wrong_sign_is_named():
    assert diagnosis((w * x - y) ** 2, w, "2*x*(w*x + y)") == (
        "Diagnosis: a wrong sign: the claim has the term y where the derivative has -y"
        " (in w*x - y)."
    )
    assert "the claim has the term -x*cos(w)" in diagnosis(
        x**3 * w + sympy.sin(w) * x, w, "x**3 - cos(w)*x"
    )
    assert "a wrong sign" in diagnosis(
        (u.T * A * u)[0, 0] - 2 * (t.T * u)[0, 0], u, "(A + A.T)*u + 2*t"
    )


def test_an_activation_derivative_written_wrong_is_named():
    s = "sigmoid(w*x + b)"
    f = sd.mse(sd.sigmoid(w * x + bias), y)
    for wrong_sigma in (f"{s}*(1 + {s})", s, f"(1 - {s})"):
        found = diagnosis(f, w, f"2*x*({s} - y)*{wrong_sigma}")
        assert found.startswith("Diagnosis: σ' written wrong: the claim has "), found
        assert found.endswith(
            f"where σ' = {sympy.sympify(s, locals={'sigmoid': sd.sigmoid})}*(1 - sigmoid(b + w*x))."
        )
    t_ = "tanh(w*x + b)"
    assert "tanh' written wrong: the claim has tanh(b + w*x)**2 + 1" in diagnosis(
        sympy.tanh(w * x + bias), w, f"x*(1 + {t_}**2)"
    )
    assert "tanh' written wrong: the claim has 1 - tanh(b + w*x) where" in diagnosis(
        sympy.tanh(w * x + bias), w, f"x*(1 - {t_})"
    )
    assert "a missing square" in diagnosis(sympy.sin(w) ** 3, w, "3*sin(w)*cos(w)")


def test_no_diagnosis_that_explains_nothing():
    # relu(x - 40)' without x is Heaviside(-40) = 0, a constant: not "a missing term x"
    assert sd.verify(sd.relu(x - 40), x, "0").diagnosis == ""
    # equal where the derivative is not ~0 and wrong where it is: not "1x the derivative"
    assert sd.verify(sd.relu(x - 40), x, "1").diagnosis == ""
    assert "without -40" in sd.verify(sd.relu(x - 40), x, "Heaviside(x)").diagnosis
