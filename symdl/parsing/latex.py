r"""LaTeX formulas as SymPy objects, by a small recursive-descent parser that executes nothing:
$\sigma(z)\,(1-\sigma(z))$, $\frac{2}{N}(a - y)$, $\delta x^\top$, $a \odot b$, $\sigma'(z)$,
pmatrix; names match the spellings (name or LaTeX) of the function's symbols."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

import sympy
from sympy import Integer

from symdl.ops import declared
from symdl.parsing.builder import Builder, Ones, indicator
from symdl.parsing.errors import MAX_ARGS, MAX_DEPTH, ParseError
from symdl.parsing.namespace import SHADOWED, Namespace

# SymPy's own parse_latex (lark backend) is not used for untrusted text: its Earley parser took
# 3.4 s on 673 characters of juxtaposed symbols and ran out of memory on 1,300 (SymPy 1.14), and
# it knows neither \sigma nor \operatorname.

_TOKEN = re.compile(
    r"(?P<space>\s+)|(?P<command>\\[A-Za-z]+)|(?P<escaped>\\[^A-Za-z])"
    r"|(?P<number>\d+(?:\.\d+)?|\.\d+)|(?P<char>.)",
    re.S,
)
_SKIP = {
    r"\left", r"\right", r"\big", r"\Big", r"\bigg", r"\Bigg", r"\bigl", r"\bigr", r"\Bigl",
    r"\Bigr", r"\biggl", r"\biggr", r"\displaystyle", r"\textstyle", r"\quad", r"\qquad",
    r"\limits", r"\nolimits", r"\,", r"\;", r"\:", r"\!", "\\ ", r"\>",
}  # fmt: skip
_SYNONYMS = {
    r"\lvert": "|", r"\rvert": "|", r"\vert": "|", r"\lbrace": r"\{", r"\rbrace": r"\}",
    r"\lbrack": "[", r"\rbrack": "]", r"\ast": "*", r"\cdot": "*", r"\times": "*",
    r"\div": "/", r"\circ": r"\odot", r"\dfrac": r"\frac", r"\tfrac": r"\frac",
    r"\intercal": r"\top", r"\mathrm": r"\operatorname", r"\text": r"\operatorname",
    r"\textrm": r"\operatorname", r"\mathit": r"\operatorname", r"\mathsf": r"\operatorname",
    r"\mathbf": r"\operatorname", r"\boldsymbol": r"\operatorname", r"\bm": r"\operatorname",
    r"\vec": r"\operatorname", r"\operatorname*": r"\operatorname", r"\varepsilon": r"\epsilon",
    r"\varphi": r"\phi", r"\vartheta": r"\theta", r"\prime": "'", r"\mathbb": r"\operatorname",
    r"\|": r"\Vert", r"\lVert": r"\Vert", r"\rVert": r"\Vert", r"\overline": r"\bar",
    r"\widehat": r"\hat", r"\widetilde": r"\tilde",
}  # fmt: skip
_FUNCTION_COMMANDS = {
    r"\exp": "exp", r"\log": "log", r"\ln": "log", r"\tanh": "tanh", r"\sinh": "sinh",
    r"\cosh": "cosh", r"\sin": "sin", r"\cos": "cos", r"\tan": "tan", r"\max": "max",
    r"\min": "min", r"\operatorname{sgn}": "sign", r"\det": "det", r"\tr": "trace",
    r"\Tr": "trace", r"\trace": "trace",
}  # fmt: skip


def _op_heads() -> dict[str, list[tuple[tuple[str, ...], str]]]:
    """Declared ops by the tokens of their notation (sigmoid's \\sigma, ``\\operatorname{BCE}
    _{\\text{logits}}``), keyed by the first token, longest first."""
    heads: dict[str, list] = {}
    for name, cls in declared().items():
        key = tuple(t.text for t in tokenize(cls.latex_name)) if cls.latex_name else ()
        if key:
            heads.setdefault(key[0], []).append((key, name))
    for entries in heads.values():
        entries.sort(key=lambda e: -len(e[0]))
    return heads


_LONGEST_NAME = 40
_OPEN = {"(": ")", "[": "]", r"\{": r"\}", "{": "}"}
_MATRICES = {"matrix", "pmatrix", "bmatrix", "Bmatrix", "smallmatrix"}
_ACCENTS = (r"\bar", r"\hat", r"\tilde", r"\dot", r"\ddot")
_MAX_SUM_TERMS = 200  # terms of a sum with numbers as limits, written out


class _Group(list):
    """Arguments written in parentheses, (p_0, p_1): a vector, spread out in a call."""


@dataclass(frozen=True)
class Token:
    text: str
    position: int


def tokenize(text: str) -> list[Token]:
    """Tokens without spacing, sizes or synonyms; `^x` and `_x` get braces, as `^{x}`."""
    tokens: list[Token] = []
    raw = [Token(m[0], m.start()) for m in _TOKEN.finditer(text) if not m["space"]]
    i = 0
    while i < len(raw):
        t = raw[i]
        text_ = _SYNONYMS.get(t.text, t.text)
        i += 1
        if text_ in _SKIP:
            if t.text in (r"\left", r"\right") and i < len(raw) and raw[i].text == ".":
                i += 1
            continue
        if len(text_) == 1 and not text_.isascii() and unicodedata.category(text_).startswith("L"):
            text_ = _unicode_letter(text_)
        tokens.append(Token(text_, t.position))
        if text_ in "^_" and i < len(raw) and raw[i].text not in ("{", r"\left"):
            nxt = raw[i]
            if nxt.text[:1].isdigit() and len(nxt.text) > 1:  # x^23 is x^{2} 3
                raw[i] = Token(nxt.text[1:], nxt.position + 1)
                nxt = Token(nxt.text[0], nxt.position)
            else:
                i += 1
            nxt = Token(_SYNONYMS.get(nxt.text, nxt.text), nxt.position)
            tokens += [Token("{", nxt.position), nxt, Token("}", nxt.position)]
    return tokens


def _unicode_letter(ch: str) -> str:
    """σ -> \\sigma (Greek letters by their Unicode names); other letters stay."""
    name = unicodedata.name(ch, "")
    m = re.fullmatch(r"GREEK (SMALL|CAPITAL) LETTER (\w+)", name)
    if not m:
        return ch
    letter = m[2].lower()
    return "\\" + (letter if m[1] == "SMALL" else letter.capitalize())


def parse_latex(text: str, namespace: Namespace):
    """`text` (LaTeX math) as SymPy objects, names resolved in `namespace`.

    Raises:
        ParseError: unbalanced braces, unknown commands or names, or an unsupported construct.
    """
    tokens = tokenize(text)
    _check_balanced(text, tokens)
    parser = _Parser(text, tokens, namespace)
    try:
        result = parser.expression()
    except RecursionError:
        raise ParseError("the formula is nested too deeply", text, 0) from None
    if parser.i < len(tokens):
        parser.fail(f"unexpected {parser.peek()!r}")
    return result


def _check_balanced(text: str, tokens: list[Token]) -> None:
    stack: list[Token] = []
    for t in tokens:
        if t.text in ("{", r"\{", "(", "["):
            stack.append(t)
        elif t.text in ("}", r"\}", ")", "]"):
            if not stack or _OPEN[stack[-1].text] != t.text:
                raise ParseError(f"unbalanced {t.text!r}", text, t.position)
            stack.pop()
    if stack:
        raise ParseError(f"{stack[-1].text!r} is never closed", text, stack[-1].position)


def _spellings(namespace: Namespace) -> dict[str, list[tuple[tuple[str, ...], object]]]:
    """Each value's spellings as token sequences, by first token, longest first."""
    table: dict[str, list] = {}
    for name, value in namespace.values.items():
        spellings = {name, sympy.latex(sympy.Symbol(name))}  # delta is also \delta
        if isinstance(value, sympy.Symbol | sympy.MatrixSymbol) or value in (sympy.pi, sympy.E):
            spellings.add(sympy.latex(value))
        for spelling in spellings:
            key = tuple(t.text for t in tokenize(spelling))
            if key:
                table.setdefault(key[0], []).append((key, value))
    for entries in table.values():
        entries.sort(key=lambda e: -len(e[0]))
    return table


