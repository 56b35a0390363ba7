"""Reply patterns compiled for RE2, with errors that say what to write instead.

pyiot matches every line a device sends against its reply, error and ack patterns. Python's
`re` backtracks, so a plausible pattern (`(\\w+\\s?)+`) and one crafted line can take minutes;
RE2 (`google-re2`) matches in time linear in the line whatever the pattern. RE2 refuses what
needs backtracking (backreferences, lookaround) and what backtracking alone needs (atomic
groups, possessive repeats); each refusal here names the construct and the way around it.

The simulator renders replies from Python's parse of the same pattern, so a pattern must also
compile there (the few RE2-only spellings, `\\pL` or `\\z`, get Python's message).
"""

from __future__ import annotations

import functools
import re
import warnings
from typing import Any

import re2

from pyiot.lang.model import PatternError

# RE2's own limit on a counted repeat; bigger counts would be refused (or, above 2**31, read
# wrongly), so they get their own message first.
MAX_REPEAT = 1000

_OPTIONS = re2.Options()
_OPTIONS.log_errors = False  # RE2 otherwise prints every refusal on stderr through absl

# RE2 message fragment -> (what it is, what to write instead).
_ADVICE: list[tuple[str, str]] = [
    ("(?=", "lookahead (?=...) is not supported: match the text itself, or capture it in an "
     "optional group (...)?"),
    ("(?!", "negative lookahead (?!...) is not supported: list what may follow in a class such "
     "as [^X], or match the other case in an error or ack pattern"),
    ("(?<=", "lookbehind (?<=...) is not supported: match the text before as part of the "
     "pattern, outside the named group"),
    ("(?<!", "negative lookbehind (?<!...) is not supported: anchor the pattern (^...) and "
     "spell out what comes before"),
    ("(?P=", "a named backreference (?P=name) is not supported: capture both parts in their "
     "own groups (a python decode hook can compare them)"),
    ("(?>", "an atomic group (?>...) is not needed: RE2 never backtracks; write (?:...)"),
    ("(?(", "a conditional group (?(1)...) is not supported: write the alternatives with |"),
    ("(?#", "a comment group (?#...) is not supported: put the comment after # on the line"),
    ("++", "a possessive repeat (++) is not needed: RE2 never backtracks; write +"),
    ("*+", "a possessive repeat (*+) is not needed: RE2 never backtracks; write *"),
    ("?+", "a possessive repeat (?+) is not needed: RE2 never backtracks; write ?"),
    ("}+", "a possessive repeat ({n}+) is not needed: RE2 never backtracks; write {n}"),
    ("\\Z", "\\Z is not supported: write $ (end of the line) or \\z"),
    ("invalid repetition size", f"a counted repeat is at most {MAX_REPEAT}: write + or * "
     "for 'any number'"),
    ("pattern too large", "the pattern is too large for RE2: use + or * instead of big "
     "counted repeats"),
]

_BACKREF = re.compile(r"^\\[1-9]")
_COUNTED = re.compile(r"(?<!\\)(?:\\\\)*\{(\d+)(?:,(\d*))?\}")


# A line pattern remembers this many lines' matches (then starts again) ...
MEMO_LINES = 32
# ... of lines up to this long: a status line, not a dump.
MEMO_LINE_LENGTH = 160


class LineMatch:
    """What a line pattern found: the texts of its named groups (None: a group that took no
    part). Read once from RE2's match: each of RE2's own `group` calls asks the C++ side for
    the pattern's group names again, and gives up the GIL to do so."""

    __slots__ = ("_groups",)

    def __init__(self, groups: dict[str, str | None]):
        self._groups = groups

    def group(self, name: str) -> str | None:
        try:
            return self._groups[name]
        except KeyError:
            raise IndexError(f"no group {name!r}") from None


