r"""Matrix expressions as symdl builds them: products, sums and Hadamard products flattened
without SymPy's re-canonicalisation (a name keeps pointing at its subexpression), and a scalar
function applied entry by entry, printed $f(Z)$ as in textbooks."""

from __future__ import annotations

import sympy
from sympy import Add, Dummy, Expr, Lambda, MatrixBase, S
from sympy.matrices.expressions import Identity, MatrixExpr, OneMatrix, ZeroMatrix
from sympy.matrices.expressions.applyfunc import ElementwiseApplyFunction
from sympy.matrices.expressions.matexpr import MatrixElement

ENTRY = Dummy(
    "x", real=True
)  # the one variable of every elementwise Lambda: equal functions compare equal


def hadamard(*factors):
    r"""The elementwise product, flattened; factors $c\mathbb{1}$ come out as scalars:
    $(c\mathbb{1}) \circ X = c X$."""
    coeff, rest = S.One, []
    for f in factors:
        c, mats = f.as_coeff_matrices() if isinstance(f, sympy.MatMul) else (S.One, [f])
        if len(mats) == 1 and isinstance(mats[0], OneMatrix):
            coeff *= c
        else:
            rest.append(f)
    if not rest:
        return scale(coeff, OneMatrix(*factors[0].shape))
    flat = [g for f in rest for g in (f.args if isinstance(f, sympy.HadamardProduct) else (f,))]
    if len(flat) > 1 and all(g == flat[0] for g in flat):
        # C^{∘2}, SymPy's canonical form of C ∘ C: an expression that also went through
        # SymPy's operators (which canonicalise) still contains the very node a name refers to
        return scale(coeff, sympy.HadamardPower(flat[0], len(flat)))
    # built, not canonicalised: the adjoint stays first, as in δ ∘ f'(Z)
    product = flat[0] if len(flat) == 1 else sympy.HadamardProduct(*flat)
    return scale(coeff, product)


def matmul(*factors):
    """A matrix product, flattened but nothing evaluated: SymPy's `*` and `doit` canonicalise
    by multiplying again, a deep doit that rewrites subexpressions (the order inside a
    Hadamard product, say) which a program step or a name refers to."""
    coeff, matrices = S.One, []
    for factor in factors:
        if isinstance(factor, sympy.MatMul):
            c, mats = factor.as_coeff_matrices()
            coeff, matrices = coeff * c, matrices + list(mats)
        elif isinstance(factor, MatrixExpr):
            matrices.append(factor)
        else:
            coeff *= factor
    shape = (matrices[0].rows, matrices[-1].cols)
    if any(isinstance(m, ZeroMatrix) for m in matrices) or coeff == 0:
        return ZeroMatrix(*shape)
    kept = [m for m in matrices if not isinstance(m, Identity)] or [Identity(shape[0])]
    if coeff == 1 and len(kept) == 1:
        return kept[0]
    return sympy.MatMul(*([] if coeff == 1 else [coeff]), *kept)


def matadd(*terms):
    """A matrix sum, flattened but nothing evaluated (see matmul)."""
    flat = [t for term in terms for t in (term.args if isinstance(term, sympy.MatAdd) else (term,))]
    kept = [t for t in flat if not isinstance(t, ZeroMatrix)]
    if not kept:
        return flat[0]
    return kept[0] if len(kept) == 1 else sympy.MatAdd(*kept)


def scale(c, M):
    """`c M` flattened, nothing evaluated inside `c` or `M` (see matmul)."""
    return M if c == 1 else matmul(c, M)


def _raised(tex: str, exp) -> str:
    """`tex` to the power `exp` (which SymPy's printer passes for a power of an op), if any."""
    return rf"\left({tex}\right)^{{{exp}}}" if exp is not None else tex


