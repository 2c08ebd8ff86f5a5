"""The JAX and PyTorch exports against symdl's NumPy code (1e-12 relative, float64) and against
each library's own autodiff of the exported forward pass (jax.grad, torch.autograd): every
declared op, every matrix op with a rule, every layer kind, and 20 random models.

Skipped, with the reason shown, when jax or torch is missing; CI installs both."""

from __future__ import annotations

import numpy as np
import pytest
import sympy
from sympy import MatrixSymbol

import symdl as sd
from symdl.compile.backends import BackendPrinter, UnsupportedOp, forward_source
from symdl.compile.codegen import CompiledDerivation
from symdl.ops import declared
from symdl.ops.base import MatrixLoss, MatrixOp

from ..ops.test_column_kernels import POOLS
from ..ops.test_linalg import LOSSES as SPECTRAL
from ..ops.test_ops import away_from_kinks, sample

nn = sd.nn
REL, ABS = 1e-12, 1e-13
SCALAR_OPS = sorted(declared())


def _matrix_ops():
    """Matrix ops with a rule and an entrywise form (the spectral ops have their own test
    below, on the losses of tests/ops/test_linalg.py)."""
    found, stack = [], [MatrixOp, MatrixLoss]
    while stack:
        for sub in stack.pop().__subclasses__():
            stack.append(sub)
            if "vjp" in vars(sub) and sub.has_entrywise_form:
                found.append(sub)
    return found


@pytest.fixture(scope="module")
def jax():
    jax = pytest.importorskip("jax", reason="jax is not installed: pip install symdl[export]")
    jax.config.update("jax_enable_x64", True)
    return jax


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch", reason="torch is not installed: pip install symdl[export]")


def close(ours, reference, rel=REL, what=""):
    np.testing.assert_allclose(
        np.asarray(ours, dtype=float),
        np.asarray(reference, dtype=float),
        rtol=rel,
        atol=ABS,
        err_msg=what,
    )


# ---------------------------------------------------------------- derivations: ops


def _scalar_case(name, rng):
    expr, ranges = declared()[name].example()
    wrt = sorted(ranges, key=str)
    points = [p for p in (sample(ranges, rng) for _ in range(20)) if away_from_kinks(expr, p)][:6]
    values = [np.array([p[s] for p in points]) for s in sorted(ranges, key=str)]
    return sd.derive(expr, wrt), values


def _matrix_case(cls, rng):
    f, wrt, ranges = cls.example()
    derivation = sd.derive(f, wrt)
    args = CompiledDerivation(derivation).args
    values = [rng.uniform(*ranges.get(a, (-1.0, 1.0)), size=tuple(map(int, a.shape))) for a in args]
    return derivation, values


def _cases():
    return [("op", n) for n in SCALAR_OPS] + [("matrix", c.__name__) for c in _matrix_ops()]


def _case(kind, name, rng):
    if kind == "op":
        return _scalar_case(name, rng)
    return _matrix_case(next(c for c in _matrix_ops() if c.__name__ == name), rng)


@pytest.mark.parametrize(("kind", "name"), _cases())
def test_jax_export_equals_numpy_and_jax_grad(kind, name, rng, jax):
    derivation, values = _case(kind, name, rng)
    value, grads = derivation.compile()(*values)
    exported = derivation.compile(backend="jax")
    j_value, j_grads = exported(*values)  # jit-compatibility: the model tests jit
    close(j_value, value, what=f"{name}: value")
    for g, ref, w in zip(j_grads, grads, derivation.wrt, strict=True):
        close(g, ref, what=f"{name}: d/d{w}")
    # jax.grad of the exported forward pass, independent of symdl's backward
    forward, _ = forward_source(exported._compiled, type(_printer("jax"))())
    compiled = exported._compiled
    dims = compiled._bind_dimensions(values) if compiled.matrices else []
    args = list(compiled.args)
    for w, g in zip(derivation.wrt, j_grads, strict=True):
        i = args.index(w)

        def loss(x, i=i):
            inputs = [*values[:i], x, *values[i + 1 :]]
            return forward(*inputs, *dims)[0].sum()

        close(g, jax.grad(loss)(jax.numpy.asarray(values[i])), rel=1e-9, what=f"{name}: {w}")


