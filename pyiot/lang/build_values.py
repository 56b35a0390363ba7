"""The value-level grammar rules: literals, types, arithmetic and conditions.

A mixin of `ModelBuilder` (pyiot/lang/builder.py), with the token helpers both use.
"""

from __future__ import annotations

import ast
import difflib
import math
import warnings
from dataclasses import dataclass
from typing import Any

from lark import Token

from pyiot.errors import PyiotError
from pyiot.lang import limits
from pyiot.lang.diagnostics import Diagnostic, SourcePos
from pyiot.lang.model import Comparison, Condition, Regex, ValueType

_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
TYPE_NAMES = ("bool", "int", "float", "string", "enum")
# Words other languages use for the types, and the type each means here.
_TYPE_ALIASES = {
    "boolean": "bool",
    "integer": "int",
    "number": "float",
    "double": "float",
    "real": "float",
    "decimal": "float",
    "str": "string",
    "text": "string",
    "char": "string",
}


@dataclass(frozen=True)
class ParamBound:
    """`{inputs}` as a range's top: the parameter's name token (its position for errors)."""

    name: Token


class BuildError(PyiotError):
    what = "bad .iot value"

    def __init__(self, diagnostic: Diagnostic):
        self.diagnostic = diagnostic


def token_pos(token: Token, path: str) -> SourcePos:
    """Where a token starts. Tokens from the parser always know (`line` is None only on a
    Token made by hand)."""
    assert token.line is not None and token.column is not None, token
    return SourcePos(path, token.line, token.column)


def unquote(token: Token, path: str) -> str:
    text = str(token)
    if "\\" not in text:
        # The grammar's STRING is `"..."` with no raw newline or quote inside: without a
        # backslash there is nothing to decode. (literal_eval, and the warnings filter it
        # needs, were most of the time the model took for a large file.)
        return text[1:-1]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "\q": an unknown escape stays as written
            return ast.literal_eval(str(token))
    except (SyntaxError, ValueError) as err:
        reason = getattr(err, "msg", None) or str(err)
        raise BuildError(
            Diagnostic(token_pos(token, path), f"bad string {token}: {reason}")
        ) from None


def regex_token(token: Token, path: str = "<string>") -> Regex:
    text = str(token)
    end = text.rindex("/")
    source = text[1:end].replace("\\/", "/")
    _check_regex_depth(token, path)
    return Regex(source, text[end + 1 :])


def _check_regex_depth(token: Token, path: str) -> None:
    """Groups nested past `MAX_REGEX_DEPTH`: an error at the "(" that goes too deep.

    Counted on the text as written, so the column is exact; escapes and character classes
    hold no groups.
    """
    text = str(token)
    depth, in_class, i = 0, False, 1
    while i < len(text):
        char = text[i]
        if char == "\\":
            i += 2
            continue
        if in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
            if text[i + 1 : i + 2] == "]":  # "[]...]": a leading "]" is a member
                i += 1
        elif char == "(":
            depth += 1
            if depth > limits.MAX_REGEX_DEPTH:
                raise _build_error(
                    path, token, f"regex groups nest more than {limits.MAX_REGEX_DEPTH} deep", i
                )
        elif char == ")":
            depth = max(depth - 1, 0)
        i += 1


def _build_error(path: str, token: Token, message: str, offset: int = 0) -> BuildError:
    """An error at a token (`offset` characters into it)."""
    line, column = token.line or 1, (token.column or 1) + offset
    return BuildError(Diagnostic(SourcePos(path, line, column), message))


def seconds(token: Token, path: str = "<string>") -> float:
    """A duration token in seconds; an error at it when it is absurd (over a week)."""
    text = str(token)
    for unit in ("ms", "s", "m", "h"):
        if text.endswith(unit):
            digits = text[: -len(unit)]
            value = float(digits) * _DURATION_UNITS[unit] if len(digits) <= 40 else math.inf
            if not value <= limits.MAX_SECONDS:
                raise _build_error(
                    path,
                    token,
                    f"duration {_short(text)} is longer than a week, the most pyiot takes",
                )
            return value
    raise AssertionError(text)


def number_of(text: str) -> int | float:
    return float(text) if "." in text else int(text)


def number_at(token: Token, path: str = "<string>") -> int | float:
    """A number token's value; an error at it beyond what JSON holds exactly (2**53)."""
    text = str(token)
    if len(text) <= limits.MAX_NUMBER_CHARS:
        value = number_of(text)
        if math.isfinite(value) and abs(value) <= limits.MAX_NUMBER:
            return value
    raise _build_error(
        path,
        token,
        f"number {_short(text)} is too large: numbers in a .iot file stay within "
        f"±{limits.MAX_NUMBER} (2**53, what JSON readers hold exactly)",
    )


def count_at(token: Token, path: str, what: str, maximum: int) -> int:
    """A whole-number token (`retries 3`) no larger than `maximum`."""
    text = str(token)
    if len(text) <= limits.MAX_NUMBER_CHARS and int(text) <= maximum:
        return int(text)
    raise _build_error(path, token, f"{what} {_short(text)} is too many (at most {maximum})")


