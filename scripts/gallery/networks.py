"""Gallery entries for networks: backpropagation, softmax and sigmoid losses, normalisation,
convolution, pooling and attention, each checked against a published formula or sympy.diff."""

from __future__ import annotations

import numpy as np
import sympy
from sympy import HadamardPower, MatAdd, MatrixSymbol, OneMatrix, Rational, Symbol

import symdl as sd
from gallery.entry import Entry, N, dL, entry, grad_check, part, upstream
from gallery.reference import Claim, ExplicitDiff, Property, substitute
from symdl.core.explicit import evaluate
from symdl.core.matrices import elementwise, hadamard
from symdl.ops import Geometry, conv2d, max_pool2d
from symdl.ops import mean as mean_of


@entry
def mlp_backprop() -> Entry:
    d, h, k = sympy.symbols("d h k", integer=True, positive=True)
    X, Y = MatrixSymbol("X", d, N), MatrixSymbol("Y", k, N)
    W1, b1 = MatrixSymbol("W^{(1)}", h, d), MatrixSymbol("b^{(1)}", h, 1)
    W2, b2 = MatrixSymbol("W^{(2)}", k, h), MatrixSymbol("b^{(2)}", k, 1)
    Z1 = W1 * X + b1 * OneMatrix(1, N)
    A1 = sd.sigmoid(Z1)
    Z2 = W2 * A1 + b2 * OneMatrix(1, N)
    loss = sd.cross_entropy(Z2, Y, normalized=True)
    params = [W1, b1, W2, b2]
    names = {Z1: "Z^{(1)}", A1: "A^{(1)}", Z2: "Z^{(2)}"}

    D1, D2 = MatrixSymbol(r"\Delta^{(1)}", h, N), MatrixSymbol(r"\Delta^{(2)}", k, N)
    dsigma = MatrixSymbol(r"\sigma'\left(Z^{(1)}\right)", h, N)
    A1_, Z1_, Z2_ = (MatrixSymbol(names[e], *e.shape) for e in (A1, Z1, Z2))
    where = {
        D2: (sd.softmax(Z2_) - Y) / N,
        D1: hadamard(W2.T * D2, dsigma),
        dsigma: hadamard(A1_, OneMatrix(h, N) - A1_),
        A1_: sd.sigmoid(Z1_),
        Z1_: Z1,
        Z2_: Z2,
    }
    source = "Nielsen (2015), ch. 2, equations BP1-BP4, in matrix form"
    claims = [
        Claim(dL("W^{(2)}"), D2 * A1_.T, loss, W2, source, where),
        Claim(dL("b^{(2)}"), D2 * OneMatrix(N, 1), loss, b2, source, where),
        Claim(dL("W^{(1)}"), D1 * X.T, loss, W1, source, where),
        Claim(dL("b^{(1)}"), D1 * OneMatrix(N, 1), loss, b1, source, where),
    ]
    return Entry(
        title="Backpropagation through a two-layer network",
        prose=(
            "A sigmoid hidden layer and a softmax output trained with cross-entropy, on a batch "
            "of $N$ examples (one per column, biases broadcast by $\\mathbf{1}_N^T$). symdl "
            "derives the textbook recursion: the error $\\Delta^{(l)}$ of a layer is "
            "$(W^{(l+1)})^T \\Delta^{(l+1)} \\circ f'(Z^{(l)})$ and the weight gradient is "
            "$\\Delta^{(l)} A^{(l-1)T}$."
        ),
        derivation=sd.derive(loss, params, names=names),
        notation="delta",
        parts=(
            part(
                "Textbook form (verified)",
                (D2, where[D2]),
                (dsigma, where[dsigma]),
                (D1, where[D1]),
                *(c.equation for c in claims),
            ),
        ),
        checks=(
            *claims,
            ExplicitDiff(loss, tuple(params), sizes={d: 2, h: 3, k: 2, N: 2}),
        ),
    )


