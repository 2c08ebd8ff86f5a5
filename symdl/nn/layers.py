r"""Layers: each builds its part of the model's matrix expression and owns its parameters.

The batch is a matrix with one example per column (the textbook convention):
$Z^{(l)} = W^{(l)} A^{(l-1)} + b^{(l)} \mathbf{1}^\top$. Images are columns too, flattened
channel by channel, so Flatten changes nothing but the shape a layer reports.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import sympy
from sympy import MatrixSymbol, OneMatrix

from symdl.core.matrices import elementwise, hadamard, matadd, matmul, scale
from symdl.ops import Geometry, activations, avg_pool2d, conv2d, max_pool2d
from symdl.ops.losses import MatL1, MatL2
from symdl.ops.runtime import ShapeError

Shape = tuple[int, ...]  # the shape of one example: (features,), (C, L) or (C, H, W)


def _tanh(Z):
    return elementwise(sympy.tanh, Z)


def _identity(Z):
    return Z


def activation_functions() -> dict[str, Callable]:
    """Every activation name a layer accepts: each declared elementwise op of one argument
    (`symdl.ops.activations()`, so an op declared later joins), tanh and linear."""
    return {**activations(), "tanh": _tanh, "linear": _identity}


ACTIVATIONS: dict[str, Callable] = activation_functions()  # as of import


def get_activation(name: str | Callable | None) -> Callable:
    """The matrix function for an activation name (or a callable applied to a matrix)."""
    if name is None:
        return _identity
    if callable(name):
        return name
    known = activation_functions()
    if name not in known:
        raise ValueError(f"activation {name!r} is not one of {', '.join(sorted(known))}")
    return known[name]


@dataclass(frozen=True)
class Owned:
    """An expression a layer declared while building the model: an extra input it needs fed
    (`expr` a symbol) or a value it wants back after a training step."""

    layer: Layer
    key: str  # the layer's short name for it: "mask", "mean"
    expr: sympy.Basic


@dataclass
class Context:
    """What a layer needs while the model expression is built, and what it declares there."""

    index: int  # the layer's number, for names like W^{(2)}
    batch: sympy.Symbol  # the symbolic batch size N
    train: bool  # training (dropout on, batch statistics) or inference
    inputs: dict[str, Owned] = field(default_factory=dict)  # extra inputs by symbol name
    outputs: list[Owned] = field(default_factory=list)  # values wanted after a training step
    names: dict = field(default_factory=dict)  # textbook names of intermediates: mu^{(2)}
    constants: dict = field(default_factory=dict)  # symbols with a fixed value: epsilon
    penalties: list = field(default_factory=list)
    apply: Callable | None = None  # (layers, A) -> output: a block runs its inner layers
    # the expression is compiled, not displayed: a recurrent layer may be one op that loops
    # over time (symdl.nn.scan) rather than unrolled; the layers that do are listed in looped
    loops: bool = False
    looped: list = field(default_factory=list)

    def extra_input(self, layer: Layer, key: str, symbol: MatrixSymbol) -> MatrixSymbol:
        """Declare `symbol` an input that `layer` needs fed at every call (a dropout mask, a
        running statistic); the compiled model asks `layer.extra_input_value(key, ...)` for
        its value. Returns the symbol."""
        if symbol.name in self.inputs:
            raise ValueError(f"{layer.name}: the extra input {symbol.name} is declared twice")
        self.inputs[symbol.name] = Owned(layer, key, symbol)
        return symbol

    def state_update(self, layer: Layer, key: str, expr) -> None:
        """Declare that `layer` wants the value of `expr` (computed by the training step, e.g.
        a batch mean) after each training step, passed to `layer.update_state` as `key`.
        `expr` must be a subexpression of the loss, which the training step computes."""
        self.outputs.append(Owned(layer, key, expr))


class Layer:
    """A layer: `build` checks and records shapes; `forward` returns the matrix expression."""

    kind = "layer"
    has_activation_output = False
    layers: Sequence[Layer] = ()  # the inner layers of a block

    def __init__(self, name: str | None = None):
        self.name = name
        self.given_name = name  # a model names the others ("dense_2") each time it is built
        self.index: int | None = None  # the layer's number l in W^{(l)}, set by the model
        self.input_shape: Shape | None = None
        self.output_shape: Shape | None = None

    def build(self, input_shape: Shape) -> Shape:
        """Record the shape of one input example; returns the shape of one output example."""
        self.input_shape = tuple(input_shape)
        self.output_shape = self._output_shape(self.input_shape)
        return self.output_shape

    def _output_shape(self, input_shape: Shape) -> Shape:
        return input_shape

    def __call__(self, *inputs):
        """The layer applied to graph tensors (`symdl.nn.Input`, see symdl.nn.graph)."""
        if not inputs or not hasattr(inputs[0], "applied"):
            raise TypeError(f"{type(self).__name__}: call a layer on graph tensors (nn.Input)")
        return inputs[0].applied(self, inputs)

    def parameters(self, index: int) -> dict[str, MatrixSymbol]:
        """The layer's trainable matrices, keyed by short name ("W", "b", ...)."""
        return {}

    def natural_shapes(self) -> dict[str, tuple]:
        """The shape of each parameter as users hold it (a kernel is (F, C, kh, kw))."""
        return {}

    def init(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Initial values of the parameters, keyed like `parameters`."""
        return {}

    def state(self) -> dict[str, np.ndarray]:
        """Non-trainable arrays (running statistics), their initial values."""
        return {}

    def forward(self, A, params: dict, context: Context):
        """`(Z, A_out)`: the pre-activation (or None) and the output, matrix expressions of
        the input `A` (features x N) and the `params` symbols."""
        raise TypeError(f"{type(self).__name__} does not define forward")

    # what a layer adds to each call of the compiled model --------------------------------
    # In `forward` a layer declares symbols it needs fed (`context.extra_input`) and values it
    # wants back after a training step (`context.state_update`); the compiled model then asks
    # the layer itself for those inputs and for its new state, and knows no layer kind.

    def extra_input_value(
        self,
        key: str,
        shape: tuple[int, ...],
        train: bool,
        rng: np.random.Generator,
        state: Mapping[str, np.ndarray],
    ) -> np.ndarray:
        """The value of the extra input `key` this layer declared, for one batch.

        Args:
            key: the short name given to `context.extra_input`.
            shape: the symbol's shape with the batch size N put in, e.g. (features, N).
            train: whether the compiled function is the training or the inference one.
            rng: the compiled model's generator (draw random inputs from it only, so a run
                resumes bit for bit).
            state: this layer's state arrays, keyed as `state()` keys them.
        """
        raise TypeError(
            f"{self.name}: declares the extra input {key!r} but {type(self).__name__} does not "
            "define extra_input_value to give its value"
        )

    def update_state(
        self, state: Mapping[str, np.ndarray], values: Mapping[str, np.ndarray], batch: int
    ) -> dict[str, np.ndarray]:
        """This layer's new state after a training step of `batch` examples, from its current
        `state` and the `values` of what it declared with `context.state_update` (by key);
        returns the entries that change. By default nothing changes."""
        return {}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


def walk(layers: Sequence[Layer]) -> Iterator[Layer]:
    """Every layer, depth first, a block after its inner layers (the order they compute in)."""
    for layer in layers:
        yield from walk(layer.layers)
        yield layer


def build_layers(layers: Sequence[Layer], shape: Shape) -> Shape:
    """Build `layers` in order from examples of `shape`; returns the shape they give.

    Raises:
        ShapeError: a layer does not fit, named first in the message.
    """
    for layer in layers:
        try:
            shape = layer.build(shape)
        except ValueError as error:
            message = str(error)
            if not message.startswith(f"{layer.name}:"):
                message = f"{layer.name}: {message}"
            raise ShapeError(message) from None
    return shape


def _features(shape: Shape) -> int:
    return int(np.prod(shape))


def _glorot(rng, shape, fan_in, fan_out):
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=shape)


def _he(rng, shape, fan_in, fan_out):
    return rng.normal(0.0, np.sqrt(2.0 / fan_in), size=shape)


INITIALISERS = {"glorot": _glorot, "he": _he}


def _initialiser(init: str | None, activation_name) -> Callable:
    if init is None:  # the activation's own choice: He for the ReLU family, else Glorot
        init = getattr(activation_functions().get(activation_name), "init", "glorot")
    if init not in INITIALISERS:
        raise ValueError(f"init {init!r} is not one of {', '.join(INITIALISERS)}")
    return INITIALISERS[init]


class _Weighted(Layer):
    """A layer with a weight matrix W, a bias b, an activation and optional L1/L2 penalties."""

    def __init__(self, activation=None, *, bias=True, init=None, l1=0.0, l2=0.0, name=None):
        super().__init__(name)
        self.activation_name = (
            activation if isinstance(activation, str) or activation is None else "custom"
        )
        self.activation = get_activation(activation)
        self.bias, self.init_name, self.l1, self.l2 = bias, init, float(l1), float(l2)
        self.has_activation_output = activation not in (None, "linear")

    def _penalise(self, W, context: Context):
        if self.l1:
            context.penalties.append(self.l1 * MatL1(W))
        if self.l2:
            context.penalties.append(self.l2 * MatL2(W))


class Dense(_Weighted):
    r"""Fully connected layer $A = f(W A_{\text{in}} + b\,\mathbf{1}^\top)$ with `units` outputs."""

    kind = "dense"

    def __init__(self, units: int, activation=None, **options):
        super().__init__(activation, **options)
        if int(units) < 1:
            raise ValueError(f"Dense: units must be positive, got {units}")
        self.units = int(units)

    def _output_shape(self, input_shape):
        return (self.units,)

    def parameters(self, index):
        fan_in = _features(self.input_shape)
        params = {"W": MatrixSymbol(f"W^{{({index})}}", self.units, fan_in)}
        if self.bias:
            params["b"] = MatrixSymbol(f"b^{{({index})}}", self.units, 1)
        return params

    def natural_shapes(self):
        shapes = {"W": (self.units, _features(self.input_shape))}
        return shapes | ({"b": (self.units,)} if self.bias else {})

    def init(self, rng):
        fan_in = _features(self.input_shape)
        draw = _initialiser(self.init_name, self.activation_name)
        params = {"W": draw(rng, (self.units, fan_in), fan_in, self.units)}
        return params | ({"b": np.zeros(self.units)} if self.bias else {})

    def forward(self, A, params, context):
        W = params["W"]
        if W.shape[1] != A.shape[0]:
            raise ShapeError(
                f"{self.name}: W has shape {W.shape} but its input has {A.shape[0]} rows"
            )
        Z = matmul(W, A)
        if self.bias:
            Z = matadd(Z, matmul(params["b"], OneMatrix(1, context.batch)))
        self._penalise(W, context)
        return Z, self.activation(Z)


def _pair(value, what: str, layer: str) -> tuple[int, int]:
    if isinstance(value, int | np.integer):
        return int(value), int(value)
    if isinstance(value, tuple | list) and len(value) == 2:
        return int(value[0]), int(value[1])
    raise ValueError(f"{layer}: {what} must be an int or a pair of ints, got {value!r}")


class _Windowed:
    """Geometry of a window over (C, H, W) input, with 1-D layers as height 1."""

    def _geometry(self, input_shape, kernel, stride, padding, layer: str) -> Geometry:
        if len(input_shape) == 2:  # (C, L): a 1-D layer
            C, H, W = input_shape[0], 1, input_shape[1]
        elif len(input_shape) == 3:
            C, H, W = input_shape
        else:
            raise ShapeError(
                f"{layer}: needs input of shape (C, L) or (C, H, W); got {input_shape}. "
                "Give the model input_shape=(channels, ...) or put a layer before that makes it"
            )
        kh, kw = kernel
        sh, sw = stride
        ph, pw = padding
        g = Geometry(C, H, W, kh, kw, sh, sw, ph, pw)
        if g.Ho < 1 or g.Wo < 1:
            raise ShapeError(
                f"{layer}: a {kh}x{kw} window with stride {stride} and padding {padding} does not "
                f"fit an input of shape {input_shape}"
            )
        return g


class Conv2d(_Weighted, _Windowed):
    r"""2-D convolution with `filters` kernels of size `kernel_size`, stride and zero padding
    ("valid" = 0, "same" = keep the size, for stride 1 and odd kernels, or an int/pair)."""

    kind = "conv2d"
    dims = 2

    def __init__(self, filters, kernel_size, stride=1, padding="valid", activation=None, **options):
        super().__init__(activation, **options)
        self.filters = int(filters)
        self.kernel = _pair(kernel_size, "kernel_size", type(self).__name__)
        self.stride = _pair(stride, "stride", type(self).__name__)
        self.padding_spec = padding

    def _padding(self):
        layer = type(self).__name__
        if self.padding_spec == "valid":
            return (0, 0)
        if self.padding_spec == "same":
            if self.stride != (1, 1) or any(k % 2 == 0 for k in self.kernel):
                raise ValueError(
                    f"{layer}: padding='same' needs stride 1 and odd kernel sizes (symmetric zero "
                    f"padding); got kernel {self.kernel}, stride {self.stride}. Give the padding as "
                    "an int or a pair instead"
                )
            return ((self.kernel[0] - 1) // 2, (self.kernel[1] - 1) // 2)
        return _pair(self.padding_spec, "padding", layer)

    def _output_shape(self, input_shape):
        self.geometry = self._geometry(
            input_shape, self.kernel, self.stride, self._padding(), type(self).__name__
        )
        g = self.geometry
        return (self.filters, g.Ho, g.Wo) if len(input_shape) == 3 else (self.filters, g.Wo)

    def parameters(self, index):
        g = self.geometry
        params = {"K": MatrixSymbol(f"K^{{({index})}}", self.filters, g.C * g.kh * g.kw)}
        return params | {"b": MatrixSymbol(f"b^{{({index})}}", self.filters, 1)}

    def natural_shapes(self):
        g = self.geometry
        kernel = (
            (self.filters, g.C, g.kh, g.kw)
            if len(self.input_shape) == 3
            else (self.filters, g.C, g.kw)
        )
        return {"K": kernel, "b": (self.filters,)}

    def init(self, rng):
        g = self.geometry
        fan_in, fan_out = g.C * g.kh * g.kw, self.filters * g.kh * g.kw
        draw = _initialiser(self.init_name, self.activation_name)
        K = draw(rng, (self.filters, g.C * g.kh * g.kw), fan_in, fan_out)
        return {"K": K.reshape(self.natural_shapes()["K"]), "b": np.zeros(self.filters)}

    def forward(self, A, params, context):
        g = self.geometry
        if A.shape[0] != g.C * g.H * g.W:
            raise ShapeError(
                f"{self.name}: input has {A.shape[0]} rows, expected {g.C}x{g.H}x{g.W}"
            )
        Z = conv2d(A, params["K"], params["b"], g.as_tuple())
        self._penalise(params["K"], context)
        return Z, self.activation(Z)


class Conv1d(Conv2d):
    """1-D convolution over input (C, L): `filters` kernels of length `kernel_size`."""

    kind = "conv1d"

    def __init__(self, filters, kernel_size, stride=1, padding="valid", activation=None, **options):
        pad = padding if isinstance(padding, str) else (0, int(padding))
        super().__init__(
            filters, (1, int(kernel_size)), (1, int(stride)), pad, activation, **options
        )

    def _padding(self):
        if self.padding_spec == "same":
            if self.stride[1] != 1 or self.kernel[1] % 2 == 0:
                raise ValueError("Conv1d: padding='same' needs stride 1 and an odd kernel size")
            return (0, (self.kernel[1] - 1) // 2)
        return super()._padding()


class _Pool(Layer, _Windowed):
    op: Callable = max_pool2d

    def __init__(self, size, stride=None, name=None):
        super().__init__(name)
        self.size = _pair(size, "size", type(self).__name__)
        self.stride = self.size if stride is None else _pair(stride, "stride", type(self).__name__)

    def _output_shape(self, input_shape):
        self.geometry = self._geometry(
            input_shape, self.size, self.stride, (0, 0), type(self).__name__
        )
        g = self.geometry
        return (g.C, g.Ho, g.Wo) if len(input_shape) == 3 else (g.C, g.Wo)

    def forward(self, A, params, context):
        Z = type(self).op(A, self.geometry.as_tuple())
        return Z, Z


class MaxPool2d(_Pool):
    """Max pooling over `size` windows (stride defaults to the size)."""

    kind = "maxpool"
    op = max_pool2d


class AvgPool2d(_Pool):
    """Average pooling over `size` windows (stride defaults to the size)."""

    kind = "avgpool"
    op = avg_pool2d


class MaxPool1d(MaxPool2d):
    """1-D max pooling over input (C, L)."""

    def __init__(self, size, stride=None, name=None):
        super().__init__((1, int(size)), None if stride is None else (1, int(stride)), name)


class AvgPool1d(AvgPool2d):
    """1-D average pooling over input (C, L)."""

    def __init__(self, size, stride=None, name=None):
        super().__init__((1, int(size)), None if stride is None else (1, int(stride)), name)


MaxPool = MaxPool2d
AvgPool = AvgPool2d


class Flatten(Layer):
    """(C, H, W) to (C·H·W,): examples are stored flattened already, so only the shape changes."""

    kind = "flatten"

    def _output_shape(self, input_shape):
        return (_features(input_shape),)

    def forward(self, A, params, context):
        return A, A


class Activation(Layer):
    """An activation on its own, e.g. Activation("relu")."""

    kind = "activation"
    has_activation_output = True

    def __init__(self, function, name=None):
        super().__init__(name)
        self.function = get_activation(function)

    def forward(self, A, params, context):
        return None, self.function(A)


class Dropout(Layer):
    r"""Inverted dropout: in training $A \circ M / (1 - p)$ with a fresh Bernoulli mask $M$ per
    step (drawn by the compiled model); the identity at inference."""

    kind = "dropout"

    def __init__(self, rate: float, name=None):
        super().__init__(name)
        if not 0 <= rate < 1:
            raise ValueError(f"Dropout: rate must be in [0, 1), got {rate}")
        self.rate = float(rate)

    def forward(self, A, params, context):
        if not context.train or self.rate == 0:
            return None, A
        mask = MatrixSymbol(f"M^{{({context.index})}}", A.shape[0], context.batch)
        context.extra_input(self, "mask", mask)
        return None, scale(sympy.Float(1 / (1 - self.rate)), hadamard(A, mask))

    def extra_input_value(self, key, shape, train, rng, state):
        """A fresh Bernoulli mask: each entry kept (1) with probability 1 - rate."""
        return (rng.random(shape) >= self.rate).astype(float)
