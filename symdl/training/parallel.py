"""Data-parallel training with JAX: the batch sharded over a mesh of devices, the parameters
replicated; under jit the runtime sums each device's share of the batch gradient (symdl's
loss is a batch mean, so the result is the average), and every device applies the same step.

The same code runs on one CPU, on several GPUs, and across hosts after
`jax.distributed.initialize()`: only `jax.devices()` changes.
"""

from __future__ import annotations

import numpy as np

from symdl.compile.backends import require
from symdl.compile.jax_backend import JaxModel


class DeviceError(ValueError):
    """A device count or batch size that the mesh cannot take."""


def mesh_of(devices=None):
    """A one-axis mesh ("batch") over `devices`: a count, a list, or None for all."""
    jax = require("jax")
    available = jax.devices()
    if devices is None:
        devices = available
    elif isinstance(devices, int):
        if not 1 <= devices <= len(available):
            raise DeviceError(
                f"--devices {devices}: JAX sees {len(available)} device(s) ({available[0].platform}); "
                "on a CPU set XLA_FLAGS=--xla_force_host_platform_device_count=N first"
            )
        devices = available[:devices]
    return jax.sharding.Mesh(np.array(devices), ("batch",))


def sgd_step(step: JaxModel, mesh, lr: float):
    """A jitted SGD step (params, X, Y) -> (params, loss): X and Y sharded by rows over the
    mesh, params and loss replicated."""
    jax = require("jax")
    from jax.sharding import NamedSharding, PartitionSpec

    replicated = NamedSharding(mesh, PartitionSpec())
    rows = NamedSharding(mesh, PartitionSpec("batch"))

    def update(params, X, Y):
        loss, grads = step.loss_and_grads(params, X, Y)
        return {k: params[k] - lr * grads[k] for k in params}, loss

    return jax.jit(
        update, in_shardings=(replicated, rows, rows), out_shardings=(replicated, replicated)
    ), (replicated, rows)


def train_data_parallel(
    step: JaxModel, params, X, y, *, epochs=1, batch_size=32, lr=0.1, devices=None, seed=0
):
    """Train `step` (a model exported with `export_model`) by SGD over a device mesh.

    Each batch is split evenly over the devices (a last batch that does not fill the devices
    is dropped). Returns (params as NumPy arrays, the loss of each step).

    Raises:
        DeviceError: more devices than JAX sees, or a batch size not divisible by them.
    """
    jax = require("jax")
    mesh = mesh_of(devices)
    count = mesh.devices.size
    if batch_size % count:
        raise DeviceError(f"batch size {batch_size} must be a multiple of the {count} devices")
    update, (replicated, rows) = sgd_step(step, mesh, lr)
    params = jax.device_put(step.params(params), replicated)
    X, Y = np.asarray(X), np.asarray(step.plan.targets(y))
    rng, losses = np.random.default_rng(seed), []
    for _ in range(epochs):
        order = rng.permutation(len(X))
        for start in range(0, len(X) - batch_size + 1, batch_size):
            batch = order[start : start + batch_size]
            Xb = jax.device_put(X[batch].astype(step.dtype), rows)
            Yb = jax.device_put(Y[batch].astype(step.dtype), rows)
            params, loss = update(params, Xb, Yb)
            losses.append(float(loss))
    return {k: np.asarray(v) for k, v in params.items()}, losses
