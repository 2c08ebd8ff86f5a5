"""The runtime of symdl's spectral ops (symdl/ops/linalg.py) for an array library with NumPy's
linalg names (jax.numpy, torch): one definition for every export. The checks of NumPy's
kernels (a repeated eigenvalue, a zero singular value) are not made here: traced or
autograd code cannot raise on the values it computes."""

from __future__ import annotations

from collections.abc import Callable


def spectral_kernels(xp, boolean) -> dict[str, Callable]:
    """The kernels for array module `xp` (its `linalg`, `where`, `eye`, `inf`), `boolean` its
    boolean dtype."""

    def unique_top_eigenvector(A):
        """The last column of eigh's eigenvectors."""
        return xp.linalg.eigh((A + A.T) / 2)[1][:, -1:]

    def eigenvalue_adjoint(A, G):
        """V diag(g) Vᵀ."""
        V = xp.linalg.eigh((A + A.T) / 2)[1]
        return (V * G.reshape(1, -1)) @ V.T

    def singular_value_adjoint(A, G):
        """U diag(g) Vᵀ, U Vᵀ when G is None."""
        U, _, Vt = xp.linalg.svd(A, full_matrices=False)
        return U @ Vt if G is None else (U * G.reshape(1, -1)) @ Vt

    def eigenvector_adjoint(A, G):
        """V (F ∘ VᵀG) Vᵀ symmetrised, F_ij = 1/(λ_j − λ_i), F_ii = 0 (a division by an
        infinite gap: no in-place fill, so it traces)."""
        w, V = xp.linalg.eigh((A + A.T) / 2)
        gap = xp.where(xp.eye(w.shape[0], dtype=boolean), xp.inf, w[None, :] - w[:, None])
        inner = V @ ((V.T @ G) / gap) @ V.T
        return (inner + inner.T) / 2

    return {
        f.__name__: f
        for f in (
            unique_top_eigenvector,
            eigenvalue_adjoint,
            singular_value_adjoint,
            eigenvector_adjoint,
        )
    }
