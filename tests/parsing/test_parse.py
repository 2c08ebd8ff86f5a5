"""Safe parsing: Python syntax and LaTeX give the same SymPy objects, and hostile text runs nothing."""

from __future__ import annotations

import ast
import builtins
import os
import subprocess
import threading

import numpy as np
import pytest
import sympy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sympy import MatrixSymbol, Trace
from sympy.matrices.expressions.matexpr import MatrixElement

import symdl as sd
from symdl.core.explicit import evaluate
from symdl.parsing import MAX_LENGTH, ParseError, parse
from symdl.parsing.namespace import namespace_of

X, Y, Z, A, W, B = sympy.symbols("x y z a w b", real=True)
NAMES = namespace_of(X * Y * Z * A * W * B)


def _parse(text, names=NAMES):
    return parse(text, names)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("2*(a - y)*x", 2 * (A - Y) * X),
        ("x^2 + x**3", X**2 + X**3),
        ("0.5*x", X / 2),  # decimals are exact
        ("1e-3*x", X / 1000),
        ("-x + +y", -X + Y),
        ("sigma(z)*(1 - sigma(z))", sd.sigmoid(Z) * (1 - sd.sigmoid(Z))),
        ("σ(z)", sd.sigmoid(Z)),
        ("relu(w*x + b)", sd.relu(W * X + B)),
        (
            "ReLU(z) + tanh(z) + exp(z) + log(z) + sqrt(z)",
            sd.relu(Z) + sympy.tanh(Z) + sympy.exp(Z) + sympy.log(Z) + sympy.sqrt(Z),
        ),
        ("softmax([x, y])[1]", sd.softmax([X, Y])[1]),
        ("cross_entropy([x, y, z], [0, 1, 0])", sd.cross_entropy([X, Y, Z], [0, 1, 0])),
        ("max(x, y) - Heaviside(z)", sympy.Max(X, Y) - sympy.Heaviside(Z, 0)),
        ("pi*E", sympy.pi * sympy.E),
        ("x − y", X - Y),  # a Unicode minus
    ],
)
def test_python_syntax(text, expected):
    assert sympy.expand(_parse(text) - expected) == 0


@pytest.mark.parametrize(
    "latex, python",
    [
        (r"\sigma(z)\,(1-\sigma(z))", "sigma(z)*(1 - sigma(z))"),
        (r"\sigma\left(z\right)\left(1-\sigma\left(z\right)\right)", "sigma(z)*(1 - sigma(z))"),
        (r"\sigma'(z)", "sigma(z)*(1 - sigma(z))"),
        (r"2(a-y)x", "2*(a - y)*x"),
        (r"\frac{2}{3}\left(a - y\right) x", "2*(a - y)*x/3"),
        (r"\frac12 x^2", "x**2/2"),
        (r"x^23\,", "x**2*3"),  # a one-character superscript, as TeX reads it
        (r"\operatorname{ReLU}(w x + b)", "relu(w*x + b)"),
        (r"\mathrm{relu}(z) + \tanh z", "relu(z) + tanh(z)"),
        (r"e^{-z} + \exp(z) + \ln z + \log(a)", "exp(-z) + exp(z) + log(z) + log(a)"),
        (r"\sqrt{x} + \sqrt[3]{y}", "sqrt(x) + y**(1/3)"),
        (r"|x| + \lvert y \rvert + \left| z \right|", "abs(x) + abs(y) + abs(z)"),
        (r"a \cdot b \times x", "a*b*x"),
        (r"\sigma^2(z)", "sigma(z)**2"),
        (r"\max(x, y)", "max(x, y)"),
        (r"σ(z)", "sigma(z)"),
    ],
)
def test_latex_means_what_the_python_syntax_means(latex, python):
    assert sympy.expand(_parse(latex) - _parse(python)) == 0


