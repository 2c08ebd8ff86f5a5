r"""Spectral functions of matrices and their vector-Jacobian rules: eigenvalues and eigenvectors
of a symmetric matrix, the largest eigenvalue, singular values and the nuclear norm.

For a symmetric $A = V \Lambda V^\top$ with distinct eigenvalues, $d\lambda_i = v_i^\top dA\, v_i$,
so $\bar A = V \operatorname{diag}(\bar\lambda) V^\top$; for $A = U \Sigma V^\top$,
$d\sigma_i = u_i^\top dA\, v_i$, so $\bar A = U \operatorname{diag}(\bar\sigma) V^\top$ and the
nuclear norm $\|A\|_* = \sum_i \sigma_i$ has $\bar A = U V^\top$. The eigenvector rule is
$\bar A = V\left(F \circ V^\top \bar V\right) V^\top$, $F_{ij} = 1/(\lambda_j - \lambda_i)$ off the
diagonal, symmetrised. Their NumPy forms call numpy.linalg.eigh and svd; the rules hold where the
eigenvalues (singular values) are distinct and, for the SVD ones, nonzero.
"""

from __future__ import annotations

import numpy as np
import sympy
from sympy import ImmutableMatrix, Integer, MatrixBase, OneMatrix, S
from sympy.matrices.expressions import MatrixExpr, MatrixSymbol
from sympy.matrices.expressions.matexpr import MatrixElement

from symdl.core.matrices import hadamard
from symdl.ops.base import MatrixLoss, MatrixOp


class SpectralError(TypeError):
    """A spectral op given an argument it cannot take (a non-square matrix, symbolic entries)."""


class RepeatedEigenvalueError(ValueError):
    """A derivative asked at a repeated eigenvalue, where it does not exist: the eigenvectors
    of the repeated eigenvalue are not unique (any rotation within its eigenspace serves), and
    $\\lambda_{\\max}$ or an eigenvector has a kink there, not a gradient."""


GAP_TOLERANCE = 1e-10  # relative to the largest |eigenvalue|: below it, eigenvalues are equal


def _repeated(w: np.ndarray) -> np.ndarray:
    """Which neighbouring pairs of the ascending eigenvalues `w` are equal (to the tolerance)."""
    return np.diff(w) <= GAP_TOLERANCE * max(1.0, float(np.abs(w).max(initial=0.0)))


def unique_top_eigenvector(A: np.ndarray) -> np.ndarray:
    """The unit eigenvector of the largest eigenvalue of symmetric `A`, a column (the runtime
    of `top_eigenvector`, and so of the gradient of `max_eigenvalue`).

    Raises:
        RepeatedEigenvalueError: the largest eigenvalue is repeated.
    """
    w, V = np.linalg.eigh((A + A.T) / 2)
    if len(w) > 1 and _repeated(w)[-1]:
        raise RepeatedEigenvalueError(
            f"max_eigenvalue: the largest eigenvalue {w[-1]:.6g} of the {A.shape[0]}x"
            f"{A.shape[1]} matrix is repeated (eigenvalues {np.array2string(w, precision=4)}); "
            "its eigenvector is not unique and the largest eigenvalue has no derivative there "
            "(only one-sided ones): move the point, or differentiate a symmetric function of "
            "the repeated eigenvalues (their sum, a trace) instead"
        )
    return V[:, -1:]


def _numeric(op: str, A) -> np.ndarray:
    """The entries of explicit matrix `A` as floats, or a SpectralError naming `op`."""
    try:
        return np.array(A.evalf(), dtype=float)
    except TypeError:
        raise SpectralError(
            f"{op}: the entries of its argument are symbolic ({A.free_symbols}); it has no "
            "closed form here: evaluate it at numbers, or differentiate it with sd.grad"
        ) from None


def _square(op: str, A) -> None:
    if A.shape[0] != A.shape[1]:
        raise SpectralError(f"{op}: the matrix has shape {A.shape}; it must be square (symmetric)")


