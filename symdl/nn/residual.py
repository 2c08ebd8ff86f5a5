r"""Residual blocks: $A = A_{\text{in}} + f(A_{\text{in}})$, any layers inside."""

from __future__ import annotations

import sympy

from symdl.nn.layers import Layer, ShapeError, build_layers


class Residual(Layer):
    r"""A residual block $A = A_{\text{in}} + f(A_{\text{in}})$, with $f$ its layers applied in
    order (any layers, blocks included); $f$ must keep the shape of its input.

    The block owns no parameters: its layers keep their own names and numbers, and its output
    is named $A^{(l)}$ by its own number, after those of its layers.
    """

    kind = "residual"

    def __init__(self, *layers, name=None):
        super().__init__(name)
        flat: list[Layer] = []
        for layer in layers:
            if not isinstance(layer, Layer) and hasattr(layer, "layers"):  # a Sequential
                flat += layer.layers
            elif isinstance(layer, Layer):
                flat.append(layer)
            else:
                raise TypeError(f"Residual: {layer!r} is not a layer")
        if not flat:
            raise ValueError("Residual: give at least one layer")
        self.layers = flat

    def _output_shape(self, input_shape):
        shape = build_layers(self.layers, input_shape)
        if shape != input_shape:
            raise ShapeError(
                f"{self.name}: its layers give examples of shape {shape} but its input has "
                f"shape {input_shape}; a residual block adds its input to their output, so the "
                "two must match (end the block with Dense of the input's size, or use "
                "padding='same')"
            )
        return shape

    def forward(self, A, params, context):
        if context.apply is None:
            raise TypeError(f"{self.name}: a residual block runs inside a model (Sequential)")
        inner = context.apply(self.layers, A)
        return None, sympy.MatAdd(A, inner)  # not flattened: the skip reads A + Z

    def __repr__(self) -> str:
        inner = ", ".join(repr(layer) for layer in self.layers)
        return f"Residual({inner}, name={self.name!r})"