def test_names_resolve_to_the_functions_symbols_and_families():
    x = sympy.symbols("x0:3", real=True)
    W = sympy.Matrix(2, 3, lambda i, j: sympy.Symbol(f"W_{i}{j}", real=True))
    names = namespace_of(sum(x) * sum(W))
    assert _parse("x", names) == sympy.Matrix(x)  # x0, x1, x2 is the column x
    assert _parse("W", names) == W  # W_00 .. W_12 is the 2x3 matrix W
    assert _parse("W*x", names) == W * sympy.Matrix(x)
    assert _parse("x.T", names) == sympy.Matrix(x).T
    assert _parse(r"W^\top", names) == W.T
    assert _parse(r"\mathbf{W}^{T}", names) == W.T
    assert _parse("x0 + W_12", names) == x[0] + W[1, 2]
    assert _parse("W[1, 2]", names) == W[1, 2]
    assert _parse("1 - x", names) == sympy.Matrix([1 - xi for xi in x])  # scalar broadcast
    assert _parse("hadamard(x, x)", names) == sympy.Matrix([xi**2 for xi in x])
    assert _parse(r"x \odot x", names) == sympy.Matrix([xi**2 for xi in x])
    assert _parse("sigma(x)", names) == sympy.Matrix([sd.sigmoid(xi) for xi in x])  # entrywise
    assert _parse("sum(x) + dot(x, x)", names) == sum(x) + sum(xi**2 for xi in x)


def test_latex_spellings_of_symbols_with_tex_names():
    w = sympy.Symbol("w^{(1)}_{11}", real=True)
    x1 = sympy.Symbol("x_1", real=True)
    sigma_b = sympy.Symbol("sigma_B", real=True)
    names = namespace_of(w * x1 * sigma_b)
    assert _parse(r"w^{(1)}_{11} x_1", names) == w * x1
    assert _parse(r"x_{1} + x_1", names) == 2 * x1
    assert _parse("x_1 + w_1_11", names) == x1 + w  # Python names: non-word characters -> _
    assert _parse(r"\sigma_B^2", names) == sigma_b**2  # the symbol squared, not a sigmoid
    assert _parse(r"\sigma(\sigma_B)", names) == sd.sigmoid(sigma_b)
    lr = sympy.Symbol("lr", real=True)
    names = namespace_of(lr * X)
    assert _parse(r"2 lr\, x", names) == 2 * lr * X  # a name of several letters, written glued
    assert _parse(r"\mathrm{lr} x", names) == lr * X


def test_matrices_in_latex_and_python():
    m = sympy.Matrix([[X, Y], [Z, 1]])
    assert _parse(r"\begin{pmatrix} x & y \\ z & 1 \end{pmatrix}") == m
    assert _parse(r"\begin{bmatrix} x & y \\ z & 1 \end{bmatrix}") == m
    assert _parse("Matrix([[x, y], [z, 1]])") == m
    assert _parse("[[x, y], [z, 1]]") == [[X, Y], [Z, 1]]


def test_new_symbols_for_a_functions_own_text():
    expr = parse("w*x + b")  # the default namespace makes unknown names real symbols
    assert {s.name for s in expr.free_symbols} == {"w", "x", "b"}
    assert all(s.is_real for s in expr.free_symbols)


@pytest.mark.parametrize(
    "text, position, words",
    [
        ("x + * y", 4, "not valid Python syntax"),
        ("x + q", 4, "unknown name 'q'"),
        ("xx + 1", 0, "did you mean x"),
        ("sigmoidd(x)", 0, "did you mean sigmoid"),
        ("x.__class__", 2, "attribute .__class__"),
        ("lambda: 1", 0, "a lambda"),
        ("x if y else z", 0, "a conditional"),
        ("'text'", 0, "not a number"),
        ("x(y)", 0, "x is a symbol, not a function"),
        (r"\frac{1}{2", 8, "never closed"),
        (r"x + \hat{y}", 4, "unknown name 'yhat'"),
        (r"x + \int y", 4, r"unsupported LaTeX command \int"),
        (r"\sum_{i} x", 0, r"\sum"),
        ("x\0y", 1, "control character"),
        ("9**9**9", 0, "number too large"),
        (r"2^{2^{2^{100}}}", None, "number too large"),
        ("(" * 61 + "x" + ")" * 61, 60, "nested more than 60"),
        ("x + " * 6000 + "x", MAX_LENGTH, f"at most {MAX_LENGTH}"),
        ("[[x, y], [z]] + 1", None, "rows of equal"),
        ("Matrix([[x, y]]) * Matrix([[x, y]])", None, "cannot multiply a 1x2 matrix by a 1x2"),
        ("", None, "empty"),
    ],
)
def test_bad_text_raises_parse_error_pointing_at_the_position(text, position, words):
    with pytest.raises(ParseError) as raised:
        _parse(text)
    assert isinstance(raised.value, ValueError)
    assert words in str(raised.value)
    if position is not None:
        assert raised.value.position == position
        assert "^" in str(raised.value)  # the caret under the position


# --------------------------------------------------------------------------- hostile text


SENTINEL = "symdl_parse_sentinel"