def _short(text: str) -> str:
    """A token as a message quotes it: never more than a few dozen characters."""
    return text if len(text) <= 24 else f"{text[:10]}...{text[-6:]} ({len(text)} characters)"


class ValueRules:
    """Grammar rules for literals, types, `convert` arithmetic and `when` conditions."""

    path: str

    def _at(self, item: Token | Any) -> SourcePos:
        return token_pos(item, self.path)

    def _error(self, pos: SourcePos, message: str) -> BuildError:
        return BuildError(Diagnostic(pos, message))

    # literals ---------------------------------------------------------------------------------
    def string(self, items: list[Token]) -> str:
        return unquote(items[0], self.path)

    def number(self, items: list[Token]) -> int | float:
        return number_at(items[0], self.path)

    def negative(self, items: list[Token]) -> int | float:
        return -number_at(items[0], self.path)

    def boolean(self, items: list[Token]) -> bool:
        return str(items[0]) == "true"

    def duration(self, items: list[Token]) -> float:
        return seconds(items[0], self.path)

    def name(self, items: list[Token]) -> str:
        return str(items[0])

    # types --------------------------------------------------------------------------------------
    def bool_type(self, items: list) -> ValueType:
        return ValueType("bool")

    def int_type(self, items: list) -> ValueType:
        value_type = self._numeric("int", items)
        step = value_type.step
        if step is not None and not float(step).is_integer():
            # The step token is the last item: an int moves in whole steps.
            token = items[-1]
            raise self._error(
                self._at(token), f"an int moves in whole steps; step {token} is not one"
            )
        if step is not None:
            value_type.step = int(step)
        return value_type

    def hex_int_type(self, items: list) -> ValueType:
        value_type = self.int_type(items)
        value_type.base = 16
        return value_type

    def float_type(self, items: list) -> ValueType:
        return self._numeric("float", items)

    def _numeric(self, kind: str, items: list) -> ValueType:
        low, high = (None, None)
        step = None
        bound = None
        for item in items:
            if isinstance(item, tuple):
                low, high = item
                if isinstance(high, ParamBound):
                    bound, high = str(high.name), None
            else:
                step = number_at(item, self.path)
                if step == 0:
                    raise self._error(self._at(item), "a step must be above zero")
        value_type = ValueType(kind, low, high, step)
        value_type.maximum_param = bound
        return value_type

    def step(self, items: list[Token]) -> Token:
        return items[0]

    def unknown_type(self, items: list[Token]) -> ValueType:
        word = str(items[0])
        guess = _TYPE_ALIASES.get(word.lower()) or next(
            iter(difflib.get_close_matches(word.lower(), TYPE_NAMES, n=1, cutoff=0.6)), None
        )
        hint = f"; did you mean '{guess}'?" if guess else ""
        raise self._error(
            self._at(items[0]),
            f"unknown type '{_short(word)}'{hint} (types: {', '.join(TYPE_NAMES)})",
        )

    def string_type(self, items: list) -> ValueType:
        return ValueType("string")

    def enum_type(self, items: list[tuple[Token, str]]) -> ValueType:
        choices: dict[str, str] = {}
        for name, wire in items:
            if str(name) in choices:
                raise self._error(self._at(name), f"enum value '{name}' is declared twice")
            choices[str(name)] = wire
        return ValueType("enum", choices=choices)

    def enum_value(self, items: list[Token]) -> tuple[Token, str]:
        name = items[0]
        wire = unquote(items[1], self.path) if len(items) > 1 else str(name)
        return (name, wire)

    def range(self, items: list) -> tuple:
        return (items[0], items[1])

    def param_bound(self, items: list[Token]) -> ParamBound:
        return ParamBound(items[0])

    # expressions (convert) ------------------------------------------------------------------------
    def num(self, items: list[Token]) -> list:
        return ["num", number_at(items[0], self.path)]

    def variable(self, items: list[Token]) -> list:
        return ["var", str(items[0])]

    def neg(self, items: list) -> list:
        return ["neg", items[0]]

    def call(self, items: list) -> list:
        return ["call", str(items[0]), items[1]]

    def choose(self, items: list) -> list:
        then, left, op, right, otherwise = items
        return ["if", str(op), left, right, then, otherwise]

    def add(self, items: list) -> list:
        return ["+", *items]

    def sub(self, items: list) -> list:
        return ["-", *items]

    def mul(self, items: list) -> list:
        return ["*", *items]

    def div(self, items: list) -> list:
        return ["/", *items]

    # conditions -----------------------------------------------------------------------------------
    def comparison(self, items: list) -> Comparison:
        prop, op, value = items
        return Comparison(str(prop), str(op), value, self._at(prop))

    def condition(self, items: list[Comparison]) -> Condition:
        return Condition(items)