class _Parser:
    def __init__(self, text: str, tokens: list[Token], namespace: Namespace):
        self.text, self.tokens, self.namespace = text, tokens, namespace
        self.build = Builder(text)
        self.i = 0
        self.depth = 0
        self.in_abs = 0
        self.in_norm = 0
        self.in_cases = 0
        self.spellings = _spellings(namespace)
        self.parameter = None  # the subscript of an op read by function_name, for call
        self.sum_offsets: dict[str, object] = {}  # index of a \sum -> its lower limit

    # tokens
    def peek(self, k: int = 0) -> str:
        j = self.i + k
        return self.tokens[j].text if j < len(self.tokens) else ""

    def position(self) -> int:
        return self.tokens[self.i].position if self.i < len(self.tokens) else len(self.text)

    def fail(self, reason: str):
        raise ParseError(reason, self.text, self.position())

    def take(self, expected: str | None = None) -> str:
        if self.i >= len(self.tokens):
            self.fail(f"the formula ends early{f'; expected {expected!r}' if expected else ''}")
        t = self.tokens[self.i].text
        if expected is not None and t != expected:
            self.fail(f"expected {expected!r}, found {t!r}")
        self.i += 1
        return t

    # grammar
    def expression(self):
        self.depth += 1
        if self.depth > MAX_DEPTH:
            self.fail(f"the formula is nested more than {MAX_DEPTH} deep")
        p = self.position()
        terms = [(self.term(), 1, p)]
        while self.peek() in ("+", "-"):
            p = self.position()
            sign = 1 if self.take() == "+" else -1
            terms.append((self.term(), sign, p))
        self.depth -= 1
        return terms[0][0] if len(terms) == 1 else self.build.total(terms)

    def term(self):
        """Factors joined by products, quotients (one n-ary product) and \\odot (in order)."""
        p = self.position()
        factors = [(self.unary(), False, p)]
        while True:
            op, p = self.peek(), self.position()
            if op in ("*", "/"):
                self.take()
                factors.append((self.unary(), op == "/", p))
            elif op in (r"\odot", r"\otimes"):
                self.take()
                left = self.build.product(factors)
                name = "hadamard" if op == r"\odot" else "kron"
                pair = [left, self.unary()]
                factors = [(self.build.call(self.namespace.functions[name], pair, op, p), False, p)]
            elif self.starts_atom():
                factors.append((self.power(), False, p))
            else:
                return factors[0][0] if len(factors) == 1 else self.build.product(factors)

    def unary(self):
        p, negative = self.position(), False
        while self.peek() in ("+", "-"):
            negative ^= self.take() == "-"
        value = self.power()
        return self.build.neg(value, p) if negative else value

    def starts_atom(self) -> bool:
        t = self.peek()
        if not t or t in ("|",) and self.in_abs or t == r"\Vert" and self.in_norm:
            return False
        if t in ("(", "[", r"\{", "{", "|") or t[0].isdigit() or t[0] == "." and len(t) > 1:
            return True
        if t == r"\operatorname" and self.in_cases and self.case_word() in _CONDITION_WORDS:
            return False  # x > 0 \text{ and } y > 0
        if t.startswith("\\"):
            return (
                t not in (r"\}", r"\odot", r"\otimes", r"\end", r"\\", r"\top")
                and t not in _RELATIONS
                and t not in _CONNECTIVES
                and t[1:2].isalpha()
            )
        return t[0].isalpha()

    def power(self):
        value = self.atom()
        while self.peek() in ("^", "'"):
            p = self.position()
            if self.take() == "'":  # A': a transpose (f'(x) is read as a call)
                self.namespace.transposable(value, self.text, p)
                value = self.build.transpose(value, p)
                continue
            inverse = self.peek(1) == "-"
            if self.is_transpose(inverse):
                self.namespace.transposable(value, self.text, p)
                if inverse:  # X^{-T}
                    value = self.build.pow(value, Integer(-1), p)
                value = self.build.transpose(value, p)
                continue
            self.take("{")
            if self.peek() == r"\odot":  # A^{\circ k}: an entrywise power
                self.take()
                exponent = self.expression()
                self.take("}")
                value = self.entrywise_power(value, exponent, p)
                continue
            exponent = self.expression()
            self.take("}")
            value = self.build.pow(value, exponent, p)
        if self.peek() == "_":
            self.fail("a subscript here is not part of a known name")
        return value

    def entrywise_power(self, value, exponent, p: int):
        value = self.build.fitted(self.build.as_value(value, p), p)
        if isinstance(value, sympy.MatrixBase):
            return value.applyfunc(lambda e: self.build.pow(e, exponent, p))
        if isinstance(value, sympy.MatrixExpr):
            return sympy.HadamardPower(value, exponent)
        return self.build.pow(value, exponent, p)

    def is_transpose(self, inverse: bool = False) -> bool:
        """Whether ^{T} (or ^{-T} when `inverse`) starts here, after the ^; if so, skip it."""
        k = 2 if inverse else 1
        inner = [self.peek(j) for j in range(k, k + 4)]
        if inner[:2] in ([r"\top", "}"], ["'", "}"]):
            self.i += 2 + k
            return True
        if inner[:4] == [r"\operatorname", "{", "T", "}"] and self.peek(k + 4) == "}":
            self.i += 5 + k
            return True
        if inner[:2] == ["T", "}"] and "T" not in self.namespace.values:
            self.i += 2 + k
            return True
        return False

    def atom(self):
        t, p = self.peek(), self.position()
        if not t:
            self.fail("the formula ends early")
        if t in _OPEN:
            entrywise = t == "[" and self.entrywise_bracket()
            self.take()
            self.build.entrywise += entrywise
            try:
                value = self.expression()
                if t == "(" and self.peek() == ",":  # (p_0, p_1): a vector, as ops print theirs
                    value = _Group([value])
                    while self.peek() == ",":
                        self.take()
                        value.append(self.expression())
                self.take(_OPEN[t])
            finally:
                self.build.entrywise -= entrywise
            if entrywise:
                self.i += len(_ENTRYWISE_MARK)
            return value
        if t == r"\Vert":
            return self.norm()
        if t == r"\sum":
            return self.sum()
        if t == "|":
            self.take()
            self.in_abs += 1
            value = self.expression()
            self.in_abs -= 1
            self.take("|")
            return self.build.call(self.namespace.functions["abs"], [value], "abs", p)
        if t[0].isdigit() or t[0] == "." and len(t) > 1:
            self.take()
            return self.build.number(t, p)
        if t == r"\frac":
            self.take()
            numerator, denominator = self.group(), self.group()
            return self.build.div(numerator, denominator, p)
        if t == r"\sqrt":
            return self.sqrt()
        if t == r"\begin":
            cases = "".join(self.peek(k) for k in range(2, 8)) == "cases}"
            return self.cases() if cases else self.matrix()
        return self.named()

    def subscript_is_condition(self) -> bool:
        """Whether a subscript _{...} starts here with a relation in it (\\mathbb{1}_{x > 0})."""
        if [self.peek(), self.peek(1)] != ["_", "{"]:
            return False
        end = self.closing(self.i + 1)
        return any(self.tokens[k].text in _RELATIONS for k in range(self.i + 2, end))

    def entrywise_bracket(self) -> bool:
        """Whether the [ here closes with ]_{\\circ}: an expression taken entry by entry, as
        symdl prints [1/P]_\\circ."""
        depth = 0
        for j in range(self.i, len(self.tokens)):
            t = self.tokens[j].text
            depth += (t == "[") - (t == "]")
            if depth == 0:
                after = [x.text for x in self.tokens[j + 1 : j + 1 + len(_ENTRYWISE_MARK)]]
                return after == list(_ENTRYWISE_MARK)
        return False

    def indicator(self, p: int):
        """\\mathbb{1}[z > 0] or \\mathbb{1}_{z > 0}: 1 where the condition holds, else 0;
        of a matrix compared with 0, entry by entry (ReLU's derivative)."""
        if self.peek() == "_":  # \\mathbb{1}_{x > 0}, \\mathbb{1}_{\\{x > 0\\}}
            self.take()
            self.take("{")
            close = "}"
            if self.peek() == r"\{" and self.tokens[self.closing(self.i - 1) - 1].text == r"\}":
                self.take()
                close = r"\}"
        else:
            self.take("[")
            close = "]"
        start = self.i
        left = self.build.fitted(self.expression(), p)
        if not _is_scalar_value(left):
            if [self.take(), self.take(), self.take()] != [">", "0", close] or close == r"\}":
                self.build.fail("the indicator of a matrix reads \\mathbb{1}[Z > 0]", p)
            return indicator(left)
        self.i = start
        self.in_cases += 1
        condition = sympy.And(*self.relations())
        self.in_cases -= 1
        self.take(close)
        if close == r"\}":
            self.take("}")
        return sympy.Piecewise((1, condition), (0, True))

    def norm(self):
        r"""\lVert v \rVert_p: the 1-norm, or the 2-norm (Frobenius for a matrix) by default."""
        p = self.position()
        self.take(r"\Vert")
        self.in_norm += 1
        value = self.expression()
        self.in_norm -= 1
        self.take(r"\Vert")
        order = 2
        if [self.peek(k) for k in range(4)] == ["_", "{", "F", "}"]:  # Frobenius, not a name
            self.i += 4
        elif self.peek() == "_":
            self.take()
            sub = self.group()
            order = 1 if sub == 1 else 2 if sub == 2 else None
            if order is None and getattr(sub, "name", "") != "F":
                self.fail("a norm's subscript must be 1, 2 or F")
            order = order or 2
        value = self.build.fitted(self.build.as_value(value, p), p)
        entries = list(value) if isinstance(value, sympy.MatrixBase) else [value]
        if isinstance(value, sympy.MatrixExpr) and not isinstance(value, sympy.MatrixBase):
            entries = [value]
        name = "l1" if order == 1 else "l2"
        total = self.build.call(self.namespace.functions[name], entries, name, p)
        return (
            total
            if order == 1
            else self.build.call(self.namespace.functions["sqrt"], [total], "sqrt", p)
        )

    def sum(self):
        r"""\sum_{i=1}^{n} term: written out when the limits are numbers, else a SymPy Sum."""
        p = self.position()
        self.take(r"\sum")
        index = self.peek(2)
        if [self.peek(0), self.peek(1), self.peek(3)] != ["_", "{", "="] or not (
            index.isalpha() and len(index) == 1
        ):
            self.build.fail(
                "\\sum needs an index of one letter and its limits, as in \\sum_{i=1}^{n}", p
            )
        self.i += 4
        low = self.expression()
        self.take("}")
        self.take("^")
        high = self.group()
        start, saved = self.i, self.namespace.values.get(index)
        try:
            if all(sympy.sympify(v).is_Integer for v in (low, high)):
                if int(high) - int(low) + 1 > _MAX_SUM_TERMS:
                    self.fail(f"a sum of more than {_MAX_SUM_TERMS} terms written out")
                terms = []
                for k in range(int(low), int(high) + 1):
                    self.i = start
                    self.namespace.values[index] = Integer(k)
                    self.sum_offsets[index] = int(low)
                    terms.append((self.term(), 1, p))
                return self.build.total(terms) if terms else Integer(0)
            symbol = sympy.Symbol(index, integer=True)
            self.namespace.values[index] = symbol
            self.sum_offsets[index] = low
            summand = self.build.fitted(self.term(), p)
            if not _is_scalar_value(summand):
                self.fail("a sum over an index with symbolic limits needs a scalar term")
            return sympy.Sum(summand, (symbol, low, high))
        finally:
            self.sum_offsets.pop(index, None)
            if saved is None:
                self.namespace.values.pop(index, None)
            else:
                self.namespace.values[index] = saved

    def group(self):
        """A braced argument, or a single token as in \\frac12 or \\frac{1}{N}."""
        if self.peek() != "{":
            p = self.position()
            t = self.take()
            if t[0].isdigit():
                if len(t) > 1:  # \frac12: the digits are two arguments
                    self.i -= 1
                    self.tokens[self.i] = Token(t[1:], p + 1)
                    return self.build.number(t[0], p)
                return self.build.number(t, p)
            self.i -= 1
            return self.named()
        self.take("{")
        value = self.expression()
        self.take("}")
        return value

    def sqrt(self):
        p = self.position()
        self.take()
        degree = None
        if self.peek() == "[":
            self.take()
            degree = self.expression()
            self.take("]")
        radicand = self.group()
        root = self.build.call(self.namespace.functions["sqrt"], [radicand], "sqrt", p)
        if degree is None:
            return root
        return self.build.pow(radicand, self.build.div(Integer(1), degree, p), p)

    def matrix(self):
        p = self.position()
        self.take(r"\begin")
        env = self.word()
        if env not in _MATRICES:
            self.fail(f"environment {env!r} is not a matrix; use pmatrix or bmatrix")
        rows, row = [], [self.expression()]
        while self.peek() in ("&", r"\\"):
            if self.take() == "&":
                row.append(self.expression())
            else:
                rows.append(row)
                row = [] if self.peek() == r"\end" else [self.expression()]
        if row:
            rows.append(row)
        self.take(r"\end")
        if self.word() != env:
            self.fail(f"\\begin{{{env}}} closed by a different \\end")
        return self.build.matrix(rows, p)

    def cases(self):
        r"""\begin{cases} x & \text{if } x > 0 \\ 0.01 x & \text{otherwise} \end{cases}: a
        Piecewise, its pieces in order (the first whose condition holds)."""
        p = self.position()
        self.take(r"\begin")
        self.word()
        pieces = []
        while True:
            value = self.build.fitted(self.expression(), p)
            if not _is_scalar_value(value):
                self.fail("a piece of \begin{cases} must be a scalar")
            if self.peek() == ",":  # x, & x > 0
                self.take()
            self.take("&")
            if pieces and pieces[-1][1] == sympy.true:
                self.fail("the case that holds otherwise must be the last one")
            self.in_cases += 1
            pieces.append((value, self.condition()))
            self.in_cases -= 1
            if self.peek() == r"\\":
                self.take()
            if self.peek() == r"\end":
                break
        self.take(r"\end")
        if self.word() != "cases":
            self.fail("\\begin{cases} closed by a different \\end")
        if len(pieces) > MAX_ARGS:
            self.build.fail(f"\\begin{{cases}}: more than {MAX_ARGS} cases", p)
        try:
            return sympy.Piecewise(*pieces)
        except ParseError:
            raise
        except (TypeError, ValueError) as error:
            self.build.fail(f"these cases are not a function: {str(error)[:120]}", p)

    def case_word(self) -> str:
        """The word of \\text{...} starting here, in lower case."""
        letters, k = [], 2
        while self.peek(k) not in ("}", "") and k < 14:
            letters.append(self.peek(k))
            k += 1
        return "".join(letters).lower()

    def condition(self):
        """The condition of a case: relations (a < b, 0 \\le x < 1) joined by "and" (\\wedge, a
        comma) or "or" (\\vee); "if", "for", "when" are skipped; "otherwise" / "else" (or
        nothing) holds always."""
        alternatives, relations = [], []
        while True:
            while self.peek() == r"\operatorname" and self.case_word() in _CONDITION_WORDS:
                self.take()
                word = self.word().strip().lower()
                if word in ("otherwise", "else", "elsewhere") and (relations or alternatives):
                    self.fail("'otherwise' after a condition")
                if word in ("otherwise", "else", "elsewhere"):
                    return sympy.true
                if word == "or":
                    alternatives.append(relations)
                    relations = []
            t = self.peek()
            if t in (r"\\", r"\end", ""):
                if relations:
                    alternatives.append(relations)
                return (
                    sympy.Or(*(sympy.And(*r) for r in alternatives)) if alternatives else sympy.true
                )
            if t in (",", r"\wedge", r"\land"):
                self.take()
                continue
            if t in (r"\vee", r"\lor"):
                self.take()
                alternatives.append(relations)
                relations = []
                continue
            relations += self.relations()

    def relations(self) -> list:
        """a < b, or a chain 0 \\le x < 1 as [0 <= x, x < 1]."""
        p = self.position()
        left, found = self.expression(), []
        if self.peek() not in _RELATIONS and self.peek() != "=":
            self.fail("expected a condition such as x > 0 (or \\text{otherwise})")
        while self.peek() in _RELATIONS or self.peek() == "=":
            op = _RELATIONS.get(self.take(), "==")
            if op in (">", "<") and self.peek() == "=":  # >= written as two characters
                self.take()
                op += "="
            right = self.expression()
            if not (_is_scalar_value(left) and _is_scalar_value(right)):
                self.build.fail("a condition compares scalars", p)
            found.append(sympy.Rel(left, right, op))
            left = right
        return found

    def word(self) -> str:
        """The letters of a braced word, as in \\begin{pmatrix} or \\operatorname{ReLU}."""
        self.take("{")
        letters = []
        while self.peek() not in ("}", ""):
            t = self.take()
            letters.append(t.lstrip("\\") if t.startswith("\\") and t[1:].isalpha() else t)
        self.take("}")
        return "".join(letters)

    # names and calls
    def named(self):
        p, t = self.position(), self.peek()
        if t in self.sum_offsets and self.peek(1) != "_":
            self.take()
            return self.namespace.values[t]
        if [self.peek(1), self.peek(2), self.peek(4)] == ["_", "{", "}"] and (
            self.peek(3) in self.sum_offsets and (t[0].isalpha() or t[1:] in GREEK)
        ):  # x_i inside \sum_{i=1}: entry i of x, or the symbol x_1, x_2, ...
            self.take()
            return self.with_subscript(t.lstrip("\\"), p)
        name = self.function_name()
        if name is not None:
            return self.call(name, p)
        spelled = self.spelled()
        if spelled is not None:
            return spelled
        if t in _ACCENTS:
            self.take()
            inner = self.word()
            return self.with_subscript(inner + t[1:], p, also=(f"{t}{{{inner}}}",))
        if t == r"\operatorname":
            self.take()
            word = self.word()
            if word == "1" and (self.peek() == "[" or self.subscript_is_condition()):
                return self.indicator(p)
            return self.ones(p) if word == "1" else self.with_subscript(word, p)
        if t.startswith("\\") and t[1:] not in GREEK:
            self.fail(f"unsupported LaTeX command {t}")
        if t.startswith("\\") or t[0].isalpha():
            self.take()
            return self.with_subscript(t.lstrip("\\"), p)
        self.fail(f"unexpected {t!r}")

    def function_name(self) -> str | None:
        """The function a call starts with, if the tokens here are a call, else None.

        \\log, \\exp, \\tanh, ... always call; \\sigma, \\operatorname{ReLU} and names written
        in letters (softmax) call when a parenthesis, a prime or an exponent then a
        parenthesis follows, so \\sigma^2 alone is still the symbol sigma squared.
        """
        t, save = self.peek(), self.i
        self.parameter = None
        if t in _FUNCTION_COMMANDS:
            self.take()
            return _FUNCTION_COMMANDS[t]
        head = self.op_head()
        if head is not None:
            name = head
        elif t == r"\operatorname":
            self.take()
            name = self.word()
        elif t[1:] in SHADOWED and t.startswith("\\") and self.peek(1) == "(":
            name = self.take()[1:]  # \Phi(x), \phi(x): the normal's (\varphi_0 is a name)
        elif len(t) == 1 and t.isalpha():
            name = self.take()
            while len(self.peek()) == 1 and self.peek().isalpha() and self.glued():
                name += self.take()
                if len(name) > _LONGEST_NAME:  # no function is called that: stop looking
                    break
        else:
            return None
        if name.lower() == "relu":
            name = "relu"
        over = "".join(self.peek(k) for k in range(4, 14)).split("}")[0]  # _{\text{over}}
        axis = _MEAN_AXES.get(over) if self.peek(2) == r"\operatorname" else None
        if name == "mean" and self.peek() == "_" and axis is not None:
            start = self.i
            self.i = self.closing(self.i + 1) + 1  # mean_{\text{batch}}(X): over the batch
            if self.call_follows():
                self.parameter = Integer(axis)
                return name
            self.i = start
        if name in self.namespace.functions and self.peek() == "_" and self.peek(1) == "{":
            start, self.i = self.i, self.closing(self.i + 1) + 1
            if self.call_follows():  # LeakyReLU_{\alpha}(x): the op's last argument
                self.i = start + 1
                self.parameter = self.group()
            else:
                self.i = start
        if name in self.namespace.functions and not self.namespace.shadowed(name):
            if self.call_follows() or t == r"\operatorname" and self.peek() == "^":
                return name  # \operatorname{sech}^2 x calls, as \tanh^2 x does
        self.i, self.parameter = save, None
        return None

    def closing(self, j: int) -> int:
        """The index of the brace closing the one at token `j`."""
        depth = 0
        for k in range(j, len(self.tokens)):
            depth += {"{": 1, "}": -1}.get(self.tokens[k].text, 0)
            if depth == 0:
                return k
        return len(self.tokens)

    def op_head(self) -> str | None:
        """The declared op whose notation starts here, its tokens taken; else None."""
        for key, name in _OP_HEADS.get(self.peek(), ()):
            if tuple(self.peek(k) for k in range(len(key))) == key:
                self.i += len(key)
                return name
        return None

    def glued(self, j: int | None = None) -> bool:
        """True when token `j` (the next one by default) follows its predecessor without a space."""
        j = self.i if j is None else j
        before, here = self.tokens[j - 1], self.tokens[j]
        return here.position == before.position + len(before.text)

    def call_follows(self) -> bool:
        j = self.i
        while self.peek(j - self.i) == "'":
            j += 1
        if self.peek(j - self.i) == "^" and self.peek(j - self.i + 1) == "{":
            depth, j = 0, j + 1
            while j < len(self.tokens):
                depth += {"{": 1, "}": -1}.get(self.tokens[j].text, 0)
                j += 1
                if depth == 0:
                    break
        k = j - self.i
        return self.peek(k) == "(" or self.peek(k) == "{" and self.peek(k + 1) == "("

    def call(self, name: str, p: int):
        function = self.namespace.function(name, self.text, p)
        order = 0
        while self.peek() == "'":
            self.take()
            order += 1
        exponent = None
        if self.peek() == "^":
            self.take()
            exponent = self.group()
        parameter, self.parameter = self.parameter, None
        braced = self.peek() == "{" and self.peek(1) == "("  # \\tanh{\\left(x \\right)}, as SymPy
        if braced:
            self.take("{")
        if self.peek() == "(":
            self.take()
            args = [self.expression()]
            while self.peek() == ",":
                self.take()
                args.append(self.expression())
            self.take(")")
            if braced:
                self.take("}")
        else:  # \log x, \tanh z: the argument is the next factor
            args = [self.power()]
        args = [a for arg in args for a in (arg if isinstance(arg, _Group) else [arg])]
        if parameter is not None:
            args.append(parameter)
        if self.peek() == "_" and not order:  # softmax(z)_k: entry k of the vector result
            self.take()
            k = self.group()
            whole = self.build.call(function, [list(args)], name, p)
            if _is_scalar_value(whole) or not sympy.sympify(k).is_Integer:
                self.fail(f"{name}(...)_k needs a vector result and a whole number k")
            value = self.build.index(whole, (int(k),), p)
            return value if exponent is None else self.build.pow(value, exponent, p)
        value = self.build.call(function, args, name, p)
        if order:
            value = self.derivative(value, name, order)
        return value if exponent is None else self.build.pow(value, exponent, p)

    def derivative(self, value, name: str, order: int):
        """f'(x): the derivative of a one-argument function, at its argument."""
        if not isinstance(value, sympy.Function) or len(value.args) != 1:
            self.fail(f"{name}' needs a function of one scalar argument")
        x = sympy.Dummy("x", real=True)
        return sympy.diff(value.func(x), x, order).subs(x, value.args[0])

    def spelled(self):
        """The longest spelling of a known name here (w^{(1)}_{11}, x_1, \\delta, lr)."""
        for key, value in self.spellings.get(self.peek(), ()):
            if tuple(self.peek(k) for k in range(len(key))) != key:
                continue
            letters = len(key) > 1 and all(len(k) == 1 and k.isalpha() for k in key)
            if letters and not all(self.glued(self.i + k) for k in range(1, len(key))):
                continue  # "l r" is l times r even when lr is a name
            self.i += len(key)
            return value
        return None

    def with_subscript(self, base: str, p: int, also: tuple[str, ...] = ()):
        """The value named `base` (or one of the spellings `also`), with a subscript if one
        follows: x_{1}, x_1 or x1 by name, or entry i of the vector x inside \\sum_{i=1}."""
        name = base
        if self.peek() == "_":
            self.take()
            self.take("{")
            sub = ""
            while self.peek() not in ("}", ""):
                t = self.take()
                sub += t.lstrip("\\") if t.startswith("\\") else t
            self.take("}")
            index, offset = None, 0
            if sub in self.sum_offsets:
                index, offset = self.namespace.values[sub], self.sum_offsets[sub]
                sub = str(index)
            for candidate in (f"{base}_{{{sub}}}", f"{base}_{sub}", f"{base}{sub}"):
                if candidate in self.namespace.values:
                    return self.namespace.values[candidate]
            if index is not None and base in self.namespace.values:
                return self.entry(self.namespace.values[base], index - offset, p)
            name = f"{base}_{sub}"
        for candidate in also:
            if candidate in self.namespace.values:
                return self.namespace.values[candidate]
        return self.namespace.value(name, self.text, p)

    def entry(self, vector, k, p: int):
        """Entry k (from 0) of a vector, k a number or a symbol."""
        if _is_scalar_value(vector) or 1 not in vector.shape:
            self.fail("only a vector can be indexed by the index of a sum")
        if sympy.sympify(k).is_Integer:
            return self.build.index(vector, (int(k),), p)
        if isinstance(vector, sympy.MatrixBase):
            self.fail("a sum with symbolic limits can index only a vector of symbolic length")
        return vector[k, 0] if vector.shape[1] == 1 else vector[0, k]

    def ones(self, p: int):
        r"""\mathbf{1}, \mathbf{1}_N or \mathbf{1}_{m \times n}: a length from the context
        unless given."""
        if self.peek() != "_":
            return Ones(p)
        self.take()
        self.take("{")
        rows = self.unary()
        cols = Integer(1)
        if self.peek() == "*":
            self.take()
            cols = self.unary()
        self.take("}")
        for size in (rows, cols):
            if not (isinstance(size, sympy.Symbol) or sympy.sympify(size).is_Integer):
                self.fail("the size of \\mathbf{1} must be a number or a name")
        return self.namespace.functions["ones"](self.build, rows, cols)


_OP_HEADS = _op_heads()
_RELATIONS = {
    ">": ">", "<": "<", r"\gt": ">", r"\lt": "<", r"\ge": ">=", r"\geq": ">=",
    r"\geqslant": ">=", r"\le": "<=", r"\leq": "<=", r"\leqslant": "<=", r"\neq": "!=",
    r"\ne": "!=",
}  # fmt: skip
_MEAN_AXES = {"batch": 1, "features": 0}  # symdl's mean_{\text{batch}}: of each row
_ENTRYWISE_MARK = ("_", "{", r"\odot", "}")
_CONNECTIVES = {r"\wedge", r"\land", r"\vee", r"\lor"}
_CONDITION_WORDS = {"if", "for", "when", "where", "and", "or", "otherwise", "else", "elsewhere"}


def _is_scalar_value(v) -> bool:
    return not isinstance(v, sympy.MatrixBase | sympy.MatrixExpr | list | Ones)


GREEK = set(
    "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi pi rho sigma tau "
    "upsilon phi chi psi omega Gamma Delta Theta Lambda Xi Pi Sigma Upsilon Phi Psi Omega".split()
)
