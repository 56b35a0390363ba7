"""Arithmetic for unit conversion (`convert { read = value / 2 - 80, write = ... }`).

Expressions are nested lists built by the parser; only `value`, numbers, + - * /, unary minus
and a few named functions exist, so a `.iot` file can convert units without running Python.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

FUNCTIONS: dict[str, Callable[[float], float]] = {
    "round": round,
    "abs": abs,
    "int": int,
    "floor": math.floor,
    "ceil": math.ceil,
}
VARIABLES = ("value",)


class ExprError(ValueError):
    """An expression that cannot be evaluated (division by zero)."""


def evaluate(expr: list, value: float) -> float:
    """The expression's result with `value` bound."""
    op = expr[0]
    if op == "num":
        return expr[1]
    if op == "var":
        return value
    if op == "neg":
        return -evaluate(expr[1], value)
    if op == "call":
        return FUNCTIONS[expr[1]](evaluate(expr[2], value))
    left, right = evaluate(expr[1], value), evaluate(expr[2], value)
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
    elif op != "num":
        yield from names(expr[1])
        yield from names(expr[2])
