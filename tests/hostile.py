"""A generated corpus of hostile and unusual formula texts (code-execution attempts, resource
bombs, deep nesting, huge strings, unicode look-alikes, LaTeX file and shell commands, random
junk), run by tests/test_hostile.py. Every code-execution attempt would create the file
SENTINEL names (in the current folder) if it ran."""

from __future__ import annotations

import random

SENTINEL = "symdl_pwned"

_CODE = [
    "__import__('os').system('touch {s}')",
    "__import__('pathlib').Path('{s}').touch()",
    "open('{s}', 'w')",
    "exec(\"open('{s}','w')\")",
    "eval(\"open('{s}','w')\")",
    "compile('open(1)', 'f', 'exec')",
    "().__class__.__bases__[0].__subclasses__()",
    "().__class__.__mro__[1].__subclasses__()[0]",
    "x.__class__.__init__.__globals__['os'].system('touch {s}')",
    "x.func.__globals__",
    "x.evalf.__globals__['__builtins__']['open']('{s}', 'w')",
    "getattr(x, '__class__')",
    "lambda: open('{s}', 'w')",
    "(lambda: 0)()",
    "[c for c in ().__class__.__base__.__subclasses__()]",
    "import os; os.system('touch {s}')",
    "import os",
    "from os import system",
    "globals()['__builtins__']",
    "locals()",
    "vars()",
    "breakpoint()",
    "__builtins__",
    "sympify(\"open('{s}','w')\")",
    "Symbol('x').__reduce__()",
    "S('open(1)')",
    "f'{{open(1)}}'",
    "x if open('{s}','w') else x",
    "[open('{s}','w')]",
    "{{'a': open('{s}','w')}}",
    "x.__add__(open('{s}','w'))",
    "type('A', (), {{}})",
    "x := 3",
    "(yield)",
    "await x",
    "print(1)",
    "input()",
    "exit()",
    "help()",
    "x.subs(x, open('{s}','w'))",
    "Function('open')('{s}')",
    "sigma(__import__('os'))",
    "exp(x).__class__.__call__",
    r"\input{{/etc/passwd}}",
    r"\include{{/etc/passwd}}",
    r"\write18{{touch {s}}}",
    r"\immediate\write18{{touch {s}}}",
    r"\def\x{{\x}}\x",
    r"\csname input\endcsname{{/etc/passwd}}",
    r"\catcode`\^=7",
    r"\openout1={s}",
    r"\usepackage{{shellesc}}\ShellEscape{{touch {s}}}",
    r"\newcommand{{\x}}{{\x}}\x",
    r"\verb|x|",
    r"\begin{{verbatim}}x\end{{verbatim}}",
]
_WRAPPERS = [
    "{}",
    "x + {}",
    "sigma({})",
    "({})*y",
    r"\frac{{{}}}{{2}}",
    "{}**2",
    "[{}, x]",
    " {} ",
]
_LOOKALIKES = [
    "\u0445**2",  # Cyrillic x
    "\uff58 + 1",  # fullwidth x
    "x\u200b*y",  # zero-width space
    "x\u202e*y",  # right-to-left override
    "\u03c3(z)",  # Greek sigma as a name
    "x \u2212 y",  # unicode minus
    "x \u00d7 y",
    "x \u00b7 y",
    "x\u2217y",
    "\u2170 + x",  # roman numeral
    "\U0001d431 + 1",  # mathematical bold x
    "\u0435xp(x)",  # Cyrillic e in exp
    "\u0455igma(x)",
    "e\u0301xp(x)",
    "\ufeffx",
    "x\u00a0+\u00a0y",
    "\u221a(x)",
    "\u2211 x",
    "x\u00b2",
    "\u00bd*x",
    "ℯ**x",
    "∞*x",
    "x/0",
    "log(0)*x",
    "nan*x",
]


def _bombs() -> list[str]:
    def nest(f: str, n: int, inner: str = "x") -> str:
        for _ in range(n):
            inner = f"{f}({inner})"
        return inner

    out = [
        "9**9**9**9",
        "10**10**10",
        "E**E**E**E**E",
        "2**-99999*x",
        "1e999999*x",
        "1e308*10*x",
        "10.0**400",
        "*".join(["2**9000"] * 20) + "*x",
        "x" * 1_000_000,
        "1" * 10_000,
        "(" * 10_000 + "x" + ")" * 10_000,
        "[" * 5_000 + "x" + "]" * 5_000,
        "{" * 5_000 + "x" + "}" * 5_000,
        "-" * 9_999 + "x",
        "**".join(["x"] * 3_000),
        "+".join(["x"] * 5_000),
        "*".join([f"x{i}" for i in range(2_000)]),
        "max(" + ",".join(f"x{i}" for i in range(100)) + ")",
        "min(" + ",".join(f"x{i}" for i in range(100)) + ")",
        "sum(softmax([" + ",".join(f"x{i}" for i in range(150)) + "]))",
        "softmax([" + ",".join(f"x{i}" for i in range(1_000)) + "])",
        "logsumexp([" + ",".join(f"x{i}" for i in range(300)) + "])",
        r"\frac{1}{" * 60 + "x" + "}" * 60,
        r"\sqrt{" * 70 + "x" + "}" * 70,
        "x" + "^{x" * 55 + "}" * 55,
        "x" + "'" * 5_000,
        "x" + "!" * 100,
        "x" * 5_000 + "+y",
        "\\" * 5_000,
        "$" * 1_000,
        "x\0y",
        "x\x1b[2Jy",
        "",
        "   ",
    ]
    for n in (4, 5, 8, 20, 55, 200):
        out += [nest("exp", n), nest("sigma", n), nest("log", n), nest("tanh", n)]
        out += ["E" + "**E" * n, "**".join(["x"] * (n + 1)), "2" + "**x" * n]
    for n in (10, 59, 61, 100, 10_000):
        out += ["(" * n + "x" + ")" * n, nest("relu", n), nest("sin", n)]
    return out


def _junk(rng: random.Random, count: int) -> list[str]:
    alphabet = (
        "xyzwab012349.+-*/^_()[]{},=<>!&|%~@#$;:'\"` \\\n\t"
        + "".join(["exp", "log", "sigma", "relu", "frac", "sum", "__", "lambda", "import"])
        + "\u0445\u03c3\u2212\u200b\uff58"
    )
    words = ["exp(", "log(", "sigma(", "softmax([", r"\frac{", r"\sqrt{", "**", "x", "y", ")"]
    out = []
    for i in range(count):
        if i % 2:
            out.append("".join(rng.choice(alphabet) for _ in range(rng.randint(1, 120))))
        else:
            out.append("".join(rng.choice(words) for _ in range(rng.randint(1, 40))))
    return out


def corpus(seed: int = 0, junk: int = 500) -> list[str]:
    """At least 1,000 hostile texts: every code template in every wrapper, the bombs, the
    look-alikes, and `junk` random strings (seeded)."""
    rng = random.Random(seed)
    code = [w.format(t.format(s=SENTINEL)) for t in _CODE for w in _WRAPPERS]
    return code + _bombs() + _LOOKALIKES + _junk(rng, junk)
