"""Derivations for people: LaTeX layout and line breaking, export to .tex/.md/.pdf/.png,
plots of training, and atomic file writing."""