def _eigh(op, A):
    M = _numeric(op, A)
    return np.linalg.eigh((M + M.T) / 2)


def _svd(op, A):
    U, s, Vt = np.linalg.svd(_numeric(op, A), full_matrices=False)
    return U, s, Vt.T


def _diag_between(left, g, right):
    """left diag(g) rightᵀ, written with a Hadamard product: (left ∘ 1 gᵀ) rightᵀ."""
    return hadamard(left, OneMatrix(left.shape[0], 1) * g.T) * right.T


def _stays_unevaluated(self, hints):
    """Numbers in: computed. Symbolic entries: the op on the explicit matrix, unevaluated (it
    has no closed form; NumPy evaluates it)."""
    args = [a.doit(**hints) for a in self.args] if hints.get("deep", True) else self.args
    explicit = [a for a in args if isinstance(a, MatrixBase)]
    if explicit and all(not a.free_symbols for a in explicit):
        return self.explicit(*args)
    return self.func(*args)


class _Spectral(MatrixOp):
    """A matrix-valued spectral op: an entry of it stays an entry (it has no entrywise formula)."""

    has_entrywise_form = False

    def doit(self, **hints):
        return _stays_unevaluated(self, hints)

    def _entry(self, i, j, **kwargs):
        return MatrixElement(self, i, j)


def _numpy(printer, expr: str, *args) -> str:
    """`expr` with {linalg} and {A} (the first argument printed) filled in."""
    return expr.format(
        linalg=printer._module_format("numpy.linalg"),
        A=printer._print(args[0]),
        ops=printer._module_format("symdl.ops.linalg"),
        rest=", ".join(printer._print(a) for a in args[1:]),
    )


class eigvalsh(_Spectral):
    r"""The eigenvalues of a symmetric matrix in ascending order, a column:
    $\bar A = V \operatorname{diag}(\bar\lambda) V^\top$."""

    name = "eigvalsh"
    latex_name = r"\boldsymbol{\lambda}"

    def __new__(cls, A):
        _square(cls.name, A)
        return MatrixOp.__new__(cls, A)

    @property
    def shape(self):
        return (self.args[0].shape[0], S.One)

    def explicit(self, A):
        return ImmutableMatrix(_eigh(self.name, A)[0][:, None])

    def vjp(self, index, G, out):
        return _EigenvalueAdjoint(self.args[0], G)

    @classmethod
    def example(cls):
        X, C = MatrixSymbol("X", 3, 3), MatrixSymbol("c", 3, 1)
        return (C.T * cls(X.T * X))[0, 0], [X], {X: (-2.0, 2.0), C: (-1.0, 1.0)}

    def _numpycode(self, printer):
        return _numpy(printer, "{linalg}.eigvalsh({A})[:, None]", *self.args)


class eigh_vectors(_Spectral):
    r"""The orthonormal eigenvectors of a symmetric matrix, as columns in the order of
    `eigvalsh` (each column's sign is NumPy's; a loss should not depend on it):
    $\bar A = V\left(F \circ V^\top \bar V\right) V^\top$, symmetrised."""

    name = "eigh_vectors"
    latex_name = r"V"

    def __new__(cls, A):
        _square(cls.name, A)
        return MatrixOp.__new__(cls, A)

    @property
    def shape(self):
        return self.args[0].shape

    def explicit(self, A):
        return ImmutableMatrix(_eigh(self.name, A)[1])

    def vjp(self, index, G, out):
        return _EigenvectorAdjoint(self.args[0], G)

    def _numpycode(self, printer):
        return _numpy(printer, "{linalg}.eigh({A})[1]", *self.args)


