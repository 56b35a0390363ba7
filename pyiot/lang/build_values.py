"""The value-level grammar rules: literals, types, arithmetic and conditions.

A mixin of `ModelBuilder` (pyiot/lang/builder.py), with the token helpers both use.
"""

from __future__ import annotations

import ast
import warnings
from typing import Any

from lark import Token

from pyiot.lang.diagnostics import Diagnostic, SourcePos
from pyiot.lang.model import Comparison, Condition, Regex, ValueType

_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


class BuildError(Exception):
    def __init__(self, diagnostic: Diagnostic):
        self.diagnostic = diagnostic


def unquote(token: Token, path: str) -> str:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "\q": an unknown escape stays as written
            return ast.literal_eval(str(token))
    except (SyntaxError, ValueError) as err:
        reason = getattr(err, "msg", None) or str(err)
        raise BuildError(
            Diagnostic(SourcePos(path, token.line, token.column), f"bad string {token}: {reason}")
        ) from None


def regex_token(token: Token) -> Regex:
    text = str(token)
    end = text.rindex("/")
    return Regex(text[1:end].replace("\\/", "/"), text[end + 1 :])


def seconds(token: Token) -> float:
    text = str(token)
    for unit in ("ms", "s", "m", "h"):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * _DURATION_UNITS[unit]
    raise AssertionError(text)


def number_of(text: str) -> int | float:
    return float(text) if "." in text else int(text)


class ValueRules:
    """Grammar rules for literals, types, `convert` arithmetic and `when` conditions."""

    path: str

    def _at(self, item: Token | Any) -> SourcePos:
        return SourcePos(self.path, item.line, item.column)

    # literals ---------------------------------------------------------------------------------
    def string(self, items: list[Token]) -> str:
        return unquote(items[0], self.path)

    def number(self, items: list[Token]) -> int | float:
        return number_of(str(items[0]))

    def negative(self, items: list[Token]) -> int | float:
        return -number_of(str(items[0]))

    def boolean(self, items: list[Token]) -> bool:
        return str(items[0]) == "true"

    def duration(self, items: list[Token]) -> float:
        return seconds(items[0])

    def name(self, items: list[Token]) -> str:
        return str(items[0])

    # types --------------------------------------------------------------------------------------
    def bool_type(self, items: list) -> ValueType:
        return ValueType("bool")

    def int_type(self, items: list) -> ValueType:
        low, high = items[0] if items else (None, None)
        return ValueType("int", low, high)

    def hex_int_type(self, items: list) -> ValueType:
        value_type = self.int_type(items)
        value_type.base = 16
        return value_type

    def float_type(self, items: list) -> ValueType:
        low, high = (None, None)
        step = None
        for item in items:
            if isinstance(item, tuple):
                low, high = item
            else:
                step = number_of(str(item))
        return ValueType("float", low, high, step)

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

    # expressions (convert) ------------------------------------------------------------------------
    def num(self, items: list[Token]) -> list:
        return ["num", number_of(str(items[0]))]

    def variable(self, items: list[Token]) -> list:
        return ["var", str(items[0])]

    def neg(self, items: list) -> list:
        return ["neg", items[0]]

    def call(self, items: list) -> list:
        return ["call", str(items[0]), items[1]]

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