@entry
def softmax_cross_entropy() -> Entry:
    k = Symbol("k", integer=True, positive=True)
    Z, Y = MatrixSymbol("Z", k, N), MatrixSymbol("Y", k, N)
    P = sd.softmax(Z)
    loss = -(1 / N) * OneMatrix(1, k) * hadamard(Y, elementwise(sympy.log, P)) * OneMatrix(N, 1)
    P_ = MatrixSymbol("P", k, N)
    general = Claim(
        dL("Z"),
        (hadamard(P_, OneMatrix(k, k) * Y) - Y) / N,
        loss,
        Z,
        "the adjoints above, simplified by hand",
        {P_: P},
    )
    textbook = Claim(
        dL("Z"),
        (P_ - Y) / N,
        sd.cross_entropy(Z, Y, normalized=True),  # columns of Y that sum to 1
        Z,
        "Bishop (2006), Sec. 4.3.4",
        {P_: P},
    )
    one_hot = np.array([[1.0, 0.0], [0.0, 0.0], [0.0, 1.0]])
    return Entry(
        title="Softmax cross-entropy",
        prose=(
            "The mean cross-entropy $-\\frac{1}{N}\\sum y \\log \\operatorname{softmax}(z)$ of "
            "logits $Z$ against targets $Y$. The softmax Jacobian and the logarithm cancel: "
            "when every column of $Y$ sums to 1 (one-hot labels), the gradient is "
            "$(\\operatorname{softmax}(Z) - Y)/N$."
        ),
        derivation=sd.derive(loss, Z, names={P: "P"}),
        parts=(
            part("Simplified (verified)", general.equation),
            part("One-hot targets (verified)", textbook.equation),
        ),
        checks=(
            general,
            textbook,
            ExplicitDiff(
                loss,
                (Z,),
                sizes={k: 3, N: 2},
                claimed=(substitute(textbook.rhs, textbook.where),),
                fixed={Y: one_hot},
            ),
        ),
    )


@entry
def sigmoid_binary_cross_entropy() -> Entry:
    w, x, b, y = sympy.symbols("w x b y", real=True)
    z = Symbol("z", real=True)
    logit = w * x + b
    loss = sd.binary_cross_entropy(sd.sigmoid(logit), y)
    where = {z: logit}
    source = "Nielsen (2015), ch. 3"
    claims = [
        Claim(dL("z"), sd.sigmoid(z) - y, sd.binary_cross_entropy(sd.sigmoid(z), y), z, source),
        Claim(dL("w"), (sd.sigmoid(z) - y) * x, loss, w, source, where),
        Claim(dL("b"), sd.sigmoid(z) - y, loss, b, source, where),
    ]
    return Entry(
        title="Sigmoid with binary cross-entropy",
        prose=(
            "Logistic regression: $p = \\sigma(z)$ with $z = wx + b$ and the loss "
            "$-y\\log p - (1-y)\\log(1-p)$. The factor $\\sigma'(z) = p(1-p)$ cancels the "
            "denominator of the loss derivative, leaving $\\sigma(z) - y$."
        ),
        derivation=sd.derive(loss, [w, b], names={logit: "z", sd.sigmoid(logit): "p"}),
        parts=(part("Simplified (verified)", *(c.equation for c in claims)),),
        checks=(
            *claims,
            ExplicitDiff(loss, (w, b), claimed=tuple(substitute(c.rhs, where) for c in claims[1:])),
            grad_check(loss, [w, b]),
        ),
    )