class _EigenvalueAdjoint(_Spectral):
    r"""The adjoint of A given the adjoint g of its eigenvalues, $V \operatorname{diag}(g)
    V^\top$; refused at a repeated eigenvalue whose entries of g differ (NumPy only)."""

    name = "eigenvalue_adjoint"

    @property
    def shape(self):
        return self.args[0].shape

    def explicit(self, A, G):
        return ImmutableMatrix(eigenvalue_adjoint(_numeric(self.name, A), _numeric(self.name, G)))

    def _latex(self, printer, exp=None):
        V = eigh_vectors(self.args[0])
        tex = printer._print(_diag_between(V, self.args[1], V))
        return tex if exp is None else rf"\left({tex}\right)^{{{exp}}}"

    def _sympystr(self, printer):
        V = eigh_vectors(self.args[0])
        return printer._print(_diag_between(V, self.args[1], V))

    def _numpycode(self, printer):
        return _numpy(printer, "{ops}.eigenvalue_adjoint({A}, {rest})", *self.args)


def eigenvalue_adjoint(A: np.ndarray, G: np.ndarray) -> np.ndarray:
    """$V \\operatorname{diag}(g) V^\top$, the pullback of the ascending eigenvalues of symmetric
    `A` with adjoint `G` (a column).

    Raises:
        RepeatedEigenvalueError: a repeated eigenvalue whose entries of `G` differ: a weighted
            sum of eigenvalues that are equal, with unequal weights, has a kink there (the
            sorted eigenvalues swap), not a gradient; equal weights (a trace) are fine.
    """
    w, V = np.linalg.eigh((A + A.T) / 2)
    g = np.asarray(G, dtype=float).reshape(-1)
    repeated = _repeated(w)
    scale = max(1.0, float(np.abs(g).max(initial=0.0)))
    unequal = repeated & (np.abs(np.diff(g)) > 1e-12 * scale)
    if unequal.any():
        k = int(np.flatnonzero(unequal)[0])
        raise RepeatedEigenvalueError(
            f"eigvalsh: eigenvalues {k} and {k + 1} ({w[k]:.6g}) of the {A.shape[0]}x"
            f"{A.shape[1]} matrix are equal and the loss weighs them differently ({g[k]:.6g} "
            f"and {g[k + 1]:.6g}): sorted eigenvalues have a kink where they meet, not a "
            "derivative; move the point, or weigh repeated eigenvalues alike (their sum, a trace)"
        )
    return (V * g[None, :]) @ V.T


class _EigenvectorAdjoint(_Spectral):
    """The adjoint of A given the adjoint G of its eigenvector matrix (NumPy only)."""

    name = "eigenvector_adjoint"
    latex_name = r"\overline{A}_{V}"

    @property
    def shape(self):
        return self.args[0].shape

    def explicit(self, A, G):
        return ImmutableMatrix(eigenvector_adjoint(_numeric(self.name, A), _numeric(self.name, G)))

    def _numpycode(self, printer):
        return _numpy(printer, "{ops}.eigenvector_adjoint({A}, {rest})", *self.args)


def eigenvector_adjoint(A: np.ndarray, G: np.ndarray) -> np.ndarray:
    """$V (F \\circ V^\\top G) V^\\top$ symmetrised, $F_{ij} = 1/(\\lambda_j - \\lambda_i)$, $F_{ii} = 0$."""
    w, V = np.linalg.eigh((A + A.T) / 2)
    if _repeated(w).any():
        raise RepeatedEigenvalueError(
            f"eigh_vectors: the {A.shape[0]}x{A.shape[1]} matrix has a repeated eigenvalue "
            f"(eigenvalues {np.array2string(w, precision=4)}); its eigenvectors are not unique "
            "and have no derivative there (the rule divides by the gap between eigenvalues): "
            "move the point, or use a loss that depends only on the eigenvalues"
        )
    gap = w[None, :] - w[:, None]
    np.fill_diagonal(gap, np.inf)
    inner = V @ ((V.T @ G) / gap) @ V.T
    return (inner + inner.T) / 2