class elementwise(ElementwiseApplyFunction):
    r"""A scalar function applied to each entry of a matrix, printed $f(Z)$ as in textbooks."""

    def __new__(cls, function, expr):
        if not isinstance(function, Lambda):
            function = Lambda(ENTRY, function(ENTRY))
        elif function.variables != (ENTRY,):
            function = Lambda(ENTRY, function.expr.xreplace({function.variables[0]: ENTRY}))
        return MatrixExpr.__new__(cls, function, sympy.sympify(expr))

    @property
    def body(self) -> Expr:
        """f(x) with x the entry variable ENTRY."""
        return self.function.expr

    def doit(self, **hints):
        arg = self.expr.doit(**hints) if hints.get("deep", True) else self.expr
        if isinstance(arg, MatrixBase):
            return arg.applyfunc(self.function)
        return elementwise(self.function, arg)

    def _entry(self, i, j, **kwargs):
        return self.body.xreplace({ENTRY: self.expr[i, j]})

    def _shown(self, printer, arg_text: str) -> str:
        """The body printed with the matrix in place of its entry; a matrix that is itself a
        sum or product is parenthesised unless the body already encloses it (1/(1 + e^x))."""
        marker = sympy.Symbol("SYMDLENTRY")
        shown = printer._print(self.body.xreplace({ENTRY: marker}))
        plain = isinstance(self.expr, sympy.MatrixSymbol | MatrixElement) or self.expr.is_Atom
        enclosed = all(
            shown[k - 1 : k] in ("(", "{") and shown[k + 10 : k + 11] in (")", "}")
            for k in _occurrences(shown, "SYMDLENTRY")
        )
        if not plain and not enclosed:
            latex = shown.startswith("\\") or "\\" in shown or "{" in shown
            arg_text = rf"\left({arg_text}\right)" if latex else f"({arg_text})"
        return shown.replace("SYMDLENTRY", arg_text)

    @property
    def is_indicator(self) -> bool:
        """The step function 1[x > 0] (ReLU's derivative, 0 at the kink)."""
        return self.body == sympy.Heaviside(ENTRY, 0)

    def _latex(self, printer, exp=None):
        if self.is_indicator:
            tex = rf"\mathbb{{1}}\left[{printer._print(self.expr)} > 0\right]"
        else:
            tex = self._shown(printer, printer._print(self.expr))
            if not (self.body.is_Function and self.body.args == (ENTRY,)):
                tex = rf"\left[{tex}\right]_{{\circ}}"  # an elementwise expression, said so
        return _raised(tex, exp)

    def _sympystr(self, printer):
        if self.is_indicator:
            return f"({printer._print(self.expr)} > 0)"
        if self.body.is_Function and self.body.args == (ENTRY,):
            return self._shown(printer, printer._print(self.expr))
        return f"elementwise({self._shown(printer, printer._print(self.expr))})"


def _occurrences(text: str, part: str) -> list[int]:
    found, k = [], text.find(part)
    while k >= 0:
        found.append(k)
        k = text.find(part, k + 1)
    return found


def as_elementwise(expr: Expr, arg, nested: bool = False) -> object:
    """Scalar `expr` in ENTRY as a matrix expression in `arg`, with Hadamard products and
    powers where the scalar has products and powers: $y(1 - y) \\mapsto A \\circ (\\mathbb{1} - A)$.
    `nested`: a function of a function, f(g(x)), also as f applied to the matrix g(A), so that
    g(A) is a value of its own (the compiler's common-subexpression elimination shares it)."""
    shape = arg.shape
    if expr == ENTRY:
        return arg
    if not expr.has(ENTRY):
        return expr * OneMatrix(*shape)
    if isinstance(expr, sympy.Add):  # constants first: 1 - A, as written by hand
        terms = sorted(expr.args, key=lambda t: t.has(ENTRY))
        return sympy.MatAdd(*(as_elementwise(t, arg, nested) for t in terms))
    if isinstance(expr, sympy.Mul):
        coeff, rest = expr.as_independent(ENTRY, as_Add=False)
        parts = (as_elementwise(f, arg, nested) for f in sympy.Mul.make_args(rest))
        product = hadamard(*parts)
        return product if coeff == 1 else coeff * product
    if isinstance(expr, sympy.Pow) and expr.exp.is_Integer and expr.exp > 0:
        # f(x)^k as f(Z)^{∘k}: f(Z) is then one value however often the derivative uses it
        return sympy.HadamardPower(as_elementwise(expr.base, arg, nested), expr.exp)
    inner = [a for a in expr.args if a.has(ENTRY)]
    splittable = isinstance(expr, sympy.Pow | sympy.Function) and not isinstance(
        expr, sympy.Piecewise
    )
    if nested and splittable and len(inner) == 1 and inner[0] != ENTRY:
        outer = expr.func(*(ENTRY if a is inner[0] else a for a in expr.args))
        return elementwise(Lambda(ENTRY, outer), as_elementwise(inner[0], arg, nested))
    return elementwise(Lambda(ENTRY, expr), arg)