def _normalisation(axis: int, title: str, prose: str) -> Entry:
    """Batch norm (axis 1: each feature over the batch) or layer norm (axis 0: each example
    over its features), with an upstream gradient G; the published backward in compact form."""
    d = Symbol("d", integer=True, positive=True)
    eps = Symbol("epsilon", positive=True)
    X, G = MatrixSymbol("X", d, N), MatrixSymbol("G", d, N)
    gamma, beta = MatrixSymbol("gamma", d, 1), MatrixSymbol("beta", d, 1)
    count = N if axis == 1 else d

    def spread(v):  # a statistic (column for batch norm, row for layer norm) over X's shape
        return v * OneMatrix(1, N) if axis == 1 else OneMatrix(d, 1) * v

    mu = mean_of(X, axis)
    centred = X - spread(mu)
    var = mean_of(hadamard(centred, centred), axis)
    inv_std = HadamardPower(var + eps * OneMatrix(*var.shape), Rational(-1, 2))
    loss = upstream(
        G,
        MatAdd(hadamard(gamma * OneMatrix(1, N), centred, spread(inv_std)), beta * OneMatrix(1, N)),
    )
    names = {mu: "mu", centred: "C", var: "sigma^2", inv_std: "s"}
    derivation = sd.derive(loss, [X, gamma, beta], names=names)

    mu_, var_, s = (MatrixSymbol(names[e], *e.shape) for e in (mu, var, inv_std))
    X_hat, G_hat = MatrixSymbol("Xhat", d, N), MatrixSymbol("Ghat", d, N)
    where = {
        X_hat: hadamard(X - spread(mu_), spread(s)),
        G_hat: hadamard(gamma * OneMatrix(1, N), G),
        s: HadamardPower(var_ + eps * OneMatrix(*var.shape), Rational(-1, 2)),
        var_: mean_of(HadamardPower(X - spread(mu_), 2), axis),
        mu_: mean_of(X, axis),
    }

    def total(M):  # the sums the formula needs, spread back over X's shape
        return spread(M * OneMatrix(N, 1)) if axis == 1 else spread(OneMatrix(1, d) * M)

    dX = (
        hadamard(
            spread(s), count * G_hat - total(G_hat) - hadamard(X_hat, total(hadamard(G_hat, X_hat)))
        )
        / count
    )
    source = "Ioffe and Szegedy (2015)" if axis == 1 else "Ba, Kiros and Hinton (2016)"
    claims = [
        Claim(dL("X"), dX, loss, X, source, where),
        Claim(dL(r"\gamma"), hadamard(G, X_hat) * OneMatrix(N, 1), loss, gamma, source, where),
        Claim(dL(r"\beta"), G * OneMatrix(N, 1), loss, beta, source, where),
    ]
    return Entry(
        title=title,
        prose=prose,
        derivation=derivation,
        parts=(
            part(
                "Published form (verified)",
                (X_hat, where[X_hat]),
                (G_hat, where[G_hat]),
                *(c.equation for c in claims),
            ),
        ),
        checks=(*claims, ExplicitDiff(loss, (X, gamma, beta), sizes={d: 2, N: 3})),
    )


@entry
def batch_norm() -> Entry:
    return _normalisation(
        axis=1,
        title="Batch normalisation",
        prose=(
            "Each feature (row) is normalised by the mean $\\mu$ and variance $\\sigma^2$ of "
            "the batch, then scaled by $\\gamma$ and shifted by $\\beta$; $G$ is the gradient "
            "arriving from above. Because $\\mu$ and $\\sigma^2$ depend on every example, the "
            "input gradient has two correction terms besides the scaled $\\hat{G}$."
        ),
    )


@entry
def layer_norm() -> Entry:
    return _normalisation(
        axis=0,
        title="Layer normalisation",
        prose=(
            "Each example (column) is normalised over its $d$ features, so the statistics are "
            "row vectors and the batch plays no part. The backward pass is batch norm's with "
            "the roles of rows and columns exchanged."
        ),
    )


@entry
def convolution() -> Entry:
    geometry = Geometry(C=1, H=5, W=5, kh=3, kw=3, sh=2, sw=2, ph=1, pw=1)
    X = MatrixSymbol("X", geometry.C * geometry.H * geometry.W, N)
    K = MatrixSymbol("K", 2, geometry.C * geometry.kh * geometry.kw)
    b = MatrixSymbol("b", 2, 1)
    Z = conv2d(X, K, b, geometry.as_tuple())
    G = MatrixSymbol("G", Z.shape[0], N)
    loss = upstream(G, Z)
    return Entry(
        title="2-D convolution with stride and padding",
        prose=(
            "Two $3 \\times 3$ kernels $K$ slide with stride $s = 2$ over a $5 \\times 5$ "
            "image zero-padded by $p = 1$ (a column of the batch $X$ per image). The kernel "
            "gradient correlates the input with the upstream gradient $G$; the input gradient "
            "is the full convolution of $G$, dilated by the stride, with the kernel rotated "
            "by $180^{\\circ}$. Each output map is $\\lfloor (H + 2p - k)/s \\rfloor + 1 = 3$ "
            "positions wide."
        ),
        derivation=sd.derive(loss, [X, K, b], names={Z: "Z"}),
        parts=(),
        checks=(ExplicitDiff(loss, (X, K, b), sizes={N: 2}, points=2),),
    )


