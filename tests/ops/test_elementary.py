"""symdl.ops.elementary: every symdl op replaced by its elementary definition, nested ops too,
each shared subexpression once; SymPy's rewrite("elementary") agrees."""

import sympy
from sympy import MatrixSymbol

import symdl as sd
from symdl.ops import Op, elementary
from symdl.ops.losses import MatMSE

x, y = sympy.symbols("x y", real=True)


def _has_op(expr) -> bool:
    return any(isinstance(e, Op) for e in sympy.preorder_traversal(expr))


def test_nested_ops_are_expanded_to_the_bottom():
    expr = sd.sigmoid(sd.softplus(sd.relu(x) * y)) + sd.relu(x)
    got = elementary(expr)
    assert not _has_op(got)
    r = sympy.Max(0, x)  # relu's definition
    expected = 1 / (1 + sympy.exp(-sympy.log(1 + sympy.exp(r * y)))) + r
    assert sympy.simplify(got - expected) == 0
    point = {x: 0.7, y: -1.3}
    assert abs(float(got.subs(point)) - float(expr.evalf(30, subs=point))) < 1e-14


class _SoftRelu(Op):
    """An op of this test whose definition holds two symdl ops (no op of symdl's has one)."""

    nargs = 1

    def definition(self):
        return sd.sigmoid(sd.relu(self.args[0]))


def test_an_op_whose_definition_holds_ops_is_expanded_too():
    """SymPy's rewrite("elementary") went one level (sigmoid(relu(x)) kept relu); both now go
    all the way and agree."""
    expr = _SoftRelu(x * y) + sd.log_softmax([x, y])[0] * sd.gelu(x)
    got = elementary(expr)
    assert not _has_op(got)
    r = sympy.Max(0, x * y)
    expected = 1 / (1 + sympy.exp(-r)) + (x - sympy.log(sympy.exp(x) + sympy.exp(y))) * (
        x * (1 + sympy.erf(x / sympy.sqrt(2))) / 2
    )
    assert sympy.simplify(got - expected) == 0
    rewritten = expr.rewrite("elementary")
    assert not _has_op(rewritten)
    assert sympy.simplify(got - rewritten) == 0
    assert not _has_op(sd.sigmoid(sd.relu(x)).rewrite("elementary"))


def test_a_shared_subexpression_is_expanded_once(monkeypatch):
    """A chain where each level uses the one below twice: 2^30 paths as a tree, 30 nodes as a
    graph; each op's definition is asked for once."""
    calls = []
    original = type(sd.sigmoid(x)).definition

    def counting(self):
        calls.append(self)
        return original(self)

    monkeypatch.setattr(type(sd.sigmoid(x)), "definition", counting)
    expr = x
    for _ in range(30):
        expr = sd.sigmoid(expr) * sd.sigmoid(expr) + y
    got = elementary(expr)
    assert not _has_op(got)
    assert len(calls) == 30


def test_matrices_keep_their_type_and_matrix_ops_stay():
    p = elementary(sd.softmax([x, y]))
    assert isinstance(p, sympy.MutableDenseMatrix) and not _has_op(p)
    assert sympy.simplify(sum(p) - 1) == 0
    P, Y = MatrixSymbol("P", 2, 2), MatrixSymbol("Y", 2, 2)
    loss = MatMSE(P, Y) + x
    assert elementary(loss) == loss  # no definition without sizes; explicit.expand writes it out
    relu_P = elementary(sd.relu(P))  # entry by entry: the entry's function expanded
    assert not _has_op(relu_P)
    assert relu_P.as_explicit() == P.as_explicit().applyfunc(lambda e: sympy.Max(0, e))
