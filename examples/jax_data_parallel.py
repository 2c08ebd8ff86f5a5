"""Data-parallel training of a symdl model with JAX: the digits MLP exported to JAX, each batch
sharded over every device JAX sees, parameters replicated, gradients averaged by the runtime.

On one CPU, pretend to have 4 devices:
    XLA_FLAGS=--xla_force_host_platform_device_count=4 python examples/jax_data_parallel.py
On GPUs the same script uses every GPU; across hosts call jax.distributed.initialize() first.
Pass an .npz path to save the trained parameters.
"""

import os
import sys

try:
    import jax
except ImportError:
    print("this example needs JAX: pip install symdl[export]")
    sys.exit(0)

jax.config.update("jax_enable_x64", os.environ.get("JAX_ENABLE_X64", "1") == "1")

import symdl as sd  # noqa: E402
from symdl.compile.jax_backend import export_model  # noqa: E402
from symdl.training.datasets import load_digits  # noqa: E402
from symdl.training.parallel import train_data_parallel  # noqa: E402

small = os.environ.get("SYMDL_EXAMPLE_SMALL") == "1"
X, y = load_digits()
X = X.reshape(len(X), -1) / X.max()
model = sd.nn.Sequential(sd.nn.Dense(32, "relu"), sd.nn.Dense(10), input_shape=X.shape[1])
step = export_model(model.compile())
params, losses = train_data_parallel(
    step, model.init(seed=0), X, y, epochs=1 if small else 10, batch_size=64, lr=0.1
)
print(
    f"{len(jax.devices())} device(s); {len(losses)} steps; loss {losses[0]:.4f} -> {losses[-1]:.4f}"
)
if len(sys.argv) > 1:
    import numpy as np

    np.savez(sys.argv[1], **params)
    print(f"parameters saved to {sys.argv[1]}")
