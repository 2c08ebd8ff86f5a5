"""`symdl train FILE.py`: train the `model` a Python file defines on a bundled data set (or the
file's own `X`, `y`), with a progress bar, and write the loss curves, the per-layer gradient
norms and the trained parameters."""

from __future__ import annotations

import argparse
import inspect
import time
from pathlib import Path

import numpy as np

from symdl.cli.errors import InputError

TRAIN_EXAMPLES = """\
examples:
  symdl train net.py --data digits --epochs 20 -o run/
  symdl train net.py --data moons --optimizer sgd --lr 0.1 --momentum 0.9
  symdl train net.py --epochs 40 --checkpoint run/ck.npz      # X, y from the file
  symdl train net.py --epochs 40 --resume run/ck.npz --checkpoint run/ck.npz

FILE.py runs like `python FILE.py` (code under `if __name__ == "__main__":` does not run) and
sets `model = sd.nn.Sequential(..., input_shape=...)`; without --data it also sets `X` (one
example per row) and `y`. The digits are scaled to [0, 1] and the moons and spirals are drawn
with --seed. A share of the data (--test-fraction) is held out and scored at the end.

exit codes: 0 trained, 1 training diverged (the step is named), 2 bad input (also a damaged
checkpoint), 3 an internal error of symdl.
"""

DATASETS = ("digits", "moons", "spirals")


