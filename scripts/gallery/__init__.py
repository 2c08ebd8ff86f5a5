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

# the gallery's order, by topic (imports are sorted by name)
TOPICS = (
    "networks",
    "optimisation",
    "recurrent",
    "statistics",
    "probability",
    "spectral",
    "curvature",
)
GALLERY.sort(key=lambda build: TOPICS.index(build.module))

__all__ = ["GALLERY", "Entry", "entries"]
