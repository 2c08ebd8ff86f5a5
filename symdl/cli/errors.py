"""The error of a command-line argument that cannot be used (exit code 2)."""


class InputError(ValueError):
    """A command-line argument that is not usable (exit code 2)."""