@entry
def max_pooling() -> Entry:
    geometry = Geometry(C=1, H=4, W=4, kh=2, kw=2, sh=2, sw=2)
    X = MatrixSymbol("X", geometry.C * geometry.H * geometry.W, N)
    P = max_pool2d(X, geometry.as_tuple())
    G = MatrixSymbol("G", P.shape[0], N)
    loss = upstream(G, P)

    def routed() -> tuple[bool, str]:
        """Each window's upstream gradient lands on its largest input, nothing elsewhere."""
        rng = np.random.default_rng(0)
        x, g = rng.normal(size=(16, 3)), rng.normal(size=(4, 3))
        dx = evaluate(
            sd.grad(loss, X).xreplace({N: 3}), {X.xreplace({N: 3}): x, G.xreplace({N: 3}): g}
        )
        images, grads = x.T.reshape(3, 2, 2, 2, 2), dx.T.reshape(3, 2, 2, 2, 2)
        windows = images.transpose(0, 1, 3, 2, 4).reshape(3, 4, 4)
        expected = np.zeros_like(windows)
        np.put_along_axis(expected, windows.argmax(axis=2)[..., None], g.T[..., None], axis=2)
        got = grads.transpose(0, 1, 3, 2, 4).reshape(3, 4, 4)
        return np.array_equal(got, expected), "12 windows, each gradient at its arg-max"

    return Entry(
        title="Max pooling",
        prose=(
            "Max pooling over $2 \\times 2$ windows with stride 2. Only the largest input of "
            "a window affects the output, so the upstream gradient $G$ of each window is "
            "routed to its arg-max and every other input gets 0."
        ),
        derivation=sd.derive(loss, X, names={P: "P"}),
        parts=(),
        checks=(
            ExplicitDiff(loss, (X,), sizes={N: 2}),
            Property(
                "NumPy",
                "checking that the gradient of each window sits at the window's arg-max",
                routed,
            ),
        ),
    )


@entry
def attention() -> Entry:
    d, n, m, d_v = sympy.symbols("d n m d_v", integer=True, positive=True)
    Q, K = MatrixSymbol("Q", d, n), MatrixSymbol("K", d, m)
    V, G = MatrixSymbol("V", d_v, m), MatrixSymbol("G", d_v, n)
    S = K.T * Q / sympy.sqrt(d)
    P = sd.softmax(S)
    output = V * P
    loss = upstream(G, output)
    names = {S: "S", P: "P", output: "O"}
    S_, P_, O_ = (MatrixSymbol(names[e], *e.shape) for e in (S, P, output))
    S_bar = MatrixSymbol(r"\bar{S}", m, n)
    where = {
        S_bar: hadamard(P_, V.T * G - OneMatrix(m, 1) * (OneMatrix(1, d_v) * hadamard(G, O_))),
        O_: V * P_,
        P_: sd.softmax(S_),
        S_: S,
    }
    source = "Dao et al. (2022), FlashAttention, with one query per column"
    of_S = {k: v for k, v in where.items() if k != S_}  # S̄ as a function of S itself
    claims = [
        Claim(dL("V"), G * P_.T, loss, V, source, where),
        Claim(r"\bar{S}", where[S_bar], upstream(G, V * sd.softmax(S_)), S_, source, of_S),
        Claim(dL("Q"), K * S_bar / sympy.sqrt(d), loss, Q, source, where),
        Claim(dL("K"), Q * S_bar.T / sympy.sqrt(d), loss, K, source, where),
    ]
    return Entry(
        title="Scaled dot-product attention",
        prose=(
            "Attention $\\operatorname{softmax}(K^T Q / \\sqrt{d})$ applied to the values $V$ "
            "(Vaswani et al. 2017), one query, key and value per column, with an upstream "
            "gradient $G$. The softmax backward needs one number per query, "
            "$\\mathbf{1}^T (G \\circ O)$, which FlashAttention computes from the output."
        ),
        derivation=sd.derive(loss, [Q, K, V], names=names),
        parts=(part("Published form (verified)", *(c.equation for c in claims)),),
        checks=(*claims, ExplicitDiff(loss, (Q, K, V), sizes={d: 2, n: 2, m: 3, d_v: 2})),
    )