class max_eigenvalue(MatrixLoss):
    r"""The largest eigenvalue $\lambda_{\max}(A)$ of a symmetric matrix:
    $\bar A = \bar\lambda\, v v^\top$ with $v$ its unit eigenvector."""

    name = "max_eigenvalue"
    has_entrywise_form = False

    def doit(self, **hints):
        return _stays_unevaluated(self, hints)

    latex_name = r"\lambda_{\max}"

    def __new__(cls, A):
        _square(cls.name, A)
        return MatrixLoss.__new__(cls, A)

    def explicit(self, A):
        return sympy.Float(_eigh(self.name, A)[0][-1])

    def vjp(self, index, G, out):
        v = top_eigenvector(self.args[0])
        return G * (v * v.T)

    @classmethod
    def example(cls):
        X = MatrixSymbol("X", 3, 3)
        return cls(X.T * X), [X], {X: (-2.0, 2.0)}

    def _numpycode(self, printer):
        return _numpy(printer, "{linalg}.eigvalsh({A})[-1]", *self.args)


class top_eigenvector(_Spectral):
    """The unit eigenvector of the largest eigenvalue of a symmetric matrix, a column."""

    name = "top_eigenvector"
    latex_name = r"v_{\max}"

    @property
    def shape(self):
        return (self.args[0].shape[0], S.One)

    def explicit(self, A):
        return ImmutableMatrix(unique_top_eigenvector(_numeric(self.name, A)))

    def _numpycode(self, printer):
        return _numpy(printer, "{ops}.unique_top_eigenvector({A})", *self.args)


class singular_values(_Spectral):
    r"""The singular values of $A$ in descending order, a column of $\min(m, n)$ entries:
    $\bar A = U \operatorname{diag}(\bar\sigma) V^\top$."""

    name = "singular_values"
    latex_name = r"\boldsymbol{\sigma}"

    @property
    def shape(self):
        return (sympy.Min(*self.args[0].shape), S.One)

    def explicit(self, A):
        return ImmutableMatrix(_svd(self.name, A)[1][:, None])

    def vjp(self, index, G, out):
        return _SingularValueAdjoint(self.args[0], G)

    @classmethod
    def example(cls):
        X, C = MatrixSymbol("X", 3, 2), MatrixSymbol("c", 2, 1)
        return (C.T * cls(X))[0, 0], [X], {X: (-2.0, 2.0), C: (-1.0, 1.0)}

    def _numpycode(self, printer):
        return _numpy(printer, "{linalg}.svd({A}, compute_uv=False)[:, None]", *self.args)


class _SingularValueAdjoint(_Spectral):
    r"""The adjoint of A given the adjoint g of its singular values, $U \operatorname{diag}(g)
    V^\top$ ($U V^\top$ when g is all ones); refused where that is no derivative (NumPy only)."""

    name = "singular_value_adjoint"

    @property
    def shape(self):
        return self.args[0].shape

    def explicit(self, A, G):
        A, G = _numeric(self.name, A), _numeric(self.name, G)
        return ImmutableMatrix(singular_value_adjoint(A, G))

    def _shown(self):
        A, G = self.args
        U, V = svd_factor(A, Integer(0)), svd_factor(A, Integer(1))
        return U * V.T if isinstance(G, OneMatrix) else _diag_between(U, G, V)

    def _latex(self, printer, exp=None):
        tex = printer._print(self._shown())
        return tex if exp is None else rf"\left({tex}\right)^{{{exp}}}"

    def _sympystr(self, printer):
        return printer._print(self._shown())

    def _numpycode(self, printer):
        A, G = self.args
        weights = "None" if isinstance(G, OneMatrix) else printer._print(G)
        return _numpy(printer, "{ops}.singular_value_adjoint({A}, " + weights + ")", A)


