"""Code generation: a Derivation or Program printed as one NumPy function, with common
subexpressions computed once."""