@pytest.mark.parametrize(("kind", "name"), _cases())
def test_torch_export_equals_numpy_and_torch_autograd(kind, name, rng, torch):
    derivation, values = _case(kind, name, rng)
    value, grads = derivation.compile()(*values)
    exported = derivation.compile(backend="torch")
    tensors = [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in values]
    args = list(exported.args)
    for t, a in zip(tensors, args, strict=True):
        t.requires_grad_(a in derivation.wrt)
    out = exported(*tensors)
    out.sum().backward()
    close(out.detach(), value, what=f"{name}: value")
    for w, ref in zip(derivation.wrt, grads, strict=True):
        close(tensors[args.index(w)].grad, ref, what=f"{name}: d/d{w}")
    # torch.autograd through the exported forward pass
    forward, _ = forward_source(exported._compiled, type(_printer("torch"))())
    compiled = exported._compiled
    dims = compiled._bind_dimensions(values) if compiled.matrices else []
    fresh = [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in values]
    from symdl.compile.torch_numpy import floats

    with floats(torch.float64):
        forward(*fresh, *dims)[0].sum().backward()
    for w in derivation.wrt:
        i = args.index(w)
        close(tensors[i].grad, fresh[i].grad, rel=1e-9, what=f"{name}: autograd d/d{w}")


@pytest.mark.parametrize("name", list(SPECTRAL))
def test_spectral_exports_equal_numpy_and_autodiff(name, jax, torch):
    """Eigenvalues, eigenvectors, singular values, the nuclear norm and log-determinants through
    jax.numpy.linalg and torch.linalg: symdl's gradient in each export equals NumPy's, and each
    library's own differentiation of the exported forward pass (its eigh/svd rules)."""
    from symdl.compile.torch_numpy import floats

    loss, M = SPECTRAL[name]
    derivation = sd.derive(loss, [M])
    compiled = CompiledDerivation(derivation)
    rng = np.random.default_rng(3)
    values = [rng.normal(size=tuple(map(int, a.shape))) for a in compiled.args]
    dims = compiled._bind_dimensions(values)
    i = list(compiled.args).index(M)
    value, (grad,) = derivation.compile()(*values)
    j_value, (j_grad,) = derivation.compile(backend="jax")(*values)
    tensors = [torch.tensor(v, requires_grad=(k == i)) for k, v in enumerate(values)]
    t_value = derivation.compile(backend="torch")(*tensors)
    t_value.backward()
    # LAPACK's eigh/svd inside each library: agreement to rounding, not bit for bit
    for ours, what in ((j_value, "JAX"), (t_value.detach(), "torch")):
        close(ours, value, rel=1e-10, what=f"{name}: {what} value")
    for ours, what in ((j_grad, "JAX"), (tensors[i].grad, "torch")):
        close(ours, grad, rel=1e-10, what=f"{name}: {what} d/d{M}")

    forward, _ = forward_source(compiled, _printer("jax"))

    def jax_loss(x):
        return forward(*values[:i], x, *values[i + 1 :], *dims)[0].sum()

    close(j_grad, jax.grad(jax_loss)(jax.numpy.asarray(values[i])), rel=1e-9, what=name)
    forward, _ = forward_source(compiled, _printer("torch"))
    fresh = [torch.tensor(v, requires_grad=(k == i)) for k, v in enumerate(values)]
    with floats(torch.float64):
        forward(*fresh, *dims)[0].sum().backward()
    close(tensors[i].grad, fresh[i].grad, rel=1e-9, what=f"{name}: torch.autograd")


@pytest.mark.parametrize("image, window, stride", POOLS)
def test_max_pool_kernels_route_ties_as_numpy(image, window, stride, jax, torch):
    """Ties (small integers) in tiling, overlapping, spaced and 1-D windows: each engine's
    max-pooling gradient routes to the first maximum in row-major order, as symdl.ops.runtime."""
    from symdl.compile import jax_kernels, torch_kernels
    from symdl.ops import runtime

    rng = np.random.default_rng(1)
    x = rng.integers(0, 3, size=(4, *image)).astype(float)
    g = rng.normal(size=runtime.max_pool2d(x, window, stride).shape)
    expected = runtime.max_pool2d_grad(g, x, window, stride)
    got = torch_kernels.max_pool2d_grad(torch.tensor(g), torch.tensor(x), window, stride)
    close(got, expected, what="torch")  # overlapping windows: sums in another order
    if stride < window:  # JAX's kernel (unchanged, slow eagerly) on the overlapping windows
        got = jax_kernels.max_pool2d_grad(
            jax.numpy.asarray(g), jax.numpy.asarray(x), window, stride
        )
        np.testing.assert_array_equal(np.asarray(got), expected)


