r"""The derivation gallery: classic derivations of deep learning, each written once as SymPy
expressions, derived by symdl, and checked against a reference symdl did not derive (see
gallery.reference). scripts/build_gallery.py writes them to docs/gallery/ as .tex, .md and .png.
"""

from gallery import (  # noqa: F401  (defining registers)
    curvature,
    networks,
    optimisation,
    probability,
    recurrent,
    spectral,
    statistics,
)
from gallery.entry import GALLERY, Entry, entries

__all__ = ["GALLERY", "Entry", "entries"]
