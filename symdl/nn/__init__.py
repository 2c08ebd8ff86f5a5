"""Neural networks: layers, models and the vectorised NumPy kernels they compile to."""