def add_parser(commands) -> None:
    train = commands.add_parser(
        "train",
        help="train the model of a Python file; write curves, gradient norms and parameters",
        description=__doc__,
        epilog=TRAIN_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    train.add_argument("file", metavar="FILE.py", help="a Python file that sets model")
    train.add_argument("--data", choices=DATASETS, help="a bundled data set (else the file's X, y)")
    train.add_argument("--epochs", type=int, default=20)
    train.add_argument("--batch-size", type=int, default=32)
    train.add_argument(
        "--optimizer",
        default="adam",
        help="an optimizer by name: one of symdl.optim.registered() (adam, sgd, ...), or a "
        "subclass of sd.optim.Optimizer that FILE.py declares",
    )
    train.add_argument("--lr", type=float, help="learning rate (default: the optimizer's)")
    train.add_argument("--momentum", type=float, default=0.0, help="SGD momentum")
    train.add_argument("--validation", type=float, default=0.1, help="share held out per epoch")
    train.add_argument("--test-fraction", type=float, default=0.2, help="share scored at the end")
    train.add_argument("--early-stopping", type=int, metavar="PATIENCE", help="epochs to wait")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("-o", "--out", default="symdl-train", help="folder for the files written")
    train.add_argument("--checkpoint", help="an .npz written after every epoch")
    train.add_argument("--resume", help="an .npz to continue from")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.add_argument(
        "--backend", choices=("numpy", "jax"), default="numpy", help="jax: SGD on a device mesh"
    )
    train.add_argument("--devices", type=int, help="with --backend jax: devices to shard over")
    train.set_defaults(run=run)


def _data(args, namespace: dict, path: Path):
    from symdl.training import datasets

    if args.data == "digits":
        X, y = datasets.load_digits()
        return X / 16.0, y
    if args.data == "moons":
        return datasets.make_moons(600, noise=0.2, seed=args.seed)
    if args.data == "spirals":
        return datasets.make_spirals(600, seed=args.seed)
    if "X" not in namespace or "y" not in namespace:
        raise InputError(f"{path} sets no X and y; set them in the file or give --data")
    return np.asarray(namespace["X"], dtype=float), np.asarray(namespace["y"])


def _optimizer(args):
    import symdl.optim as optim

    try:
        cls = optim.get_optimizer(args.optimizer)
    except optim.OptimizerError as error:
        raise InputError(f"--optimizer: {error}") from None
    options = {} if args.lr is None else {"lr": args.lr}
    if args.momentum:
        if "momentum" not in inspect.signature(cls).parameters:
            raise InputError(f"--momentum: {cls.__name__} takes no momentum")
        options["momentum"] = args.momentum
    return cls(**options)


def run(args) -> int:
    """Train as `args` say; returns the exit code (bad input raises InputError/ValueError)."""
    from symdl.cli.modelfile import run_file
    from symdl.nn import Sequential
    from symdl.training.checkpoint import save_arrays
    from symdl.training.datasets import train_test_split
    from symdl.training.loop import TrainingDiverged, train

    path = Path(args.file)
    namespace = run_file(path)
    model = namespace.get("model")
    if not isinstance(model, Sequential):
        raise InputError(f"{path} sets no model = sd.nn.Sequential(...) at top level")
    if args.epochs < 1 or args.batch_size < 1:
        raise InputError("--epochs and --batch-size must be at least 1")
    if not 0 < args.test_fraction < 1:
        raise InputError("--test-fraction must be between 0 and 1")
    X, y = _data(args, namespace, path)
    if model.input_shape is None:
        model.build(X.shape[1:])
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_fraction=args.test_fraction, seed=args.seed
    )
    print(model.summary())
    print(f"\ntraining on {len(X_train)} examples, {len(X_test)} held out for the test\n")
    if args.backend == "jax":
        return _run_jax(args, model, X_train, y_train, X_test, y_test)
    start = time.perf_counter()
    try:
        history = train(
            model,
            X_train,
            y_train,
            _optimizer(args),
            args.epochs,
            args.batch_size,
            validation=args.validation or None,
            seed=args.seed,
            progress=False if args.no_progress else None,
            early_stopping=args.early_stopping,
            checkpoint=args.checkpoint,
            resume=args.resume,
        )
    except TrainingDiverged as error:
        print(f"symdl train: {error}")
        if all(np.isfinite(p).all() for p in error.params.values()):
            saved = save_arrays(Path(args.out) / "last_good_params.npz", error.params, parents=True)
            print(f"the parameters of the last good step: {saved.resolve()}")
        else:  # diverged at once from non-finite initial parameters: nothing good to keep
            print("no step was good, so no parameters were saved")
        return 1
    seconds = time.perf_counter() - start
    compiled = history.compiled.eval()
    summary = f"{history.epochs} epochs in {seconds:.1f} s; test loss "
    summary += f"{compiled.loss(history.params, X_test, y_test):.4f}"
    if model.is_classifier:
        predicted = compiled.predict(history.params, X_test)
        labels = predicted.argmax(axis=1) if predicted.shape[1] > 1 else predicted[:, 0] > 0.5
        truth = y_test if np.ndim(y_test) == 1 else np.argmax(y_test, axis=1)
        summary += f", test accuracy {np.mean(labels == truth):.1%}"
    print(summary)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)  # -o names the folder to write in
    written = [
        history.plot(out / "history.png"),
        history.plot_grad_norms(out / "grad_norms.png"),
        save_arrays(out / "params.npz", history.params),
    ]
    print("\nWrote:")
    for file in written:
        print(f"  {file.resolve()}")
    return 0


def _run_jax(args, model, X_train, y_train, X_test, y_test) -> int:
    """Data-parallel SGD with JAX over `--devices` (the batch sharded, parameters replicated)."""
    from symdl.compile.jax_backend import export_model
    from symdl.training.checkpoint import save_arrays
    from symdl.training.parallel import train_data_parallel

    if args.optimizer not in ("sgd", "adam"):  # adam is the default of --optimizer
        raise InputError("--backend jax trains with plain SGD; give --optimizer sgd")
    print(f"--backend jax: plain SGD, lr {args.lr or 0.1}, the batch sharded over the devices")
    compiled = model.compile(seed=args.seed)
    step = export_model(compiled)
    start = time.perf_counter()
    params, losses = train_data_parallel(
        step,
        model.init(seed=args.seed),
        X_train,
        y_train,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr or 0.1,
        devices=args.devices,
        seed=args.seed,
    )
    seconds = time.perf_counter() - start
    test_loss = compiled.eval().loss(params, X_test, y_test)
    print(
        f"{args.epochs} epochs ({len(losses)} SGD steps) with JAX in {seconds:.1f} s; test loss {test_loss:.4f}"
    )
    saved = save_arrays(Path(args.out) / "params.npz", params, parents=True)  # -o: the folder
    print(f"parameters saved to {saved}")
    return 0
