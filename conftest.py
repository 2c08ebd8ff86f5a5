"""Collection of the package's own modules for their doctests: the modules that exist only for
an optional extra (the JAX and PyTorch exports) import it at the top, so without the extra
they are not collected (their behaviour is tested in tests/compile, which skips then)."""

import importlib.util

_EXTRAS = {
    "jax": ["symdl/compile/jax_kernels.py"],
    "torch": [
        "symdl/compile/torch_kernels.py",
        "symdl/compile/torch_linalg.py",
        "symdl/compile/torch_numpy.py",
        "symdl/compile/torch_special.py",
    ],
}

collect_ignore = [
    path
    for extra, paths in _EXTRAS.items()
    if importlib.util.find_spec(extra) is None
    for path in paths
]
