"""Arithmetic for unit conversion (`convert { read = value / 2 - 80, write = ... }`).

Expressions are nested lists built by the parser; only `value`, `digits` (how many digits the
wire number was written with, when reading), numbers, + - * /, unary minus, a few named
functions and `A if X OP Y else B` exist, so a `.iot` file can convert units without running
Python.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

from pyiot.errors import PyiotError

FUNCTIONS: dict[str, Callable[[float], float]] = {
    "round": round,
    "abs": abs,
    "int": int,
    "floor": math.floor,
    "ceil": math.ceil,
}
VARIABLES = ("value", "digits")
_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


class ExprError(PyiotError, ValueError):
    """An expression that cannot be evaluated (division by zero)."""

    what = "expression failed"


def evaluate(expr: list, value: float, digits: int = 0) -> float:
    """The expression's result with `value` (and `digits`, the wire text's digit count) bound."""
    op = expr[0]
    if op == "num":
        return expr[1]
    if op == "var":
        return digits if expr[1] == "digits" else value
    if op == "neg":
        return -evaluate(expr[1], value, digits)
    if op == "call":
        return FUNCTIONS[expr[1]](evaluate(expr[2], value, digits))
    if op == "if":
        _, compare, a, b, then, otherwise = expr
        holds = _COMPARE[compare](evaluate(a, value, digits), evaluate(b, value, digits))
        return evaluate(then if holds else otherwise, value, digits)
    left, right = evaluate(expr[1], value, digits), evaluate(expr[2], value, digits)
    if op == "+":
        return left + right
    if op == "-":
        return left - right
    if op == "*":
        return left * right
    if right == 0:
        raise ExprError("division by zero")
    return left / right


def names(expr: list) -> Iterator[tuple[str, str]]:
    """Every ("var", name) and ("call", function) the expression uses, for the checker."""
    op = expr[0]
    if op == "var":
        yield ("var", expr[1])
    elif op == "call":
        yield ("call", expr[1])
        yield from names(expr[2])
    elif op == "neg":
        yield from names(expr[1])
    elif op == "if":
        for part in expr[2:]:
            yield from names(part)
    elif op != "num":
        yield from names(expr[1])
        yield from names(expr[2])
