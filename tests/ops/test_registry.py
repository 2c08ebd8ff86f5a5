"""Each op, loss and optimizer is declared once: the registries feed the exports, the parser,
the layers' activation names and init choice, the CLI's optimizer names; the optimizers' NumPy
updates agree with their SymPy equations; mish, added as one class, works everywhere."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
import sympy

import symdl as sd
import symdl.compile.codegen
import symdl.ops
import symdl.ops.runtime
from symdl.cli.main import main
from symdl.nn.layers import _initialiser, activation_functions
from symdl.ops import activations, declared
from symdl.optim import OptimizerError, get_optimizer, registered
from symdl.optim.rules import _before, _now, t

x = sympy.Symbol("x", real=True)


# ---------------------------------------------------------------- ops


@pytest.mark.parametrize("name", sorted(declared()))
def test_every_declared_op_is_exported(name):
    assert getattr(sd, name) is declared()[name] and name in sd.__all__
    assert getattr(symdl.ops, name) is declared()[name] and name in symdl.ops.__all__


@pytest.mark.parametrize("name", sorted(activations()))
def test_every_activation_is_a_layer_activation_and_a_parser_name(name):
    cls = declared()[name]
    assert activation_functions()[name] is cls
    init = {"he": "_he", "glorot": "_glorot"}[cls.init]
    assert _initialiser(None, name).__name__ == init
    parsed = sympy.sympify(0)
    from symdl.parsing import parse
    from symdl.parsing.namespace import namespace_of

    for spelling in (name, *cls.aliases):
        parsed = parse(f"{spelling}(x)", namespace_of(x))
        assert parsed == cls(x), spelling


def test_activations_are_the_elementwise_ops_of_one_argument():
    assert {"relu", "leaky_relu", "sigmoid", "softplus", "elu", "gelu", "silu", "mish"} <= set(
        activations()
    )
    assert not {"mse", "softmax", "log_softmax", "l1", "cross_entropy"} & set(activations())


def test_the_he_family_says_so_on_its_class():
    he = {name for name, cls in activations().items() if cls.init == "he"}
    assert he == {"relu", "leaky_relu", "elu", "gelu", "silu", "mish"}


def test_shape_error_is_one_class():
    assert sd.nn.ShapeError is symdl.ops.runtime.ShapeError
    assert symdl.compile.codegen.ShapeError is symdl.ops.runtime.ShapeError


# ---------------------------------------------------------------- mish, one class


def test_mish_gradient_against_sympy_diff_of_its_definition():
    gradient = sd.grad(sd.mish(x), x)
    reference = sympy.diff(x * sympy.tanh(sympy.log(1 + sympy.exp(x))), x)
    for value in (-3.0, -0.7, 0.0, 0.4, 2.5):
        got = float(sympy.sympify(gradient).subs(x, value).evalf())
        assert got == pytest.approx(float(reference.subs(x, value).evalf()), rel=1e-12, abs=1e-14)


def test_mish_numpy_form_is_stable_at_extremes():
    f = sympy.lambdify(x, sd.mish(x), modules=["numpy", "scipy"])
    values = f(np.array([-1000.0, -40.0, 0.0, 40.0, 1000.0]))
    assert np.all(np.isfinite(values))
    assert values[-1] == 1000.0 and values[0] == pytest.approx(0.0, abs=1e-300)


def test_mish_in_a_dense_layer_trains_a_step():
    model = sd.nn.Sequential(sd.nn.Dense(4, "mish"), sd.nn.Dense(1), loss="mse", input_shape=3)
    X = np.random.default_rng(0).normal(size=(32, 3))
    y = X[:, 0] - X[:, 1]
    history = sd.train(model, X, y, sd.optim.Adam(lr=0.05), epochs=5, batch_size=32, progress=False)
    assert np.all(np.isfinite(history.loss)) and history.loss[-1] < history.loss[0]
    assert "mish" in model.derive().to_latex()
    assert _initialiser(None, "mish").__name__ == "_he"


def test_mish_in_the_parser_and_in_a_claim():
    from symdl.parsing import parse
    from symdl.parsing.namespace import namespace_of

    assert parse("mish(x)", namespace_of(x)) == sd.mish(x)
    assert parse(r"\operatorname{mish}(x)", namespace_of(x)) == sd.mish(x)
    # a claim about the derivative that uses mish: tanh(softplus(x)) = mish(x)/x
    assert sd.verify(sd.mish(x), x, "mish(x)/x + x*sigmoid(x)*(1 - tanh(softplus(x))**2)")
    latex = (
        r"\frac{\operatorname{mish}(x)}{x} + x \sigma(x) (1 - \tanh^2(\operatorname{softplus}(x)))"
    )
    assert sd.verify(sd.mish(x), x, latex)
    assert not sd.verify(sd.mish(x), x, "mish(x)/x")
    assert r"\operatorname{mish}" in sympy.latex(sd.mish(x))


# ---------------------------------------------------------------- losses


@pytest.mark.parametrize(
    "loss",
    [sd.nn.MSE(), sd.nn.Huber(0.5), sd.nn.Hinge(), sd.nn.CrossEntropy(), sd.nn.BCEWithLogits()],
)
def test_a_models_loss_is_the_declared_op_on_the_matrices(loss):
    Z, Y = sympy.MatrixSymbol("Z", 2, 3), sympy.MatrixSymbol("Y", 2, 3)
    expr = loss.expression(Z, Y)
    assert expr == loss.op(Z, Y, *loss.params(), **loss.options)
    assert loss.name == loss.op.__name__ == expr.name
    assert isinstance(expr, loss.op.matrix_class)


def test_huber_numpy_form_is_written_once_and_agrees_entry_by_entry():
    rng = np.random.default_rng(1)
    P, Y = rng.normal(size=(2, 3)) * 2, rng.normal(size=(2, 3))
    Zs, Ys = sympy.MatrixSymbol("P", 2, 3), sympy.MatrixSymbol("Y", 2, 3)
    matrix = sympy.lambdify([Zs, Ys], sd.huber(Zs, Ys, sympy.Float(0.7)), modules="numpy")
    scalar = sd.huber(list(sympy.Matrix(P)), list(sympy.Matrix(Y)), sympy.Float(0.7))
    assert matrix(P, Y) == pytest.approx(float(scalar), rel=1e-12)
    assert "def _numpycode" not in inspect.getsource(type(sd.huber(Zs, Ys)))


# ---------------------------------------------------------------- optimizers

CONFIGS = {  # options beyond the defaults that change the equations
    "sgd": [{"momentum": 0.9}, {"momentum": 0.9, "nesterov": True, "weight_decay": 0.1}],
    "adam": [{"weight_decay": 0.1}],
    "adamw": [{"weight_decay": 0.0}],
    "adagrad": [{"lr_decay": 0.1, "weight_decay": 0.05, "initial_accumulator_value": 0.3}],
    "rmsprop": [{"centered": True, "momentum": 0.5, "weight_decay": 0.1}],
}


def _cases():
    for name in sorted(registered()):
        for options in [{}, *CONFIGS.get(name, [])]:
            yield pytest.param(name, options, id=f"{name}-{options}")


def _evaluate(optimizer, theta, g, step):
    """theta_t and the buffers after one step, by the SymPy equations, entry by entry."""
    out = {}
    for i in range(theta.size):
        values = {**optimizer.hyperparameters(), t: step}
        values[_before("theta")] = theta.flat[i]
        values[_now("g")] = g.flat[i]
        for kind, store in optimizer.state.items():
            values[_before(kind)] = store["w"].flat[i]
        for eq in optimizer.equations():
            rhs = eq.rhs.xreplace({k: sympy.Float(v, 40) for k, v in values.items()})
            values[eq.lhs] = float(rhs.evalf(40))
            out.setdefault(eq.lhs.name, np.zeros(theta.size))[i] = values[eq.lhs]
    return out


@pytest.mark.parametrize(("name", "options"), list(_cases()))
def test_numpy_update_agrees_with_the_equations(name, options):
    rng = np.random.default_rng(7)
    optimizer = get_optimizer(name)(lr=0.05, **options)
    params = {"w": rng.normal(size=4)}
    optimizer.step(params, {"w": rng.normal(size=4)})  # the buffers now exist
    for step in (2, 3):
        g = rng.normal(size=4)
        expected = _evaluate(optimizer, params["w"].copy(), g, step)
        optimizer.step(params, {"w": g})
        np.testing.assert_allclose(params["w"], expected["theta_t"], rtol=1e-12, atol=1e-14)
        for kind, store in optimizer.state.items():
            np.testing.assert_allclose(store["w"], expected[f"{kind}_t"], rtol=1e-12, atol=1e-14)


def test_every_optimizer_is_registered_by_lowercase_name():
    assert {"sgd", "adam", "adamw", "adagrad", "rmsprop"} <= set(registered())
    assert get_optimizer("Adam") is sd.optim.Adam


def test_a_new_optimizer_joins_the_registry_and_an_unknown_name_lists_the_known():
    class SignSGD(sd.optim.Optimizer):
        def __init__(self, lr=0.01):
            super().__init__(lr)

        def _update(self, name, p, g, lr):
            p -= lr * np.sign(g)

        def equations(self):
            return []

    assert get_optimizer("signsgd") is SignSGD
    with pytest.raises(OptimizerError, match=r"unknown optimizer 'lion'.*adam.*sgd"):
        get_optimizer("lion")
    symdl.optim.optimizers._REGISTERED.pop("signsgd")


def test_cli_unknown_optimizer_is_exit_2_listing_the_known(tmp_path, capsys, monkeypatch):
    (tmp_path / "net.py").write_text(
        "import symdl as sd\nmodel = sd.nn.Sequential(sd.nn.Dense(2), input_shape=2)\n"
    )
    monkeypatch.chdir(tmp_path)
    code = main(["train", "net.py", "--data", "moons", "--optimizer", "lion", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "unknown optimizer 'lion'" in err and "adagrad" in err
