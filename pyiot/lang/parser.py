"""Parse `.iot` source text into the model, turning Lark's errors into positioned diagnostics.

No Lark type leaves this module: callers get an `IotFile` or an `IotError`.
"""

from __future__ import annotations

import functools
from importlib import resources
from pathlib import Path

from lark import (
    Lark,
    Token,
    Tree,
    UnexpectedCharacters,
    UnexpectedInput,
    UnexpectedToken,
)
from lark.exceptions import VisitError

from pyiot.lang import limits
from pyiot.lang.build_values import BuildError
from pyiot.lang.builder import ModelBuilder
from pyiot.lang.diagnostics import Diagnostic, IotError, SourcePos
from pyiot.lang.model import IotFile

# Terminal names as a user would call them, for "expected ..." messages.
_TERMINAL_WORDS = {
    "NAME": "a name",
    "STRING": "a string",
    "REGEX": "a /regex/",
    "NUMBER": "a number",
    "INT": "a whole number",
    "DURATION": "a duration such as 500ms or 5s",
    "BOOL": "true or false",
    "TRANSPORT_KIND": "serial, tcp or custom",
    "LBRACE": "'{'",
    "RBRACE": "'}'",
    "LPAR": "'('",
    "RPAR": "')'",
    "COLON": "':'",
    "COMMA": "','",
    "EQUAL": "'='",
    "MINUS": "'-'",
}


def grammar_text() -> str:
    """The grammar, from inside the installed package or from the source tree's `grammar/`."""
    packaged = resources.files("pyiot").joinpath("grammar/iot.lark")
    if packaged.is_file():
        return packaged.read_text(encoding="utf-8")
    source_tree = Path(__file__).resolve().parents[2] / "grammar" / "iot.lark"
    return source_tree.read_text(encoding="utf-8")


@functools.cache
def _lark() -> Lark:
    return Lark(grammar_text(), parser="lalr", propagate_positions=True, maybe_placeholders=False)


def parse(
    source: str, path: str = "<string>", problems: list[Diagnostic] | None = None
) -> IotFile:
    """Parse source text into an (unchecked) model; raise `IotError` on a syntax error.

    Mistakes that leave a model to check (a statement or a declaration given twice: the first
    stays) go to `problems` when given, so that the checks still run on the rest of the file;
    without it they raise `IotError`.
    """
    try:
        tree = _lark().parse(source)
    except UnexpectedInput as err:
        raise IotError([_syntax_diagnostic(err, source, path)], source) from None
    too_deep = _too_deep(tree, path)
    if too_deep is not None:
        raise IotError([too_deep], source)
    builder = ModelBuilder(path)
    try:
        model: IotFile = builder.transform(tree)
    except VisitError as err:
        # Lark wraps what a transformer callback raises; a BuildError is the user's mistake.
        if isinstance(err.orig_exc, BuildError):
            raise IotError([err.orig_exc.diagnostic, *builder.problems], source) from None
        raise
    if builder.problems and problems is None:
        raise IotError(builder.problems, source)
    if problems is not None:
        problems += builder.problems
    return model


def _too_deep(tree: Tree, path: str) -> Diagnostic | None:
    """The first place the tree nests deeper than `MAX_DEPTH`, found without recursion.

    The builder (Lark's transformer) and the checks walk the tree recursively, and a compiled
    driver writes expressions as nested literals: 5,000 unary minuses would exhaust Python's
    stack with no position to show. The parser itself is LALR and needs no stack of its own.
    """
    stack: list[tuple[Tree, int]] = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limits.MAX_DEPTH:
            meta = node.meta
            line = getattr(meta, "line", 1) if not meta.empty else 1
            column = getattr(meta, "column", 1) if not meta.empty else 1
            return Diagnostic(
                SourcePos(path, line, column),
                f"nested more than {limits.MAX_DEPTH} levels deep; write it more simply",
            )
        stack.extend((child, depth + 1) for child in node.children if isinstance(child, Tree))
    return None


