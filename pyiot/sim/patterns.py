"""Write text that a reply pattern matches, and read values out of a set command's text.

The simulator answers from the same `.iot` file the runtime reads: it renders each reply regex
with the values it holds (named groups filled in, the rest with the shortest text that matches),
and turns each `set` format string into a regex to recognise commands.
"""

from __future__ import annotations

import contextlib
import re
import string
import sys
from collections.abc import Mapping

if sys.version_info >= (3, 11):  # the regex parser; `sre_parse` is its deprecated alias
    from re import _constants as sre_constants
    from re import _parser as sre_parse
else:  # pragma: no cover - Python 3.10
    import sre_constants
    import sre_parse

_CATEGORY_SAMPLES = {
    sre_constants.CATEGORY_DIGIT: "0",
    sre_constants.CATEGORY_WORD: "a",
    sre_constants.CATEGORY_SPACE: " ",
    sre_constants.CATEGORY_NOT_DIGIT: "a",
    sre_constants.CATEGORY_NOT_WORD: " ",
    sre_constants.CATEGORY_NOT_SPACE: "a",
}


def render(pattern: re.Pattern[str], groups: dict[str, str]) -> str:
    """Shortest text matching `pattern`, with each named group in `groups` replaced by its text."""
    names = {number: name for name, number in pattern.groupindex.items()}
    text = _render(sre_parse.parse(pattern.pattern, pattern.flags), names, groups, {})
    if pattern.fullmatch(text) is None and pattern.search(text) is None:
        raise ValueError(f"cannot write a reply for /{pattern.pattern}/ with {groups}")
    return text


def _render(items, names: dict[int, str], groups: dict[str, str], done: dict[int, str]) -> str:
    """Text for parsed regex items; `done` holds each group's text for backreferences."""
    out = []
    for op, arg in items:
        if op is sre_constants.LITERAL:
            out.append(chr(arg))
        elif op is sre_constants.NOT_LITERAL:
            out.append(_sample_set([(sre_constants.NEGATE, None), (sre_constants.LITERAL, arg)]))
        elif op is sre_constants.SUBPATTERN:
            number, _, _, sub = arg
            name = names.get(number)
            text = groups[name] if name in groups else _render(sub, names, groups, done)
            if number is not None:
                done[number] = text
            out.append(text)
        elif op is sre_constants.BRANCH:
            out.append(_render(arg[1][0], names, groups, done))
        elif op is sre_constants.IN:
            out.append(_sample_set(arg))
        elif op in _REPEATS:
            low, _, sub = arg
            out.append("".join(_render(sub, names, groups, done) for _ in range(low)))
        elif op is _ATOMIC_GROUP:
            out.append(_render(arg, names, groups, done))
        elif op is sre_constants.GROUPREF:
            out.append(done.get(arg, ""))
        elif op is sre_constants.GROUPREF_EXISTS:
            number, yes, no = arg
            branch = yes if number in done else no
            out.append(_render(branch or [], names, groups, done))
        elif op is sre_constants.ANY:
            out.append("x")
        elif op is sre_constants.CATEGORY:
            out.append(_CATEGORY_SAMPLES.get(arg, "a"))
        # AT (anchors), lookarounds and other zero-width items add no text.
    return "".join(out)


_REPEATS = tuple(
    getattr(sre_constants, name)
    for name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT")
    if hasattr(sre_constants, name)
)
_ATOMIC_GROUP = getattr(sre_constants, "ATOMIC_GROUP", object())

# Characters tried, in order, for a class: a negated class takes the first one it lets through.
_CANDIDATES = "a0A x_-.:=#!~zZ9" + "".join(chr(c) for c in range(33, 127))

_CATEGORY_TESTS = {
    sre_constants.CATEGORY_DIGIT: str.isdigit,
    sre_constants.CATEGORY_NOT_DIGIT: lambda c: not c.isdigit(),
    sre_constants.CATEGORY_WORD: lambda c: c.isalnum() or c == "_",
    sre_constants.CATEGORY_NOT_WORD: lambda c: not (c.isalnum() or c == "_"),
    sre_constants.CATEGORY_SPACE: str.isspace,
    sre_constants.CATEGORY_NOT_SPACE: lambda c: not c.isspace(),
}


def _in_set(items, char: str) -> bool:
    code = ord(char)
    for op, arg in items:
        if op is sre_constants.LITERAL and arg == code:
            return True
        if op is sre_constants.RANGE and arg[0] <= code <= arg[1]:
            return True
        if op is sre_constants.CATEGORY and _CATEGORY_TESTS.get(arg, lambda c: False)(char):
            return True
    return False


def _sample_set(items) -> str:
    if items and items[0][0] is sre_constants.NEGATE:
        rest = items[1:]
        return next((c for c in _CANDIDATES if not _in_set(rest, c)), "\x00")
    if items and items[0][0] is sre_constants.LITERAL:
        # A set that starts with a literal is written in the file's order: the parser turns
        # `(?:PON|POF)` into `PO[NF]`, and the first alternative is PON, not POF.
        return chr(items[0][1])
    return next((c for c in _CANDIDATES if _in_set(items, c)), _first_of(items))


def _first_of(items) -> str:
    for op, arg in items:
        if op is sre_constants.LITERAL:
            return chr(arg)
        if op is sre_constants.RANGE:
            return chr(arg[0])
        if op is sre_constants.CATEGORY:
            return _CATEGORY_SAMPLES.get(arg, "a")
    return "a"


def format_to_regex(
    fmt: str, fields: dict[str, str], flags: int = 0, known: Mapping[str, object] | None = None
) -> re.Pattern[str]:
    """A regex recognising the text `fmt.format(...)` produces.

    `fields` gives, per field name, the regex its text matches (the value field gets a named group).
    A field of `known` written with a format spec is its value so formatted (a display ID sent
    as one byte, `{id:c}`).
    """
    parts = []
    for literal, name, spec, _ in string.Formatter().parse(fmt):
        parts.append(re.escape(literal))
        if name is None:
            continue
        if spec and known and name in known:
            with contextlib.suppress(ValueError, TypeError):
                parts.append(f"(?P<{name}>{re.escape(format(known[name], spec))})")
                continue
        parts.append(f"(?P<{name}>{fields.get(name, '.+?')})")
    return re.compile("".join(parts), flags)


def fit(pattern: re.Pattern[str], name: str, candidates: list[str]) -> str:
    """The first candidate text the named group of `pattern` captures exactly as given.

    A value can be written several ways ("5", "05"); a reply pattern such as `(?P<volume>\\d\\d)`
    accepts only some. Raises `ValueError` when none fits.
    """
    for text in candidates:
        try:
            rendered = render(pattern, {name: text})
        except ValueError:
            continue
        found = pattern.fullmatch(rendered) or pattern.search(rendered)
        if found is not None and found.group(name) == text:
            return text
    raise ValueError(
        f"no way to write {candidates[:1]} into (?P<{name}>...) of /{pattern.pattern}/"
    )
