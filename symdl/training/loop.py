"""The training loop: seeded mini-batches, validation, metrics, gradient norms per layer,
early stopping, atomic checkpoints that resume exactly, and a History that plots itself."""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from symdl.training.checkpoint import damaged, load_checkpoint, save_checkpoint

__all__ = ["EarlyStopping", "History", "TrainingDiverged", "TrainingError", "train"]

DIVERGENCE = 1e3
"""`train` stops when a batch loss exceeds this many times max(|first batch loss|, 1)."""

_RECORDS = ("loss", "val_loss", "metrics", "grad_norms", "step_loss", "best_epoch", "stopped_early")


class TrainingError(ValueError):
    """An argument of `train` that cannot work: shapes, validation, checkpoint, monitor."""


class TrainingDiverged(ArithmeticError):
    """A loss, gradient or updated parameter became NaN or infinite, or the loss grew past
    `divergence` times its first value.

    Attributes:
        epoch, batch, step: where it happened (1-based; `step` counts optimizer steps).
        params: copies of the parameters of the last good step, all finite.
        history: the History up to the last completed epoch.
    """

    def __init__(self, message: str, *, epoch: int, batch: int, step: int, params, history):
        super().__init__(message)
        self.epoch, self.batch, self.step = epoch, batch, step
        self.params, self.history = params, history


@dataclass
class EarlyStopping:
    """Stop when `monitor` has not improved by more than `min_delta` for `patience` epochs.

    `monitor` is a History key ("val_loss", "loss", "val_accuracy", ...); keys holding
    "accuracy" are maximised, others minimised. `restore_best` returns the parameters (and
    model state) of the best epoch rather than the last.
    """

    patience: int = 5
    monitor: str = "val_loss"
    min_delta: float = 0.0
    restore_best: bool = True


@dataclass
class History:
    """What happened per epoch: losses, metrics, mean gradient norm per layer.

    `params` holds the trained parameters (the best epoch's when early stopping restored
    them) and `compiled` the compiled model they run with:
    `history.compiled.predict(history.params, X)`.
    """

    loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    metrics: dict[str, list[float]] = field(default_factory=dict)
    grad_norms: dict[str, list[float]] = field(default_factory=dict)
    step_loss: list[float] = field(default_factory=list)
    best_epoch: int | None = None
    stopped_early: bool = False
    params: dict[str, np.ndarray] | None = field(default=None, repr=False)
    compiled: object = field(default=None, repr=False)

    @property
    def epochs(self) -> int:
        """The number of completed epochs."""
        return len(self.loss)

    def __getitem__(self, key: str) -> list[float]:
        """`history["loss"]`, `history["val_loss"]` or a metric such as "val_accuracy"."""
        if key in ("loss", "val_loss"):
            return getattr(self, key)
        if key in self.metrics:
            return self.metrics[key]
        known = ["loss", "val_loss", *self.metrics]
        raise KeyError(f"History has no {key!r}; it records {', '.join(known)}")

    def plot(self, path: str | os.PathLike) -> Path:
        """Loss and accuracy (or other metric) curves per epoch, written atomically as PNG."""
        from symdl.render.plot import plot_history

        return plot_history(self, path)

    def plot_grad_norms(self, path: str | os.PathLike) -> Path:
        """Mean gradient norm of each layer per epoch (log scale) and against depth, as PNG."""
        from symdl.render.plot import plot_grad_norms

        return plot_grad_norms(self, path)

    def to_dict(self) -> dict:
        """The records as plain lists and numbers (JSON-able); not params or compiled."""
        return {name: getattr(self, name) for name in _RECORDS}


