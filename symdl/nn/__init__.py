"""Neural networks: layers, losses and models whose forward pass is a matrix expression,
derived by the chain rule and compiled to NumPy; plus the vectorised NumPy kernels."""

from symdl.nn.attention import (
    Embedding,
    PositionalEncoding,
    SelfAttention,
    Token,
    TokenDense,
    TokenLayerNorm,
    one_hot,
    transformer_block,
)
from symdl.nn.cross_attention import CrossAttention
from symdl.nn.graph import Input, Model, add, concat, multiply
from symdl.nn.layers import (
    Activation,
    AvgPool,
    AvgPool1d,
    AvgPool2d,
    Conv1d,
    Conv2d,
    Dense,
    Dropout,
    Flatten,
    Layer,
    MaxPool,
    MaxPool1d,
    MaxPool2d,
    ShapeError,
)
from symdl.nn.losses import MSE, BCEWithLogits, CrossEntropy, Hinge, Huber, Loss, TargetError
from symdl.nn.model import CompiledModel, Sequential
from symdl.nn.normalisation import BatchNorm, LayerNorm
from symdl.nn.recurrent import GRU, LSTM, RNN
from symdl.nn.residual import Residual
from symdl.ops import runtime as kernels  # the NumPy kernels generated code calls

__all__ = [
    "MSE",
    "Activation",
    "AvgPool",
    "AvgPool1d",
    "AvgPool2d",
    "BCEWithLogits",
    "BatchNorm",
    "CompiledModel",
    "Conv1d",
    "Conv2d",
    "CrossEntropy",
    "Dense",
    "Dropout",
    "Embedding",
    "Flatten",
    "GRU",
    "Hinge",
    "Input",
    "Huber",
    "Layer",
    "LSTM",
    "LayerNorm",
    "Loss",
    "MaxPool",
    "MaxPool1d",
    "MaxPool2d",
    "Model",
    "RNN",
    "PositionalEncoding",
    "Residual",
    "SelfAttention",
    "CrossAttention",
    "Sequential",
    "ShapeError",
    "TargetError",
    "Token",
    "TokenDense",
    "TokenLayerNorm",
    "add",
    "concat",
    "kernels",
    "multiply",
    "one_hot",
    "transformer_block",
]