def test_torch_max_pool_gradient_reuses_indices_of_the_same_input_only(torch):
    """torch's max-pooling gradient takes the forward pass's indices only when called on the
    very tensor pooled, unchanged since: a tensor changed in place, or another tensor of the
    same shape, is pooled again."""
    from symdl.compile import torch_kernels
    from symdl.ops import runtime

    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(2, 3, 2, 6, 6))
    g = rng.normal(size=(3, 2, 3, 3))
    x = torch.tensor(a)
    torch_kernels.max_pool2d(x, 2)
    close(torch_kernels.max_pool2d_grad(torch.tensor(g), x, 2), runtime.max_pool2d_grad(g, a, 2))
    close(
        torch_kernels.max_pool2d_grad(torch.tensor(g), torch.tensor(b), 2),
        runtime.max_pool2d_grad(g, b, 2),
        what="another tensor",
    )
    torch_kernels.max_pool2d(x, 2)
    x.copy_(torch.tensor(b))  # changed in place after pooling
    close(
        torch_kernels.max_pool2d_grad(torch.tensor(g), x, 2),
        runtime.max_pool2d_grad(g, b, 2),
        what="changed in place",
    )


def _printer(backend) -> BackendPrinter:
    if backend == "jax":
        from symdl.compile.jax_backend import JaxPrinter

        return JaxPrinter()
    from symdl.compile.torch_backend import TorchPrinter

    return TorchPrinter()


# ---------------------------------------------------------------- models: layers, random


def _layer_models():
    acts = ["relu", "leaky_relu", "sigmoid", "tanh", "softplus", "elu", "gelu", "silu", "linear"]
    models = {
        f"dense_{a}": (nn.Sequential(nn.Dense(4, a), nn.Dense(3), input_shape=5), 5) for a in acts
    }
    image = (2, 6, 6)
    models["conv"] = (
        nn.Sequential(
            nn.Conv2d(3, 3, stride=2, padding=1, activation="relu"),
            nn.Flatten(),
            nn.Dense(3),
            input_shape=image,
        ),
        image,
    )
    models["max_pool"] = (
        nn.Sequential(
            nn.Conv2d(2, 3), nn.MaxPool2d(2), nn.Flatten(), nn.Dense(3), input_shape=image
        ),
        image,
    )
    models["avg_pool"] = (
        nn.Sequential(nn.AvgPool2d(2), nn.Flatten(), nn.Dense(3), input_shape=image),
        image,
    )
    models["batch_norm"] = (
        nn.Sequential(
            nn.Dense(4), nn.BatchNorm(), nn.Activation("tanh"), nn.Dense(3), input_shape=5
        ),
        5,
    )
    models["layer_norm"] = (
        nn.Sequential(nn.Dense(4), nn.LayerNorm(), nn.Dense(3), input_shape=5),
        5,
    )
    return models


LAYERS = _layer_models()


def _random_model(seed):
    rng = np.random.default_rng(seed)
    acts = ["relu", "sigmoid", "tanh", "softplus", "elu", "gelu", "silu", "leaky_relu"]
    features = int(rng.integers(2, 6))
    layers = [
        nn.Dense(int(rng.integers(2, 6)), str(rng.choice(acts)))
        for _ in range(int(rng.integers(1, 4)))
    ]
    loss = str(rng.choice(["cross_entropy", "mse", "huber", "binary_cross_entropy_with_logits"]))
    outputs = int(rng.integers(2, 4))
    return nn.Sequential(*layers, nn.Dense(outputs), loss=loss, input_shape=features), features


def _batch(model, shape, rng):
    X = rng.normal(size=(7, *np.atleast_1d(shape)))
    outputs = model.outputs
    if model.loss.name == "cross_entropy":
        y = rng.integers(0, outputs, size=7)
    elif model.loss.name == "binary_cross_entropy_with_logits":
        y = rng.integers(0, 2, size=(7, outputs)).astype(float)
    else:
        y = rng.normal(size=(7, outputs))
    return X, y


def _models():
    cases = {name: (lambda m=m: m) for name, m in LAYERS.items()}
    cases |= {f"random_{s}": (lambda s=s: _random_model(s)) for s in range(20)}
    return cases


MODELS = _models()