# Common mistakes, each with a few examples that fail the way it does; Lark's `match_examples`
# finds the one whose parser state matches the user's error.
_TRANSPORT_HINT = (
    'a component sits `on serial "URL"`, `on tcp "HOST:PORT"`, `on custom "module:Class"` '
    "or `on PORTNAME`"
)
_FRIENDLY: dict[str, list[str]] = {
    _TRANSPORT_HINT: [
        'thing t { component c: D on usb "x" }',
        'thing t { component c: D on udp "/dev/x" }',
    ],
    "a property or parameter needs a type: `NAME: bool | int | float | string | enum {...}`": [
        "device D { property p { } }",
        'device D { property p query "x" }',
        "device D { property p: 5 }",
        'device D { property p: "int" }',
        "device D(z: 5) { }",
        "device D(y: int, z: 5) { }",
    ],
    "a map entry is `WIRE = VALUE`, entries separated by commas": [
        "device D { property p: bool { map { ON true } } }",
        "device D { property p: bool { map { ON = true OFF = false } } }",
    ],
    'a component needs its device and where it is: `component NAME: DEVICE on serial "URL"`': [
        "thing t { component c: D }",
        "thing t { component c }",
    ],
}


def _syntax_diagnostic(err: UnexpectedInput, source: str, path: str) -> Diagnostic:
    line, column = err.line, err.column
    if isinstance(err, UnexpectedToken) and err.token.type == "$END":
        # LALR reports end of input at the last token; point past the end of the file instead
        # (past its last text, counting lines by "\n" as Lark does).
        lines = source.split("\n")
        while len(lines) > 1 and not lines[-1].strip():
            lines.pop()
        return Diagnostic(
            SourcePos(path, len(lines), len(lines[-1].rstrip("\r")) + 1),
            f"unexpected end of file; expected {_expected(err.expected)}",
        )
    if isinstance(err, UnexpectedCharacters):
        at = err.pos_in_stream if err.pos_in_stream is not None else len(source)
        char = source[at] if at < len(source) else ""
        if char == '"':
            message = 'unterminated string (a string must close with " on the same line)'
        elif char == "/":
            message = "unterminated /regex/ (it must close with / on the same line)"
        else:
            message = f"unexpected character {char!r}"
        return Diagnostic(SourcePos(path, line, column), message)
    assert isinstance(err, UnexpectedToken)
    token = err.token
    if token == "/" and "REGEX" in err.expected:
        # "/" alone lexes as division where a regex never closed on its line.
        message = "unterminated /regex/ (it must close with / on the same line)"
        return Diagnostic(SourcePos(path, line, column), message)
    history = list(err.token_history or [])
    if token.type == "NAME" and err.expected == {"TRANSPORT_KIND"}:
        return Diagnostic(
            SourcePos(path, line, column),
            f"unknown transport '{token}'; a device's transport is serial, tcp or custom",
        )
    hint = err.match_examples(_lark().parse, _FRIENDLY, use_accepts=True)
    if hint == _TRANSPORT_HINT and history:
        # `on udp "x"` fails at the string, but the mistake is the word before it.
        word = history[-1]
        return Diagnostic(
            SourcePos(path, word.line, word.column), f"unknown transport '{word}': {hint}"
        )
    if hint:
        return Diagnostic(
            SourcePos(path, line, column), f"unexpected {_describe_token(token)}: {hint}"
        )
    return Diagnostic(
        SourcePos(path, line, column),
        f"unexpected {_describe_token(token)}; expected {_expected(err.expected)}",
    )


def _describe_token(token: Token) -> str:
    if token.type == "NAME":
        return f"name '{token}'"
    return f"'{token}'"


def _expected(names: set[str]) -> str:
    # Closing brackets first (the usual fix), then the rest alphabetically.
    words = sorted(
        {_TERMINAL_WORDS.get(n) or _keyword(n) for n in names},
        key=lambda w: (w not in ("'}'", "')'"), w),
    )
    if len(words) > 18:  # every statement a device block may start with still fits
        words = words[:18] + ["..."]
    return ", ".join(words) if len(words) < 2 else "one of " + ", ".join(words)


def _keyword(terminal: str) -> str:
    """A keyword or punctuation terminal as written in the file ('property', '..')."""
    try:
        pattern = _lark().get_terminal(terminal).pattern
    except KeyError:
        return terminal.lower()
    return f"'{pattern.value}'" if pattern.type == "str" else terminal.lower()