INJECTIONS = [  # SENTINEL stands for the path of a file no injection may create
    "__import__('os').system('touch SENTINEL')",
    "exec(\"open('SENTINEL', 'w')\")",
    "eval(\"__import__('os')\")",
    "open('SENTINEL', 'w').write('x')",
    "(lambda: __import__('os').system('touch SENTINEL'))()",
    "x.__class__.__base__.__subclasses__()",
    "[c for c in ().__class__.__bases__]",
    "getattr(x, '__class__')",
    "globals()['__builtins__']",
    "sigma.__globals__",
    "x.T.__dict__",
    "breakpoint()",
    "import os",
    "x; import os",
    "__builtins__",
    "f'{x}'",
    "{'a': 1}",
    "x @ __import__('os')",
    "compile('1', 'f', 'eval')",
    "sympify('x')",
    r"\input{SENTINEL}",
    r"\immediate\write18{touch SENTINEL}",
    r"\def\x{1} \x",
    r"\csname x\endcsname",
    r"\operatorname{__import__}(x)",
    r"\mathrm{open}(x)",
]
HUGE = ["9**9**9", "10**10**10", r"9^{9^{9}}", "2**(2**64)", "(1/3)**(10**6)", "1e99999999*x",
        "Matrix([[x]*100]*100)**8", "softmax([x]*5000)", "ones(100, 100)*ones(100, 100)",
        "max(" + "x, " * 500 + "x)", "(x + 1)**(10**9)", "x**(10**100)", "log(0)*x", "x/(x - x)",
        "sqrt(-1)*x", "+".join(f"1/(x + {k})" for k in range(600))]  # fmt: skip
DEEP = [
    "(" * 100_000,
    "x" * 100_000,
    "x+" * 50_000 + "x",
    "(" * 500 + "x" + ")" * 500,
    "-" * 5000 + "x",
    "x" + "**x" * 3000,
    "sigma(" * 70 + "x" + ")" * 70,
    r"\sqrt{" * 70 + "x" + "}" * 70,
    "{" * 300 + "x" + "}" * 300,
    "|" * 3000 + "x" + "|" * 3000,
    r"\frac{" * 40 + "x" + "}{2}" * 40,
    "[" * 70 + "x" + "]" * 70,
    "x+" * 2999 + "x",
]
BROKEN_LATEX = [r"\frac{1}{", r"\sigma(", "}{", r"\left( x", r"x^{", r"\begin{pmatrix} x", r"\end{pmatrix}",
                r"\sqrt[", "x_", r"\\", "&", r"\begin{tabular}{c} x \end{tabular}"]  # fmt: skip

hostile = st.one_of(
    st.sampled_from(INJECTIONS + HUGE + DEEP + BROKEN_LATEX),
    st.tuples(
        st.sampled_from(INJECTIONS + BROKEN_LATEX),
        st.text(alphabet="x+*()[]{}\\^_ 0129.,'\"", max_size=30),
    ).map(lambda pair: pair[1] + pair[0] + pair[1][::-1]),
    st.tuples(st.text(max_size=60), st.integers(0, 60)).map(
        lambda p: p[0][: p[1]] + "\0" + p[0][p[1] :]
    ),
)


def _within(seconds: float, work):
    """Run `work` in a thread; fail if it is still running after `seconds` (a hang guard, not a
    speed assertion: every case takes far less)."""
    outcome = {}

    def run():
        try:
            outcome["value"] = work()
        except BaseException as error:  # noqa: BLE001 - the test inspects whatever happened
            outcome["error"] = error

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "hung"
    return outcome


@pytest.fixture
def no_code_runs(tmp_path, monkeypatch):
    """The sentinel file of the injections stays absent; os.system and subprocess stay uncalled."""
    monkeypatch.chdir(tmp_path)
    calls = []
    monkeypatch.setattr(os, "system", lambda *a: calls.append(a))
    monkeypatch.setattr(subprocess, "Popen", lambda *a, **k: calls.append(a))
    yield calls
    assert not calls
    assert not (tmp_path / SENTINEL).exists()


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(template=hostile)
def test_hostile_text_ends_in_parse_error_or_a_falsy_verdict(template, no_code_runs):
    text = template.replace("SENTINEL", SENTINEL)
    outcome = _within(10, lambda: sd.verify(X**2, X, text))
    if "error" in outcome:
        assert isinstance(outcome["error"], ParseError), repr(outcome["error"])
    else:
        assert not outcome["value"], text[:80]


TOKENS = [
    *"xyz+-*/^()[]{}\\_ 0123.,|&'σ",
    "sigma",
    r"\frac",
    r"\sigma",
    "**",
    "relu",
    r"\left(",
    "e",
]