@entry
def masked_self_attention() -> Entry:
    d, k, n = sympy.symbols("d k n", integer=True, positive=True)
    X, M, G = MatrixSymbol("X", d, n), MatrixSymbol("M", n, n), MatrixSymbol("G", d, n)
    heads = [
        {w: MatrixSymbol(f"W_{w}^{{({h})}}", *((d, k) if w == "o" else (k, d))) for w in "qkvo"}
        for h in (1, 2)
    ]
    names, where, claims, outputs = {}, {}, [], []
    ones = OneMatrix(n, k)
    source = "Vaswani et al. (2017) with the softmax backward of Dao et al. (2022)"
    for h, W in enumerate(heads, start=1):
        Q, V = W["q"] * X, W["v"] * X
        K = X.T * W["k"].T  # K_h^T: SymPy writes a transposed product this way round
        S = sympy.MatAdd(sympy.MatMul(1 / sympy.sqrt(k), K, Q), M)  # unflattened, as named
        P = sd.softmax(S)
        head = sympy.MatMul(V, P)
        outputs.append(sympy.MatMul(W["o"], head))
        for e, name in ((Q, "Q"), (K, "K"), (V, "V"), (S, "S"), (P, "P"), (head, "O")):
            names[e] = f"{name}_{h}" if name != "K" else f"K_{h}^T"
        Q_, K_, V_, S_, P_, O_ = (
            MatrixSymbol(f"{name}_{h}", *e.shape)
            for e, name in ((Q, "Q"), (K.T, "K"), (V, "V"), (S, "S"), (P, "P"), (head, "O"))
        )
        O_bar, S_bar = MatrixSymbol(rf"\bar{{O}}_{h}", k, n), MatrixSymbol(rf"\bar{{S}}_{h}", n, n)
        where |= {
            S_bar: hadamard(P_, V_.T * O_bar - ones * hadamard(O_bar, O_)),
            O_bar: W["o"].T * G,
            O_: V_ * P_,
            P_: sd.softmax(S_),
            S_: K_.T * Q_ / sympy.sqrt(k) + M,
            Q_: Q,
            K_: W["k"] * X,
            V_: V,
        }
        heads[h - 1] |= {"Q": Q_, "K": K_, "V": V_, "P": P_, "O": O_, "Obar": O_bar, "Sbar": S_bar}
    output = MatAdd(*outputs)
    names[output] = "Y"
    loss = upstream(G, output)
    root = sympy.sqrt(k)
    W = heads[0]
    claims = [
        Claim(dL("W_o^{(1)}"), G * W["O"].T, loss, W["o"], source, where),
        Claim(dL("W_v^{(1)}"), W["Obar"] * W["P"].T * X.T, loss, W["v"], source, where),
    ]
    # through the softmax: sympy.diff of the written-out loss (sd.verify with symbolic sizes
    # takes minutes here)
    through = {
        dL("W_q^{(1)}"): (W["q"], W["K"] * W["Sbar"] * X.T / root),
        dL("W_k^{(1)}"): (W["k"], W["Q"] * W["Sbar"].T * X.T / root),
        dL("X"): (
            X,
            MatAdd(
                *(
                    (H["q"].T * H["K"] * H["Sbar"] + H["k"].T * H["Q"] * H["Sbar"].T) / root
                    + H["v"].T * H["Obar"] * H["P"].T
                    for H in heads
                )
            ),
        ),
    }
    published = ExplicitDiff(
        loss,
        tuple(w for w, _ in through.values()),
        sizes={d: 1, k: 2, n: 2},
        claimed=tuple(substitute(rhs, where) for _, rhs in through.values()),
    )
    equations = [c.equation for c in claims] + [(lhs, rhs) for lhs, (_, rhs) in through.items()]
    generic = {w: MatrixSymbol(f"{w}_h", k, n) for w in ("P", "V", "O", r"\bar{O}")}
    generic["P"] = MatrixSymbol("P_h", n, n)
    O_bar = generic[r"\bar{O}"]
    defined = [  # the published form's names, one head h
        (r"\bar{O}_h", MatrixSymbol("W_o^{(h)}", d, k).T * G),
        (
            r"\bar{S}_h",
            hadamard(generic["P"], generic["V"].T * O_bar - ones * hadamard(O_bar, generic["O"])),
        ),
    ]
    wrt = [*(H[w] for H in heads for w in "qkvo"), X]
    return Entry(
        title="Masked multi-head self-attention",
        prose=(
            "Two heads of self-attention over the $n$ tokens of $X$ (one per column), each "
            "$S_h = K_h^T Q_h / \\sqrt{k} + M$ with an additive mask $M$ (key $u$, query $t$: "
            "$0$, or $-\\infty$ where $t$ may not see $u$, e.g. $u > t$ for a causal mask), "
            "and $Y = \\sum_h W_o^{(h)} V_h \\operatorname{softmax}(S_h)$. The mask is a "
            "constant, so it enters the backward pass only through $P_h$: a masked score has "
            "$P_h = 0$ and hence $\\bar{S}_h = 0$, and $\\bar{X}$ gathers the adjoints of its "
            "six uses (queries, keys and values of each head)."
        ),
        derivation=sd.derive(loss, wrt, names=names),
        parts=(part("Published form (verified)", *defined, *equations),),
        checks=(
            *claims,
            published,
            ExplicitDiff(loss, tuple(heads[1][w] for w in "qko"), sizes={d: 2, k: 1, n: 2}),
            _masked_attention_numerically(loss, wrt, M, (d, k, n)),
        ),
    )