def train(
    model,
    X,
    y,
    optimizer,
    epochs: int,
    batch_size: int = 32,
    *,
    validation: float | tuple | None = 0.1,
    seed: int = 0,
    progress: bool | None = None,
    metrics: Sequence[str | Callable] | None = None,
    early_stopping: EarlyStopping | int | None = None,
    checkpoint: str | os.PathLike | None = None,
    resume: str | os.PathLike | None = None,
    params: Mapping[str, np.ndarray] | None = None,
    callbacks: Sequence[Callable] = (),
    divergence: float | None = DIVERGENCE,
) -> History:
    """Train `model` on the rows of X with mini-batch `optimizer` steps.

    Args:
        model: has `init(seed) -> params` and `compile()` giving an object with
            `loss_and_grads(params, X, y) -> (loss, grads)` and `predict(params, X)`;
            optionally `train()`/`eval()`, `state` (dict of arrays, checkpointed), `rng`
            (np.random.Generator, checkpointed), `loss(params, X, y)`. `model.is_classifier`
            turns on accuracy.
        X, y: samples as rows, one target row per sample.
        optimizer: a `symdl.optim.Optimizer` (updates `params` in place).
        epochs: the total number of epochs (a resumed run continues up to it).
        batch_size: samples per step; the last batch of an epoch may be smaller.
        validation: a fraction of X held out at random, (X_val, y_val), or None.
        seed: seeds the validation split, the initial parameters and the shuffling.
        progress: a tqdm bar; None shows it only when stdout is a terminal.
        metrics: "accuracy" or callables `f(y_true, outputs) -> float`, recorded on the
            training and validation sets each epoch; None means accuracy for classifiers.
        early_stopping: an EarlyStopping, or its patience as an int.
        checkpoint: a path; after every epoch an .npz with parameters, optimizer state,
            model state, RNG states, epoch and history is written atomically (its folder
            created if missing), the previous one kept as NAME.prev.npz.
        resume: a checkpoint path to continue from exactly (same data and seed).
        params: initial parameters instead of `model.init(seed)` (copied, not modified).
        callbacks: `f(epoch, history, params)` after each epoch; returning True stops.
        divergence: stop when a batch loss exceeds `divergence` times max(|first batch
            loss|, 1) of the run (1e3 by default; None never stops on growth).

    Returns:
        The History, with the trained parameters in `history.params`.

    Raises:
        TrainingError: mismatched X and y, a bad validation or monitor, an unusable checkpoint.
        TrainingDiverged: a non-finite loss, gradient or update, or a loss past `divergence`
            times its first value; the parameters of the last good step are attached to the
            exception as `.params`.
    """
    X, y = np.asarray(X), np.asarray(y)
    _check_data("X", X, "y", y)
    if not isinstance(epochs, int | np.integer) or epochs < 0:
        raise TrainingError(f"train: epochs must be an integer >= 0, got {epochs!r}")
    if not isinstance(batch_size, int | np.integer) or batch_size < 1:
        raise TrainingError(f"train: batch_size must be an integer >= 1, got {batch_size!r}")
    if divergence is not None and not (isinstance(divergence, int | float) and divergence > 1):
        raise TrainingError(f"train: divergence must be a number > 1 or None, got {divergence!r}")
    rng = np.random.default_rng(seed)
    (X_train, y_train), held_out = _split(X, y, validation, rng)
    stopper = _stopper(early_stopping, held_out is not None)
    metric_fns = _metrics(metrics, getattr(model, "is_classifier", False))
    if getattr(model, "input_shape", False) is None and hasattr(model, "build"):
        model.build(X.shape[1:])  # a Sequential without input_shape takes the data's
    compiled = model.compile()

    run = _Run(compiled, optimizer, History(compiled=compiled), rng, stopper, divergence)
    if resume is not None:
        if params is not None:
            raise TrainingError("train: give either params or resume, not both")
        run.load(resume, seed, len(X_train), expected=model.init(seed))
    else:
        init = model.init(seed) if params is None else params
        run.params = {name: _float_copy(value) for name, value in init.items()}

    bar = _progress_bar(progress, (epochs - run.history.epochs) * -(-len(X_train) // batch_size))
    try:
        while run.history.epochs < epochs and not run.history.stopped_early:
            run.epoch(X_train, y_train, batch_size, bar)
            run.evaluate(X_train, y_train, held_out, metric_fns, batch_size)
            stop = run.early_stop()
            if checkpoint is not None:
                run.save(checkpoint, seed, len(X_train))
            stop = (
                any([cb(run.history.epochs, run.history, run.params) for cb in callbacks]) or stop
            )
            if bar is not None:
                bar.set_postfix(_summary(run.history), refresh=False)
            if stop:
                break
    finally:
        if bar is not None:
            bar.close()
    run.finish()
    return run.history


class _Run:
    """The mutable state of one training run: what a checkpoint holds."""

    def __init__(self, compiled, optimizer, history: History, rng, stopper, divergence=None):
        self.compiled, self.optimizer, self.history, self.rng = compiled, optimizer, history, rng
        self.stopper, self.divergence = stopper, divergence
        self.backup: dict[str, np.ndarray] | None = None  # the parameters before the last step
        self.params: dict[str, np.ndarray] = {}
        self.best: dict[str, np.ndarray] | None = None
        self.best_state: dict[str, np.ndarray] | None = None
        self.best_value, self.wait = None, 0

    @property
    def steps(self) -> int:
        return len(self.history.step_loss)

    def epoch(self, X, y, batch_size: int, bar) -> None:
        _switch(self.compiled, "train")
        epoch, order = self.history.epochs + 1, self.rng.permutation(len(X))
        if self.backup is None:
            self.backup = {name: p.copy() for name, p in self.params.items()}
        backup = self.backup
        total, sums = 0.0, {}
        for batch, start in enumerate(range(0, len(X), batch_size), start=1):
            rows = order[start : start + batch_size]
            loss, grads = self.compiled.loss_and_grads(self.params, X[rows], y[rows])
            norms = _layer_norms(grads)
            if not math.isfinite(loss) or not all(map(math.isfinite, norms.values())):
                what = f"the loss is {loss}" if not math.isfinite(loss) else _bad_layers(norms)
                self._diverged(what, epoch, batch, self.params)
            if self._grown(loss):
                first = self.history.step_loss[0]
                what = (
                    f"the loss {loss:.6g} is over {self.divergence:g} times its first {first:.6g}"
                )
                self._diverged(what, epoch, batch, backup)
            for name, p in self.params.items():
                np.copyto(backup[name], p)
            self.optimizer.step(self.params, grads)
            if not all(np.isfinite(p).all() for p in self.params.values()):
                self._diverged("the update made a parameter non-finite", epoch, batch, backup)
            self.history.step_loss.append(float(loss))
            total += float(loss) * len(rows)
            for layer, norm in norms.items():
                sums[layer] = sums.get(layer, 0.0) + norm
            if bar is not None:
                bar.update(1)
        self.history.loss.append(total / len(X))
        # Layers in the order of the parameters (input to output), not of the gradients.
        layers = dict.fromkeys([name.split(".", 1)[0] for name in self.params] + list(sums))
        for layer in layers:
            if layer in sums:
                self.history.grad_norms.setdefault(layer, []).append(sums[layer] / batch)

    def _grown(self, loss: float) -> bool:
        if self.divergence is None or not self.history.step_loss:
            return False
        return abs(loss) > self.divergence * max(abs(self.history.step_loss[0]), 1.0)

    def _diverged(self, what: str, epoch: int, batch: int, params) -> None:
        kept = {name: p.copy() for name, p in params.items()}
        step = self.steps + 1
        raise TrainingDiverged(
            f"train: {what} at epoch {epoch}, batch {batch} (step {step}); training stopped. "
            "The parameters of the last good step are in this exception's .params "
            "(try a smaller learning rate, or check the data for NaN)",
            epoch=epoch,
            batch=batch,
            step=step,
            params=kept,
            history=self.history,
        )

    def evaluate(self, X, y, held_out, metric_fns, batch_size: int) -> None:
        _switch(self.compiled, "eval")
        chunk = max(batch_size, 1024)
        sets = [("", X, y)] + ([("val_", *held_out)] if held_out is not None else [])
        for prefix, X_set, y_set in sets:
            if prefix:
                self.history.val_loss.append(
                    _mean_loss(self.compiled, self.params, X_set, y_set, chunk)
                )
            if metric_fns:
                outputs = np.concatenate(
                    [
                        self.compiled.predict(self.params, X_set[i : i + chunk])
                        for i in range(0, len(X_set), chunk)
                    ]
                )
                for name, fn in metric_fns.items():
                    self.history.metrics.setdefault(prefix + name, []).append(
                        float(fn(y_set, outputs))
                    )

    def early_stop(self) -> bool:
        if self.stopper is None:
            return False
        value = self.history[self.stopper.monitor][-1]
        sign = -1.0 if "accuracy" in self.stopper.monitor else 1.0
        if self.best_value is None or sign * (self.best_value - value) > self.stopper.min_delta:
            self.best_value, self.wait = value, 0
            self.history.best_epoch = self.history.epochs
            if self.stopper.restore_best:
                self.best = {name: p.copy() for name, p in self.params.items()}
                self.best_state = _copy(getattr(self.compiled, "state", None))
        else:
            self.wait += 1
        self.history.stopped_early = self.wait >= self.stopper.patience
        return self.history.stopped_early

    def finish(self) -> None:
        if self.best is not None:
            self.params = self.best
            if self.best_state is not None:
                self.compiled.state.update(self.best_state)
        _switch(self.compiled, "eval")
        self.history.params = self.params

    # ------------------------------------------------------------ checkpoints

    def save(self, path, seed: int, n_train: int) -> None:
        groups = {
            "param": self.params,
            "optim": self.optimizer.state_dict(),
            "state": getattr(self.compiled, "state", None) or {},
            "best": self.best or {},
            "best_state": self.best_state or {},
        }
        meta = {
            "epoch": self.history.epochs,
            "seed": seed,
            "n_train": n_train,
            "rng": self.rng.bit_generator.state,
            "model_rng": _rng_state(self.compiled),
            "best_value": self.best_value,
            "wait": self.wait,
            "history": self.history.to_dict(),
        }
        save_checkpoint(path, groups, meta, parents=True)

    def load(self, path, seed: int, n_train: int, expected: Mapping[str, np.ndarray]) -> None:
        groups, meta = load_checkpoint(path)
        _check_meta(path, meta)
        saved = {name: np.shape(a) for name, a in groups.get("param", {}).items()}
        wanted = {name: np.shape(a) for name, a in expected.items()}
        if saved != wanted:
            raise TrainingError(
                f"train: checkpoint {str(path)!r} holds parameters {saved} but this model has "
                f"{wanted}; resume with the model that wrote it"
            )
        if (meta["seed"], meta["n_train"]) != (seed, n_train):
            raise TrainingError(
                f"train: checkpoint {str(path)!r} was written with seed {meta['seed']} and "
                f"{meta['n_train']} training samples, this call has seed {seed} and {n_train}; "
                "resume with the same data, validation and seed"
            )
        params = groups["param"]
        bad = [name for name, p in params.items() if not np.isfinite(p).all()]
        if bad:
            raise damaged(path, f"parameter {', '.join(bad)} holds NaN or infinite values")
        state = getattr(self.compiled, "state", None) or {}
        _check_group(path, "model state", groups.get("state", {}), state)
        try:
            self.optimizer.load_state_dict(groups.get("optim", {}))
            self.rng.bit_generator.state = meta["rng"]
            if meta["model_rng"] is not None:
                if getattr(self.compiled, "rng", None) is None:
                    raise TrainingError(
                        f"train: {str(path)!r} holds a model RNG but this model has none"
                    )
                self.compiled.rng.bit_generator.state = meta["model_rng"]
            history = History(**meta["history"], compiled=self.compiled)
        except (ValueError, TypeError, KeyError, OverflowError, AttributeError) as error:
            if isinstance(error, TrainingError):
                raise
            raise damaged(path, f"its {_part(error)} is unusable ({error})") from None
        _check_optimizer(path, self.optimizer, params)
        if history.epochs != meta["epoch"]:
            raise damaged(path, f"its history has {history.epochs} epochs, not {meta['epoch']}")
        self.params = params
        if state:
            self.compiled.state.update(groups["state"])
        self.best, self.best_state = groups.get("best"), groups.get("best_state")
        self.best_value, self.wait = meta["best_value"], meta["wait"]
        self.history = history


def _check_meta(path, meta: Mapping) -> None:
    """Every entry `_Run.save` writes, of the type it writes: a damaged file is an error."""
    kinds = {
        "epoch": int,
        "seed": int,
        "n_train": int,
        "rng": dict,
        "model_rng": dict | None,
        "best_value": float | int | None,
        "wait": int,
        "history": dict,
    }
    for key, kind in kinds.items():
        if key not in meta:
            raise damaged(path, f"its metadata has no {key!r}")
        if not isinstance(meta[key], kind) or isinstance(meta[key], bool):
            raise damaged(path, f"its metadata {key!r} is {meta[key]!r}")


def _check_group(path, what: str, saved: Mapping, wanted: Mapping) -> None:
    """The saved arrays of `what` (e.g. BatchNorm's running statistics) match the model's."""
    have = {name: np.shape(a) for name, a in saved.items()}
    need = {name: np.shape(a) for name, a in wanted.items()}
    if have != need:
        raise damaged(path, f"its {what} is {have}, but this model needs {need}")


def _check_optimizer(path, optimizer, params: Mapping[str, np.ndarray]) -> None:
    """After a step, every buffer of the optimizer exists for every parameter."""
    for kind, store in getattr(optimizer, "state", {}).items():
        if optimizer.steps and store.keys() != params.keys():
            missing = sorted(set(params) - set(store)) or sorted(set(store) - set(params))
            raise damaged(path, f"its optimizer buffer {kind!r} is incomplete ({missing})")
        for name, buffer in store.items():
            if name in params and np.shape(buffer) != np.shape(params[name]):
                raise damaged(path, f"its optimizer buffer {kind}/{name} has the wrong shape")


def _part(error: Exception) -> str:
    return "optimizer state" if type(error).__name__ == "OptimizerError" else "RNG or history"


# ---------------------------------------------------------------- helpers


def _check_data(x_name: str, X: np.ndarray, y_name: str, y: np.ndarray) -> None:
    if X.ndim < 1 or y.ndim < 1 or len(X) != len(y):
        raise TrainingError(
            f"train: {x_name} has shape {X.shape} and {y_name} has shape {y.shape}; they need "
            "one row per sample and the same number of rows"
        )
    if len(X) == 0:
        raise TrainingError(f"train: {x_name} has no rows")


def _split(X, y, validation, rng):
    """(training set, validation set or None), drawing a held-out fraction from `rng`."""
    if validation is None or (isinstance(validation, int | float) and validation == 0):
        return (X, y), None
    if isinstance(validation, tuple):
        if len(validation) != 2:
            raise TrainingError("train: validation must be a fraction or a pair (X_val, y_val)")
        X_val, y_val = np.asarray(validation[0]), np.asarray(validation[1])
        _check_data("X_val", X_val, "y_val", y_val)
        return (X, y), (X_val, y_val)
    if not isinstance(validation, float) or not 0 < validation < 1:
        raise TrainingError(
            "train: validation must be a fraction in (0, 1), a pair (X_val, y_val) or None, "
            f"got {validation!r}"
        )
    n_val = round(len(X) * validation)
    if not 1 <= n_val < len(X):
        raise TrainingError(
            f"train: validation={validation} of {len(X)} samples leaves {n_val} for validation "
            "and the rest for training; pass another fraction, or validation=None for none"
        )
    order = rng.permutation(len(X))
    held, kept = order[:n_val], order[n_val:]
    return (X[kept], y[kept]), (X[held], y[held])


def _stopper(early_stopping, has_validation: bool) -> EarlyStopping | None:
    if early_stopping is None:
        return None
    if isinstance(early_stopping, int):
        early_stopping = EarlyStopping(patience=early_stopping)
    if early_stopping.monitor.startswith("val_") and not has_validation:
        if early_stopping.monitor != "val_loss":
            raise TrainingError(
                f"train: early_stopping monitors {early_stopping.monitor!r} but there is no "
                "validation set; pass validation= or monitor a training quantity"
            )
        early_stopping = EarlyStopping(
            early_stopping.patience, "loss", early_stopping.min_delta, early_stopping.restore_best
        )
    return early_stopping


def _metrics(metrics, is_classifier: bool) -> dict[str, Callable]:
    if metrics is None:
        metrics = ["accuracy"] if is_classifier else []
    chosen = {}
    for metric in metrics:
        if metric == "accuracy":
            chosen["accuracy"] = accuracy
        elif callable(metric):
            chosen[getattr(metric, "__name__", "metric")] = metric
        else:
            raise TrainingError(
                f"train: unknown metric {metric!r}; use 'accuracy' or a function "
                "f(y_true, outputs) -> float"
            )
    return chosen


def accuracy(y_true: np.ndarray, outputs: np.ndarray) -> float:
    """Share of rows whose predicted class equals the label.

    The predicted class is the argmax of the outputs, or `output > 0.5` for a single output
    (probabilities). Labels are class indices, or one-hot rows.

    >>> accuracy(np.array([0, 1, 1]), np.array([[2.0, 1.0], [0.0, 3.0], [5.0, 4.0]]))
    0.6666666666666666
    """
    outputs, y_true = np.asarray(outputs), np.asarray(y_true)
    if outputs.ndim == 1 or outputs.shape[1] == 1:
        predicted = (outputs.reshape(len(outputs)) > 0.5).astype(int)
    else:
        predicted = outputs.argmax(axis=1)
    if y_true.ndim == 2 and y_true.shape[1] > 1:
        y_true = y_true.argmax(axis=1)
    return float(np.mean(predicted == y_true.reshape(len(y_true))))


def _mean_loss(compiled, params, X, y, chunk: int) -> float:
    """The loss over all rows, as the size-weighted mean of chunk losses."""
    loss = getattr(compiled, "loss", None) or (lambda p, a, b: compiled.loss_and_grads(p, a, b)[0])
    total = sum(
        float(loss(params, X[i : i + chunk], y[i : i + chunk])) * len(X[i : i + chunk])
        for i in range(0, len(X), chunk)
    )
    return total / len(X)


def _layer_norms(grads: Mapping[str, np.ndarray]) -> dict[str, float]:
    """L2 norm of each layer's gradient; a layer is the name prefix before the first "."."""
    squares: dict[str, float] = {}
    for name, g in grads.items():
        layer = name.split(".", 1)[0]
        flat = np.ravel(g)
        squares[layer] = squares.get(layer, 0.0) + float(np.dot(flat, flat))
    return {layer: math.sqrt(s) if s >= 0 else math.nan for layer, s in squares.items()}


def _bad_layers(norms: Mapping[str, float]) -> str:
    bad = [layer for layer, norm in norms.items() if not math.isfinite(norm)]
    return f"the gradient of {', '.join(bad)} is not finite"


def _float_copy(value) -> np.ndarray:
    array = np.array(value, copy=True)
    return array if np.issubdtype(array.dtype, np.floating) else array.astype(np.float64)


def _switch(compiled, mode: str) -> None:
    method = getattr(compiled, mode, None)
    if callable(method):
        method()


def _copy(state):
    return None if state is None else {k: np.array(v, copy=True) for k, v in state.items()}


def _rng_state(compiled):
    rng = getattr(compiled, "rng", None)
    return None if rng is None else rng.bit_generator.state


def _summary(history: History) -> dict[str, str]:
    summary = {"loss": f"{history.loss[-1]:.4g}"}
    if history.val_loss:
        summary["val_loss"] = f"{history.val_loss[-1]:.4g}"
    summary |= {k: f"{v[-1]:.3f}" for k, v in history.metrics.items() if "accuracy" in k}
    return summary


def _progress_bar(progress: bool | None, total: int):
    if progress is None:
        progress = sys.stdout.isatty()
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="batch", desc="train", leave=True)