@pytest.mark.parametrize("name", list(MODELS))
def test_exported_models_equal_numpy_and_autodiff(name, jax, torch):
    from symdl.compile.jax_backend import export_model
    from symdl.compile.torch_backend import export_module

    model, shape = MODELS[name]()
    rng = np.random.default_rng(7)
    compiled = model.compile()
    params = model.init(seed=3)
    X, y = _batch(model, shape, rng)
    loss, grads = compiled.loss_and_grads(params, X, y)

    step = export_model(compiled)
    Y = step.targets(y)
    j_loss, j_grads = jax.jit(step.loss_and_grads)(step.params(params), X, Y)
    reference = jax.grad(step.loss)(step.params(params), X, Y)
    close(j_loss, loss, what=f"{name}: JAX loss")
    module = export_module(compiled, params)
    t_loss = module(X, module.targets(y))
    t_loss.backward()
    close(t_loss.detach(), loss, what=f"{name}: torch loss")
    torch_params = module.params()
    ours = {n: p.grad.clone() for n, p in torch_params.items()}
    module.zero_grad()
    module.reference_loss(X, module.targets(y)).backward()
    for n in grads:
        close(j_grads[n], grads[n], what=f"{name}: JAX {n}")
        close(ours[n], grads[n], what=f"{name}: torch {n}")
        close(j_grads[n], reference[n], rel=1e-9, what=f"{name}: jax.grad {n}")
        close(ours[n], torch_params[n].grad, rel=1e-9, what=f"{name}: torch.autograd {n}")


