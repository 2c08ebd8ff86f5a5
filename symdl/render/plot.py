"""Figures of training: loss and accuracy curves, gradient norms per layer, decision boundaries.

Each function draws on its own matplotlib Figure (no pyplot state, any backend) and writes a
PNG atomically, so a reader never sees half an image.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from symdl.render.files import write_atomic

__all__ = ["PlotError", "plot_decision_boundary", "plot_grad_norms", "plot_history"]


class PlotError(ValueError):
    """Nothing to plot, or data of a shape the figure cannot show."""


def _figure(width: float, height: float):
    """A matplotlib Figure of that size in inches, not registered with pyplot."""
    return Figure(figsize=(width, height), layout="constrained")


def _save(figure, path: str | os.PathLike) -> Path:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    return write_atomic(path, buffer.getvalue())


def plot_history(history, path: str | os.PathLike) -> Path:
    """Loss (training and validation) and accuracy curves against the epoch, as PNG.

    Args:
        history: a `symdl.training.loop.History` with at least one epoch.
        path: where the PNG goes.

    Returns:
        The path written.

    Raises:
        PlotError: a history without epochs.
    """
    if not history.loss:
        raise PlotError("plot_history: the history has no epochs yet; train first")
    curves = [k for k in history.metrics if "accuracy" in k] or list(history.metrics)
    figure = _figure(10 if curves else 5.5, 4)
    axes = figure.subplots(1, 2 if curves else 1, squeeze=False)[0]
    epochs = np.arange(1, len(history.loss) + 1)
    axes[0].plot(epochs, history.loss, label="training")
    if history.val_loss:
        axes[0].plot(epochs, history.val_loss, label="validation")
    axes[0].set(xlabel="epoch", ylabel="loss", title="loss")
    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if history.best_epoch is not None:
        axes[0].axvline(history.best_epoch, color="gray", linestyle=":", label="best epoch")
    axes[0].legend()
    if curves:
        for key in curves:
            axes[1].plot(epochs, history.metrics[key], label=key)
        axes[1].set(xlabel="epoch", title="accuracy" if "accuracy" in curves[0] else "metrics")
        axes[1].legend()
    return _save(figure, path)


def plot_grad_norms(histories, path: str | os.PathLike) -> Path:
    """Mean gradient norm per layer: against depth (first and last epoch), and per epoch.

    Args:
        histories: a History, or {label: History} to compare networks side by side (e.g. a
            deep sigmoid network beside a ReLU one, where the first shows vanishing gradients:
            norms falling by orders of magnitude towards the input layers).
        path: where the PNG goes.

    Returns:
        The path written.

    Raises:
        PlotError: a history without gradient norms.
    """
    if not isinstance(histories, Mapping):
        histories = {"": histories}
    for label, history in histories.items():
        if not history.grad_norms:
            raise PlotError(
                f"plot_grad_norms: history {label!r} has no gradient norms; train first"
            )
    figure = _figure(5 + 4.5 * len(histories), 4)
    axes = figure.subplots(1, 1 + len(histories), squeeze=False)[0]
    for label, history in histories.items():
        layers = list(history.grad_norms)
        first = [history.grad_norms[layer][0] for layer in layers]
        last = [history.grad_norms[layer][-1] for layer in layers]
        line = axes[0].semilogy(layers, first, marker="o", label=f"{label} epoch 1".strip())
        axes[0].semilogy(
            layers,
            last,
            marker="x",
            linestyle="--",
            color=line[0].get_color(),
            label=f"{label} last epoch".strip(),
        )
    axes[0].tick_params(axis="x", labelrotation=45)
    axes[0].set(
        xlabel="layer (input → output)",
        ylabel="‖∂L/∂θ‖ (mean over batches)",
        title="gradient norm by depth",
    )
    axes[0].legend()
    for ax, (label, history) in zip(axes[1:], histories.items(), strict=True):
        for layer, norms in history.grad_norms.items():
            ax.semilogy(np.arange(1, len(norms) + 1), norms, label=layer)
        ax.set(xlabel="epoch", ylabel="gradient norm", title=f"{label} per layer".strip())
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(fontsize="small")
    return _save(figure, path)


def plot_decision_boundary(
    predict: Callable[[np.ndarray], np.ndarray],
    X,
    y,
    path: str | os.PathLike,
    *,
    resolution: int = 200,
    title: str | None = None,
) -> Path:
    """The class `predict` assigns over the plane, with the samples on top, as PNG.

    Args:
        predict: maps points (M, 2) to outputs (M, classes), or (M,) / (M, 1) probabilities
            of class 1 (threshold 0.5), e.g. `lambda P: compiled.predict(params, P)`.
        X: samples (N, 2).
        y: labels (N,) (class indices) or one-hot (N, classes).
        path: where the PNG goes.
        resolution: grid points per axis.
        title: the figure title.

    Returns:
        The path written.

    Raises:
        PlotError: X not of shape (N, 2), or predict giving the wrong number of rows.
    """
    X, y = np.asarray(X, dtype=float), np.asarray(y)
    if X.ndim != 2 or X.shape[1] != 2:
        raise PlotError(f"plot_decision_boundary: X must have shape (N, 2), got {X.shape}")
    if y.ndim == 2 and y.shape[1] > 1:
        y = y.argmax(axis=1)
    y = y.reshape(len(y))
    margin = 0.1 * np.ptp(X, axis=0) + 1e-9
    low, high = X.min(axis=0) - margin, X.max(axis=0) + margin
    u, v = np.meshgrid(*(np.linspace(low[i], high[i], resolution) for i in range(2)))
    outputs = np.asarray(predict(np.column_stack([u.ravel(), v.ravel()])))
    if len(outputs) != u.size:
        raise PlotError(
            f"plot_decision_boundary: predict returned {len(outputs)} rows for {u.size} points"
        )
    if outputs.ndim == 1 or outputs.shape[1] == 1:
        classes = (outputs.reshape(-1) > 0.5).astype(int)
    else:
        classes = outputs.argmax(axis=1)
    n_classes = int(max(classes.max(), y.max())) + 1
    figure = _figure(5.5, 5)
    ax = figure.subplots()
    levels = np.arange(n_classes + 1) - 0.5
    ax.contourf(
        u, v, classes.reshape(u.shape), levels=levels, cmap="tab10", vmin=0, vmax=9, alpha=0.3
    )
    ax.scatter(
        X[:, 0], X[:, 1], c=y, cmap="tab10", vmin=0, vmax=9, s=14, edgecolors="k", linewidths=0.4
    )
    ax.set(xlim=(low[0], high[0]), ylim=(low[1], high[1]), title=title or "decision boundary")
    return _save(figure, path)