class LinePattern:
    """An RE2 pattern that remembers what its last few lines matched.

    A device repeats itself: a poll gets the same reply until something changes, and a
    gateway matches the same few lines against the same patterns thousands of times. RE2's
    Python wrapper costs ~10 µs a search (it translates offsets between bytes and text in
    Python) against well under 1 µs to look a line up, so each pattern keeps the matches of
    up to `MEMO_LINES` short lines, and forgets them all when full: a device that never
    repeats itself (or a hostile one) costs a search per line, as before, and memory stays
    bounded. Only `search` is remembered; the rest is RE2's own.
    """

    __slots__ = ("regexp", "_seen")

    def __init__(self, regexp: Any):
        self.regexp = regexp
        self._seen: dict[str, LineMatch | None] = {}

    def search(self, line: str) -> LineMatch | None:
        """RE2's `search(line)`, as a `LineMatch` (shared by every search of an equal line)."""
        seen = self._seen
        try:
            return seen[line]
        except KeyError:
            pass
        found = self.regexp.search(line)
        match = None if found is None else LineMatch(found.groupdict())
        if len(line) <= MEMO_LINE_LENGTH:
            if len(seen) >= MEMO_LINES:
                seen.clear()
            seen[line] = match
        return match

    def match(self, line: str) -> Any:
        return self.regexp.match(line)

    def fullmatch(self, line: str) -> Any:
        return self.regexp.fullmatch(line)

    @property
    def groupindex(self) -> Any:
        return self.regexp.groupindex

    @property
    def pattern(self) -> str:
        return self.regexp.pattern


@functools.lru_cache(maxsize=4096)
def compile_re2(source: str, flags: str = "") -> LinePattern:
    """An RE2 pattern (`search`, `fullmatch`, `groupindex`) for a reply pattern.

    `flags` are the letters after the closing slash: `i`, `m`, `s`. Raises `PatternError`.
    The same source and flags give the same pattern object: a thousand relays share one
    pattern (and what it remembers) instead of compiling a thousand.
    """
    _check_flags(source, flags)
    _check_counts(source)
    prefix = f"(?{flags})" if flags else ""
    try:
        return LinePattern(re2.compile(prefix + source, _OPTIONS))
    except re2.error as err:
        raise _explain(source, err) from None


def compile_python(source: str, flags: str = "") -> re.Pattern[str]:
    """The same pattern for Python's `re` (the simulator's renderer). Raises `PatternError`."""
    _check_flags(source, flags)
    _check_counts(source)
    bits = 0
    for letter in flags:
        bits |= {"i": re.I, "m": re.M, "s": re.S}[letter]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "possible nested set": RE2's [[:digit:]]
            return re.compile(source, bits)
    except re.error as err:
        raise PatternError(f"bad regex: {err.msg}", err.pos or 0) from None
    except (OverflowError, RecursionError) as err:
        raise PatternError(f"bad regex: {err}", 0) from None


def _check_flags(source: str, flags: str) -> None:
    for index, letter in enumerate(flags):
        if letter == "x":
            raise PatternError(
                "flag x (verbose) is not supported by RE2: write the pattern without spaces "
                "and comments (\\s or a literal space where one is meant)",
                len(source) + 1 + index,
            )
        if letter not in "ims":
            raise PatternError(f"unknown regex flag {letter!r} (flags are i, m, s)",
                               len(source) + 1 + index)


def _check_counts(source: str) -> None:
    for found in _COUNTED.finditer(source):
        for number in (found[1], found[2]):
            if number and (len(number) > 6 or int(number) > MAX_REPEAT):
                shown = number if len(number) <= 12 else number[:12] + "…"
                raise PatternError(
                    f"repeat count {shown} is above {MAX_REPEAT}, RE2's limit: write + or * "
                    "for 'any number'",
                    found.start() + found[0].index("{"),
                )


def _explain(source: str, err: Exception) -> PatternError:
    raw = err.args[0] if err.args else str(err)
    message = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    what, _, fragment = message.partition(": ")
    offset = max(source.find(fragment), 0) if fragment else 0
    if what == "invalid escape sequence" and _BACKREF.match(fragment):
        return PatternError(
            f"a backreference ({fragment[:2]}) is not supported: RE2 matches in linear time "
            "and cannot refer back; write the repeated text out, or capture both parts",
            offset,
        )
    for key, advice in _ADVICE:
        if key in message:
            return PatternError(f"{advice} (pyiot matches replies with RE2)", offset)
    # A plain syntax error (an unclosed group): Python's message has the exact position.
    try:
        compile_python(source)
    except PatternError as python_err:
        return python_err
    return PatternError(f"bad regex: {message}", offset)