def _masked_attention_numerically(loss, wrt, M, dims) -> Property:
    """symdl's gradient compiled to NumPy with a causal mask of −∞ (as PyTorch writes one)
    against central differences of the compiled loss: no NaN from −∞, no weight on a
    masked key."""

    def test():
        d, k, n = dims
        sizes = {d: 4, k: 2, n: 3}
        derivation = sd.derive(loss.xreplace(sizes), [w.xreplace(sizes) for w in wrt])
        compiled = derivation.compile()
        rng = np.random.default_rng(0)
        mask = np.where(np.triu(np.ones((3, 3)), 1).T > 0, -np.inf, 0.0)  # key u > query t
        values = [
            mask if a == M.xreplace(sizes) else rng.normal(size=tuple(map(int, a.shape)))
            for a in compiled.args
        ]
        _, grads = compiled(*values)
        errors, eps = [], 1e-6
        for w, g in zip(derivation.wrt, grads, strict=True):
            i = list(compiled.args).index(w)
            for cell in np.ndindex(values[i].shape):
                shifted = [[v.copy() for v in values] for _ in range(2)]
                shifted[0][i][cell] += eps
                shifted[1][i][cell] -= eps
                up, down = (float(compiled(*v)[0]) for v in shifted)
                numeric = (up - down) / (2 * eps)
                errors.append(abs(np.asarray(g)[cell] - numeric) / (1 + abs(numeric)))
        worst = max(errors)  # a NaN fails the test below, as every comparison with it is False
        return bool(np.all(np.asarray(errors) < 1e-7)), f"largest relative error {worst:.1e}"

    return Property(
        "NumPy",
        "a causal mask of $-\\infty$ through the compiled gradient, against central differences",
        test,
    )