def test_float32_exports(jax, torch):
    from symdl.compile.jax_backend import export_model
    from symdl.compile.torch_backend import export_module

    model, shape = LAYERS["conv"]
    compiled = model.compile()
    params = model.init(seed=1)
    X, y = _batch(model, shape, np.random.default_rng(2))
    loss, grads = compiled.loss_and_grads(params, X, y)
    step = export_model(compiled, dtype="float32")
    j_loss, j_grads = jax.jit(step.loss_and_grads)(step.params(params), X, step.targets(y))
    module = export_module(compiled, params, dtype=torch.float32)
    t_loss = module(X, module.targets(y))
    t_loss.backward()
    assert j_loss.dtype == np.float32 and t_loss.dtype == torch.float32
    close(j_loss, loss, rel=1e-5)
    close(t_loss.detach(), loss, rel=1e-5)
    for n, p in module.params().items():
        assert j_grads[n].dtype == np.float32 and p.grad.dtype == torch.float32
        np.testing.assert_allclose(j_grads[n], grads[n], rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(p.grad.numpy(), grads[n], rtol=1e-4, atol=1e-5)


def test_an_op_a_backend_lacks_is_named(jax):
    x = sympy.Symbol("x", real=True)
    from symdl.compile.jax_backend import to_jax

    with pytest.raises(UnsupportedOp, match=r"bessely: .*scipy.special.yv.*JAX") as caught:
        to_jax(sd.derive(sympy.bessely(2, x), [x]))
    # one class for refusals to differentiate and to export; old except clauses still catch it
    assert UnsupportedOp is sd.UnsupportedOp
    assert isinstance(caught.value, NotImplementedError | TypeError)


def test_dropout_in_training_is_refused_at_export_naming_the_layer(jax, torch):
    from symdl.compile.jax_backend import export_model
    from symdl.compile.torch_backend import export_module

    model = nn.Sequential(nn.Dense(4, "relu"), nn.Dropout(0.5), nn.Dense(3), input_shape=5)
    compiled = model.compile()
    refusal = r"dropout_1 \(Dropout\): its input 'mask' is drawn at random.*train=False"
    with pytest.raises(UnsupportedOp, match=refusal):
        export_model(compiled)
    with pytest.raises(UnsupportedOp, match=refusal):
        export_module(compiled)
    # the inference loss (dropout off) exports, and equals symdl's
    params = model.init(seed=1)
    X, y = _batch(model, 5, np.random.default_rng(4))
    step = export_model(compiled, train=False)
    j_loss = step.loss(step.params(params), X, step.targets(y))
    close(j_loss, compiled.loss(params, X, y), what="dropout off: JAX loss")


def test_torch_backward_scales_and_can_run_twice(torch):
    """A scaled loss scales symdl's gradient; a retained graph's second backward recomputes
    the gradients the first handed to autograd, and they accumulate."""
    from symdl.compile.torch_backend import export_module

    model, shape = LAYERS["dense_tanh"]
    compiled, params = model.compile(), model.init(seed=2)
    X, y = _batch(model, shape, np.random.default_rng(5))
    _, grads = compiled.loss_and_grads(params, X, y)
    module = export_module(compiled, params)
    loss = module(X, module.targets(y))
    (2 * loss).backward(retain_graph=True)
    loss.backward()
    for n, p in module.params().items():
        close(p.grad, 3 * grads[n], what=n)


def test_torch_module_trains_as_a_pytorch_module(torch):
    """PyTorch's semantics around symdl's backward: gradients accumulate over two backward
    calls until zero_grad (in place with set_to_none=False), an optimizer's step updates the
    parameters the next forward reads, and a parameter replaced by assignment is used."""
    from symdl.compile.torch_backend import export_module

    model, shape = LAYERS["conv"]
    compiled, params = model.compile(), model.init(seed=4)
    X, y = _batch(model, shape, np.random.default_rng(6))
    _, grads = compiled.loss_and_grads(params, X, y)
    module = export_module(compiled, params)
    Y = module.targets(y)
    module(X, Y).backward()
    module(X, Y).backward()
    for n, p in module.params().items():
        assert p.grad.shape == p.shape == grads[n].shape
        close(p.grad, 2 * grads[n], what=f"accumulated {n}")
    kept = {n: p.grad for n, p in module.params().items()}
    module.zero_grad(set_to_none=False)
    for n, p in module.params().items():
        assert p.grad is kept[n] and not p.grad.any()
    module.zero_grad()
    assert all(p.grad is None for p in module.params().values())

    optimizer = torch.optim.SGD(module.parameters(), lr=0.1)
    assert len(optimizer.param_groups[0]["params"]) == len(grads)
    module(X, Y).backward()
    optimizer.step()
    stepped = {n: params[n] - 0.1 * grads[n] for n in grads}
    for n, p in module.params().items():
        close(p.detach(), stepped[n], what=f"after optimizer.step {n}")
    loss, grads = compiled.loss_and_grads(stepped, X, y)
    module.zero_grad()
    t_loss = module(X, Y)
    t_loss.backward()
    close(t_loss.detach(), loss, what="loss after the step")
    for n, p in module.params().items():
        close(p.grad, grads[n], what=f"gradient after the step {n}")

    name = next(iter(grads))
    layer, key = name.rsplit(".", 1)
    module.layers[layer][key] = torch.nn.Parameter(torch.zeros_like(module.params()[name]))
    zeroed = dict(stepped) | {name: np.zeros_like(stepped[name])}
    close(module(X, Y).detach(), compiled.loss(zeroed, X, y), what="a replaced parameter")


def test_torch_module_gradient_is_differentiable_once(torch):
    """symdl's gradient is computed without a graph: differentiating it again (create_graph)
    is an error, not a silent zero."""
    from symdl.compile.torch_backend import export_module

    model, shape = LAYERS["dense_tanh"]
    module = export_module(model.compile(), model.init(seed=2))
    X, y = _batch(model, shape, np.random.default_rng(5))
    parameters = list(module.params().values())
    loss = module(X, module.targets(y))
    grads = torch.autograd.grad(loss, parameters, create_graph=True, retain_graph=True)
    with pytest.raises(RuntimeError, match="does not require grad"):
        torch.autograd.grad(grads[0].sum(), parameters)
    upstream = torch.ones((), dtype=loss.dtype, requires_grad=True)
    grads = torch.autograd.grad(loss, parameters, upstream, create_graph=True)
    with pytest.raises(RuntimeError, match="differentiate twice"):
        grads[0].sum().backward()


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_kernels_module_not_yet_imported_is_found(backend, monkeypatch, jax, torch):
    """A conv model exported first in a fresh process: the kernels module is not yet an
    attribute of symdl.compile, and the printer must import it rather than refuse conv2d."""
    import sys

    import symdl.compile as package

    printer = _printer(backend)
    kernels = printer.kernels
    monkeypatch.delattr(package, kernels.rsplit(".", 1)[1], raising=False)
    monkeypatch.delitem(sys.modules, kernels, raising=False)
    assert printer._module_format("symdl.ops.runtime") == kernels  # as conv2d prints it


def test_input_outside_wrt_that_requires_grad_is_an_error(torch):
    from symdl.compile.torch_backend import InputNotDifferentiated, to_torch

    W, X = MatrixSymbol("W", 2, 3), MatrixSymbol("X", 3, 4)
    f = to_torch(sd.derive(sd.mse(W * X, sympy.ZeroMatrix(2, 4)), [W]))
    tensors = [torch.ones(s, dtype=torch.float64, requires_grad=True) for s in ((2, 3), (3, 4))]
    with pytest.raises(InputNotDifferentiated, match="X requires grad"):
        f(*tensors)


def test_torch_module_inference_loss_reads_running_statistics(torch):
    """train=False: batch normalisation's running statistics (extra inputs) and a constant
    reach the generated function; loss and gradients equal symdl's and torch.autograd's."""
    from symdl.compile.torch_backend import export_module

    model, shape = LAYERS["batch_norm"]
    compiled, params = model.compile(), model.init(seed=1)
    X, y = _batch(model, shape, np.random.default_rng(8))
    module = export_module(compiled, params, train=False)
    loss = module(X, module.targets(y))
    loss.backward()
    close(loss.detach(), compiled.loss(params, X, y), what="inference loss")
    ours = {n: p.grad.clone() for n, p in module.params().items()}
    module.zero_grad()
    module.reference_loss(X, module.targets(y)).backward()
    for n, p in module.params().items():
        close(ours[n], p.grad, rel=1e-9, what=f"torch.autograd {n}")


def test_module_batch_that_requires_grad_is_an_error(torch):
    from symdl.compile.torch_backend import InputNotDifferentiated, export_module

    model, shape = LAYERS["dense_tanh"]
    module = export_module(model.compile(), model.init(seed=2))
    X, y = _batch(model, shape, np.random.default_rng(5))
    X = torch.tensor(X, requires_grad=True)
    with pytest.raises(InputNotDifferentiated, match="input X requires grad.*detach it"):
        module(X, module.targets(y))


def test_missing_backend_names_the_extra(monkeypatch):
    import sys

    from symdl.compile.backends import MissingBackend, require

    monkeypatch.setitem(sys.modules, "jax", None)
    with pytest.raises(MissingBackend, match=r"pip install symdl\[export\]"):
        require("jax")


# ---------------------------------------------------------------- graph models


def _graph_two_inputs():
    """Two inputs through one shared layer, its output fanned out to a concat and a sum, and
    two outputs with a loss each."""
    a, b = nn.Input(3), nn.Input(3)
    shared = nn.Dense(4, "tanh")
    ha, hb = shared(a), shared(b)
    h = nn.Dense(4, "sigmoid")(nn.concat(ha, hb))
    classes = nn.Dense(3)(nn.add(h, ha))
    value = nn.Dense(1)(nn.multiply(h, hb))
    model = nn.Model([a, b], [classes, value], loss=["cross_entropy", "mse"], loss_weights=[1, 0.5])
    rng = np.random.default_rng(11)
    X = [rng.normal(size=(6, 3)), rng.normal(size=(6, 3))]
    return model, X, (rng.integers(0, 3, 6), rng.normal(size=6))


def _graph_one_input():
    """One input fanned out into a skip, a layer norm and a concat; one output."""
    x = nn.Input(4)
    h = nn.Dense(5, "gelu")(x)
    g = nn.LayerNorm()(nn.Dense(5, "softplus")(h))
    out = nn.Dense(2)(nn.concat(nn.add(h, g), x))
    model = nn.Model(x, out, loss="binary_cross_entropy_with_logits")
    rng = np.random.default_rng(12)
    return model, rng.normal(size=(6, 4)), rng.integers(0, 2, size=(6, 2)).astype(float)


def _graph_masked_attention():
    """Self-attention with a key-padding mask fed as the model's second input."""
    x, padding = nn.Input((3, 4)), nn.Input(3)
    model = nn.Model([x, padding], nn.Flatten()(nn.SelfAttention(2)(x, padding)), loss="mse")
    rng = np.random.default_rng(13)
    pad = np.zeros((5, 3), bool)
    pad[::2, -1] = True
    return model, (rng.normal(size=(5, 3, 4)), pad), rng.normal(size=(5, 12))


def _graph_transformer():
    """Positions, causal self-attention, token layers and cross-attention with a fixed mask to
    a second sequence: constants fed as extra inputs, tokens as columns, per-example products."""
    x, memory = nn.Input((3, 4)), nn.Input((2, 5))
    h = nn.SelfAttention(2, causal=True)(nn.PositionalEncoding()(x))
    h = nn.TokenLayerNorm()(nn.TokenDense(4, "relu")(h))
    fixed = np.array([[False, True], [False, False], [True, False]])
    h = nn.CrossAttention(2, mask=fixed)(h, memory)
    model = nn.Model([x, memory], nn.Flatten()(h), loss="mse")
    rng = np.random.default_rng(14)
    inputs = (rng.normal(size=(5, 3, 4)), rng.normal(size=(5, 2, 5)))
    return model, inputs, rng.normal(size=(5, 12))


GRAPHS = {
    "two_inputs_shared": _graph_two_inputs,
    "one_input_fan_out": _graph_one_input,
    "attention_padding_mask": _graph_masked_attention,
    "transformer_cross_attention": _graph_transformer,
}


@pytest.mark.parametrize("name", list(GRAPHS))
def test_exported_graph_models_equal_numpy_and_autodiff(name, jax, torch):
    """A graph model (fan-out, concat, a shared layer, two inputs and two outputs) exported to
    JAX and PyTorch: loss and gradients equal symdl's NumPy step to 1e-12 (float64) and each
    library's own differentiation of the exported forward pass."""
    from symdl.compile.jax_backend import export_model
    from symdl.compile.torch_backend import export_module

    model, X, y = GRAPHS[name]()
    compiled = model.compile()
    params = model.init(seed=3)
    loss, grads = compiled.loss_and_grads(params, X, y)

    step = export_model(compiled)
    Y = step.targets(y)
    j_loss, j_grads = jax.jit(step.loss_and_grads)(step.params(params), X, Y)
    reference = jax.grad(step.loss)(step.params(params), X, Y)
    close(j_loss, loss, what=f"{name}: JAX loss")
    module = export_module(compiled, params)
    t_loss = module(X, module.targets(y))
    t_loss.backward()
    close(t_loss.detach(), loss, what=f"{name}: torch loss")
    torch_params = module.params()
    ours = {n: p.grad.clone() for n, p in torch_params.items()}
    module.zero_grad()
    module.reference_loss(X, module.targets(y)).backward()
    assert set(grads) == set(ours) == set(j_grads)
    for n in grads:
        close(j_grads[n], grads[n], what=f"{name}: JAX {n}")
        close(ours[n], grads[n], what=f"{name}: torch {n}")
        close(j_grads[n], reference[n], rel=1e-9, what=f"{name}: jax.grad {n}")
        close(ours[n], torch_params[n].grad, rel=1e-9, what=f"{name}: torch.autograd {n}")


def test_exported_graph_model_takes_packed_inputs(jax, torch):
    """`model.pack(Xa, Xb)`, the one array sd.train batches, is split again by the export."""
    from symdl.compile.jax_backend import export_model
    from symdl.compile.torch_backend import export_module

    model, X, y = _graph_two_inputs()
    compiled, params = model.compile(), model.init(seed=4)
    loss = compiled.loss_and_grads(params, X, y)[0]
    step = export_model(compiled)
    packed = model.pack(*X)
    close(step.loss_and_grads(step.params(params), packed, step.targets(y))[0], loss)
    module = export_module(compiled, params)
    close(module(packed, module.targets(y)).detach(), loss)
    with pytest.raises(ValueError, match=r"X: 1 arrays for 2 model inputs"):
        step.loss_and_grads(step.params(params), [X[0]], step.targets(y))


def test_exported_graph_model_in_float32(jax, torch):
    from symdl.compile.jax_backend import export_model
    from symdl.compile.torch_backend import export_module

    model, X, y = _graph_two_inputs()
    compiled, params = model.compile(), model.init(seed=1)
    loss, grads = compiled.loss_and_grads(params, X, y)
    step = export_model(compiled, dtype="float32")
    j_loss, j_grads = jax.jit(step.loss_and_grads)(step.params(params), X, step.targets(y))
    module = export_module(compiled, params, dtype=torch.float32)
    t_loss = module(X, module.targets(y))
    t_loss.backward()
    assert j_loss.dtype == np.float32 and t_loss.dtype == torch.float32
    close(j_loss, loss, rel=1e-5)
    close(t_loss.detach(), loss, rel=1e-5)
    for n, p in module.params().items():
        assert j_grads[n].dtype == np.float32 and p.grad.dtype == torch.float32
        np.testing.assert_allclose(j_grads[n], grads[n], rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(p.grad.numpy(), grads[n], rtol=1e-4, atol=1e-5)