@settings(max_examples=60, deadline=None)
@given(text=st.lists(st.sampled_from(TOKENS), max_size=30).map("".join))
def test_any_text_gives_a_verdict_or_a_parse_error(text):
    """Fuzzing: never another exception (a crash), whatever the text."""
    outcome = _within(10, lambda: sd.verify(X * Y, [X, Y], text))
    if "error" in outcome:
        assert isinstance(outcome["error"], ParseError), (text, repr(outcome["error"]))


def test_parsing_never_evaluates_code(monkeypatch):
    """eval and exec are never called, and compile only by ast.parse (which builds a tree)."""
    calls = []
    real_compile = builtins.compile

    def compile_ast_only(source, filename, mode, flags=0, *args, **kwargs):
        if not flags & ast.PyCF_ONLY_AST:
            calls.append(("compile", source))
        return real_compile(source, filename, mode, flags, *args, **kwargs)

    monkeypatch.setattr(builtins, "eval", lambda *a, **k: calls.append(("eval", a)))
    monkeypatch.setattr(builtins, "exec", lambda *a, **k: calls.append(("exec", a)))
    monkeypatch.setattr(builtins, "compile", compile_ast_only)
    texts = [t.replace("SENTINEL", SENTINEL) for t in INJECTIONS + HUGE + BROKEN_LATEX]
    texts += ["2*(a - y)*x", r"\sigma(z)(1-\sigma(z))", "softmax([x, y])", r"\frac{1}{2} x^\top"]
    for text in texts:
        try:
            _parse(text)
        except ParseError:
            pass
    monkeypatch.undo()
    assert not calls


# SymPy's own LaTeX parser (lark backend) as an independent reference on formulas it reads
# unambiguously (it returns an ambiguity tree for "\exp(x) - y"); symdl does not parse user
# text with it (see symdl/parsing/latex.py for why).
AGREED_WITH_SYMPY = [
    r"\frac{a}{b}",
    r"x^{2} + 3x",
    r"\sqrt{x + 1}",
    r"\ln(1 + x)",
    r"a \cdot b - \frac{c}{2}",
    r"\left(a+b\right)^{2}",
    r"x_{1} + x_{2}^{3}",
    r"\frac{1}{1 + \exp(-z)}",
    r"2(w x + b - y) x",
    r"\sin(x)\cos(y)",
    r"x^{-1/2}",
]


@pytest.mark.parametrize("text", AGREED_WITH_SYMPY)
def test_latex_agrees_with_sympys_lark_parser(text):
    from sympy.parsing.latex import parse_latex

    reference = parse_latex(text, backend="lark")
    ours = parse(text)
    by_name = {s.name.replace("{", "").replace("}", ""): s for s in ours.free_symbols}
    renamed = reference.xreplace(
        {
            s: by_name.get(s.name.replace("{", "").replace("}", ""), s)
            for s in reference.free_symbols
        }
    )
    assert sympy.simplify(ours - renamed) == 0, (ours, reference)


def test_the_entry_of_a_quadratic_form_with_an_inverse_derives_in_matrix_form():
    """SymPy's [0, 0] of (x-mu)^T S^-1 (x-mu) at 4x4 writes S^-1 out by Gaussian elimination
    with simplification (it hung for minutes); read as its trace it derives at once."""
    x, mu, S = MatrixSymbol("x", 4, 1), MatrixSymbol("mu", 4, 1), MatrixSymbol("S", 4, 4)
    names = namespace_of(Trace(x.T * S * mu))
    rng = np.random.default_rng(0)
    at = {x: rng.normal(size=(4, 1)), mu: rng.normal(size=(4, 1)), S: rng.normal(size=(4, 4))}
    d, inverse = at[x] - at[mu], np.linalg.inv(at[S])
    for text, k in (("((x-mu).T*S.I*(x-mu))[0,0]", 1), ("2*(x-mu).T*S^(-1)*(x-mu) + 1", 2)):
        f = parse(text, names)
        assert f.has(Trace) and not f.has(MatrixElement)
        by_S, by_mu = (evaluate(g, at) for g in sd.grad(f, [S, mu]))
        assert np.allclose(by_S, -k * inverse.T @ d @ d.T @ inverse.T)
        assert np.allclose(by_mu, -k * (inverse + inverse.T) @ d)
    assert parse("(x.T*S*mu)[0,0]", names) == (x.T * S * mu)[0, 0]  # no inverse: its entry