def singular_value_adjoint(A: np.ndarray, G: np.ndarray | None) -> np.ndarray:
    """$U \\operatorname{diag}(g) V^\top$ for the thin SVD of `A` (g all ones when `G` is None:
    the nuclear norm's $U V^\top$).

    Raises:
        RepeatedEigenvalueError: a singular value of 0 with a nonzero weight (|x| at 0: no
            derivative), or equal singular values weighed differently (they swap there).
    """
    U, s, Vt = np.linalg.svd(A, full_matrices=False)
    g = np.ones_like(s) if G is None else np.asarray(G, dtype=float).reshape(-1)
    tolerance = GAP_TOLERANCE * max(1.0, float(s.max(initial=0.0)))
    scale = max(1.0, float(np.abs(g).max(initial=0.0)))
    zero = (s <= tolerance) & (np.abs(g) > 1e-12 * scale)
    unequal = (np.abs(np.diff(s)) <= tolerance) & (np.abs(np.diff(g)) > 1e-12 * scale)
    op = "nuclear_norm" if G is None else "singular_values"
    if zero.any():
        raise RepeatedEigenvalueError(
            f"{op}: the {A.shape[0]}x{A.shape[1]} matrix has a singular value 0 (singular "
            f"values {np.array2string(s, precision=4)}) that the loss depends on: a singular "
            "value is |.| of a direction there, with no derivative; move the point (a matrix of "
            "full rank), or smooth the loss (sqrt(s**2 + eps))"
        )
    if unequal.any():
        k = int(np.flatnonzero(unequal)[0])
        raise RepeatedEigenvalueError(
            f"{op}: singular values {k} and {k + 1} ({s[k]:.6g}) of the {A.shape[0]}x"
            f"{A.shape[1]} matrix are equal and the loss weighs them differently ({g[k]:.6g} "
            f"and {g[k + 1]:.6g}): sorted singular values have a kink where they meet; move the "
            "point, or weigh repeated singular values alike"
        )
    return (U * g[None, :]) @ Vt


class svd_factor(_Spectral):
    """The thin SVD's left (`which` 0: U, m x k) or right (`which` 1: V, n x k) singular
    vectors, in the order of `singular_values`."""

    name = "svd_factor"
    latex_name = r"\operatorname{svd}"

    @property
    def shape(self):
        A, which = self.args
        return (A.shape[int(which)], sympy.Min(*A.shape))

    def explicit(self, A, which):
        return ImmutableMatrix(_svd(self.name, A)[0 if int(which) == 0 else 2])

    def _latex_body(self, printer):
        return (
            rf"{'U' if int(self.args[1]) == 0 else 'V'}\left({printer._print(self.args[0])}\right)"
        )

    def _numpycode(self, printer):
        if int(self.args[1]) == 0:
            return _numpy(printer, "{linalg}.svd({A}, full_matrices=False)[0]", *self.args)
        return _numpy(printer, "{linalg}.svd({A}, full_matrices=False)[2].T", *self.args)


class nuclear_norm(MatrixLoss):
    r"""The nuclear norm $\|A\|_* = \sum_i \sigma_i(A)$: $\bar A = \bar s\, U V^\top$."""

    name = "nuclear_norm"
    has_entrywise_form = False

    def doit(self, **hints):
        return _stays_unevaluated(self, hints)

    latex_name = r"\left\|\cdot\right\|_*"

    def explicit(self, A):
        return sympy.Float(_svd(self.name, A)[1].sum())

    def vjp(self, index, G, out):
        A = self.args[0]
        return G * _SingularValueAdjoint(A, OneMatrix(sympy.Min(*A.shape), 1))

    @classmethod
    def example(cls):
        X = MatrixSymbol("X", 3, 2)
        return cls(X), [X], {X: (-2.0, 2.0)}

    def _latex_body(self, printer):
        return rf"\left\|{printer._print(self.args[0])}\right\|_*"

    def _numpycode(self, printer):
        return _numpy(printer, "{linalg}.norm({A}, 'nuc')", *self.args)


def _is_matrix(A) -> bool:
    return isinstance(A, MatrixExpr | MatrixBase)