class unit_matrix(MatrixExpr):
    r"""$E_{ij}$: the matrix of the given size with a one at entry $(i, j)$ and zeros elsewhere,
    the pullback of the entry $Z_{ij}$: $\partial Z_{ij} / \partial Z = E_{ij}$."""

    def __new__(cls, i, j, rows, cols):
        return MatrixExpr.__new__(cls, *map(sympy.sympify, (i, j, rows, cols)))

    @property
    def shape(self):
        return self.args[2], self.args[3]

    def _entry(self, k, l, **kwargs):  # noqa: E741 - the usual index names
        i, j = self.args[:2]
        return sympy.KroneckerDelta(k, i) * sympy.KroneckerDelta(l, j)

    def _eval_transpose(self):
        i, j, rows, cols = self.args
        return unit_matrix(j, i, cols, rows)

    def _latex(self, printer, exp=None):
        i, j = (printer._print(a) for a in self.args[:2])
        return _raised(rf"E_{{{i}, {j}}}", exp)

    def _sympystr(self, printer):
        return f"E[{', '.join(printer._print(a) for a in self.args)}]"

    def _numpycode(self, printer):
        i, j, rows, cols = (printer._print(a) for a in self.args)
        # one row of the identity of size rows*cols, folded: a one at (i, j), any size
        eye = printer._module_format("numpy.eye")
        return f"{eye}(1, ({rows})*({cols}), ({i})*({cols}) + ({j})).reshape(({rows}), ({cols}))"


class kronecker_pullback(MatrixExpr):
    r"""The adjoint of one factor of $A \otimes B$ given the adjoint $G$ of the product:
    $\langle G, \cdot \otimes B\rangle$ (entry $(i, j)$ is $\sum_{kl} G_{ik,jl} B_{kl}$) for the
    left factor, $\langle G, A \otimes \cdot\rangle$ for the right one."""

    def __new__(cls, G, other, side):
        return MatrixExpr.__new__(cls, G, other, sympy.sympify(side))

    @property
    def shape(self):
        G, other, _ = self.args
        rows, cols = (sympy.sympify(d) for d in G.shape)
        return sympy.simplify(rows / other.rows), sympy.simplify(cols / other.cols)

    def _blocks(self):
        """(p, r, q, s): G is (p r) x (q s), the left factor p x q, the right one r x s."""
        G, other, side = self.args
        mine = self.shape
        if side == 0:
            return mine[0], other.rows, mine[1], other.cols
        return other.rows, mine[0], other.cols, mine[1]

    def _entry(self, i, j, **kwargs):
        G, other, side = self.args
        p, r, q, s = (sympy.sympify(b) for b in self._blocks())
        rows, cols = (sympy.sympify(d) for d in other.shape)
        if not (rows.is_Integer and cols.is_Integer):
            raise ValueError(f"{self}: entries need numeric sizes")
        if side == 0:
            pairs = [(i * r + k, j * s + l, k, l) for k in range(r) for l in range(s)]  # noqa: E741
        else:
            pairs = [(k * r + i, l * s + j, k, l) for k in range(p) for l in range(q)]  # noqa: E741
        return Add(*(G[a, b] * other[k, c] for a, b, k, c in pairs))

    def doit(self, **hints):
        args = [a.doit(**hints) for a in self.args] if hints.get("deep", True) else self.args
        result = kronecker_pullback(*args)
        if all(isinstance(a, MatrixBase) for a in args[:2]):
            return result.as_explicit()
        return result

    def _latex(self, printer, exp=None):
        G, other, side = (printer._print(a) for a in self.args)
        inner = rf"\cdot \otimes {other}" if self.args[2] == 0 else rf"{other} \otimes \cdot"
        return _raised(rf"\left\langle {G}, {inner} \right\rangle", exp)

    def _sympystr(self, printer):
        G, other, _ = (printer._print(a) for a in self.args)
        inner = f"· ⊗ {other}" if self.args[2] == 0 else f"{other} ⊗ ·"
        return f"<{G}, {inner}>"

    def _numpycode(self, printer):
        G, other, side = self.args
        blocks = ", ".join(f"({printer._print(b)})" for b in self._blocks())
        spec = "'ikjl,kl->ij'" if side == 0 else "'ikjl,ij->kl'"
        einsum = printer._module_format("numpy.einsum")
        return f"{einsum}({spec}, ({printer._print(G)}).reshape({blocks}), {printer._print(other)})"


class entry(MatrixElement):
    """The entry $Z_{ij}$ of a matrix expression, kept as an entry: SymPy's own MatrixElement
    turns the entry of a product into an index sum whenever it is rebuilt or evaluated."""

    def doit(self, **hints):
        args = [a.doit(**hints) for a in self.args] if hints.get("deep", True) else self.args
        if isinstance(args[0], MatrixBase):
            return args[0][args[1], args[2]]
        return entry(*args)
