"""Parse `.iot` source text into the model, turning Lark's errors into positioned diagnostics.

No Lark type leaves this module: callers get an `IotFile` or an `IotError`.
"""

from __future__ import annotations

import ast
import functools
import warnings
from importlib import resources
from pathlib import Path
from typing import Any

from lark import (
    Lark,
    Token,
    Transformer,
    UnexpectedCharacters,
    UnexpectedInput,
    UnexpectedToken,
    v_args,
)
from lark.exceptions import VisitError

from pyiot.lang.diagnostics import Diagnostic, IotError, SourcePos
from pyiot.lang.model import (
    Component,
    Device,
    IotFile,
    Param,
    Property,
    Regex,
    Thing,
    Transport,
    ValueType,
)

_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}

# Terminal names as a user would call them, for "expected ..." messages.
_TERMINAL_WORDS = {
    "NAME": "a name",
    "STRING": "a string",
    "REGEX": "a /regex/",
    "NUMBER": "a number",
    "INT": "a whole number",
    "DURATION": "a duration such as 500ms or 5s",
    "BOOL": "true or false",
    "TRANSPORT_KIND": "serial or tcp",
    "LBRACE": "'{'",
    "RBRACE": "'}'",
    "LPAR": "'('",
    "RPAR": "')'",
    "COLON": "':'",
    "COMMA": "','",
    "EQUAL": "'='",
    "MINUS": "'-'",
    "__ANON_0": "'..'",
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


def parse(source: str, path: str = "<string>") -> IotFile:
    """Parse source text into an (unchecked) model; raise `IotError` on a syntax error."""
    try:
        tree = _lark().parse(source)
    except UnexpectedInput as err:
        raise IotError([_syntax_diagnostic(err, source, path)], source) from None
    builder = _ModelBuilder(path)
    try:
        return builder.transform(tree)
    except _BuildError as err:
        raise IotError([err.diagnostic], source) from None
    except VisitError as err:
        # Lark wraps what a transformer callback raises; a _BuildError is the user's mistake.
        if isinstance(err.orig_exc, _BuildError):
            raise IotError([err.orig_exc.diagnostic], source) from None
        raise


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
        char = source[err.pos_in_stream] if err.pos_in_stream < len(source) else ""
        if char == '"':
            message = 'unterminated string (a string must close with " on the same line)'
        elif char == "/":
            message = "unterminated /regex/ (it must close with / on the same line)"
        else:
            message = f"unexpected character {char!r}"
        return Diagnostic(SourcePos(path, line, column), message)
    assert isinstance(err, UnexpectedToken)
    token = err.token
    return Diagnostic(
        SourcePos(path, line, column),
        f"unexpected {_describe_token(token)}; expected {_expected(err.expected)}",
    )


def _describe_token(token: Token) -> str:
    if token.type == "NAME":
        return f"name '{token}'"
    return f"'{token}'"


def _expected(names: set[str]) -> str:
    words = sorted({_TERMINAL_WORDS.get(n, _keyword(n)) for n in names})
    if len(words) > 8:
        words = words[:8] + ["..."]
    return ", ".join(words) if len(words) < 2 else "one of " + ", ".join(words)


def _keyword(terminal: str) -> str:
    # Lark names anonymous keyword terminals after the keyword in capitals ("DEVICE").
    return f"'{terminal.lower()}'"


class _BuildError(Exception):
    def __init__(self, diagnostic: Diagnostic):
        self.diagnostic = diagnostic


def _unquote(token: Token, path: str = "<string>") -> str:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "\\q": an unknown escape stays as written
            return ast.literal_eval(str(token))
    except (SyntaxError, ValueError) as err:
        reason = getattr(err, "msg", None) or str(err)
        raise _BuildError(
            Diagnostic(SourcePos(path, token.line, token.column), f"bad string {token}: {reason}")
        ) from None


def _regex(token: Token) -> Regex:
    text = str(token)
    end = text.rindex("/")
    return Regex(text[1:end].replace("\\/", "/"), text[end + 1 :])


def _seconds(token: Token) -> float:
    text = str(token)
    for unit in ("ms", "s", "m", "h"):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * _DURATION_UNITS[unit]
    raise AssertionError(text)


def _number(text: str) -> int | float:
    return float(text) if "." in text else int(text)


class _ModelBuilder(Transformer):
    """Bottom-up: each rule returns a small tagged tuple or a model object."""

    def __init__(self, path: str):
        super().__init__()
        self.path = path

    def _at(self, item: Token | Any) -> SourcePos:
        return SourcePos(self.path, item.line, item.column)

    # literals ---------------------------------------------------------------------------------
    def string(self, items: list[Token]) -> str:
        return _unquote(items[0], self.path)

    def number(self, items: list[Token]) -> int | float:
        return _number(str(items[0]))

    def negative(self, items: list[Token]) -> int | float:
        return -_number(str(items[0]))

    def boolean(self, items: list[Token]) -> bool:
        return str(items[0]) == "true"

    def duration(self, items: list[Token]) -> float:
        return _seconds(items[0])

    def name(self, items: list[Token]) -> str:
        return str(items[0])

    # types --------------------------------------------------------------------------------------
    def bool_type(self, items: list) -> ValueType:
        return ValueType("bool")

    def int_type(self, items: list) -> ValueType:
        return ValueType("int", *(items[0] if items else (None, None)))

    def float_type(self, items: list) -> ValueType:
        return ValueType("float", *(items[0] if items else (None, None)))

    def string_type(self, items: list) -> ValueType:
        return ValueType("string")

    def range(self, items: list) -> tuple:
        return (items[0], items[1])

    # device statements ----------------------------------------------------------------------------
    @v_args(meta=True)
    def param(self, meta, items: list) -> Param:
        return Param(str(items[0]), items[1], SourcePos(self.path, meta.line, meta.column))

    def params(self, items: list) -> tuple:
        return ("params", items)

    def setting(self, items: list) -> tuple:
        return (str(items[0]), items[1])

    def transport(self, items: list) -> tuple:
        return ("transport", Transport(str(items[0]), dict(items[1:])), self._at(items[0]))

    def framing(self, items: list[Token]) -> tuple:
        return ("line_terminator", _unquote(items[0], self.path), self._at(items[0]))

    def timeout(self, items: list[Token]) -> tuple:
        return ("timeout", _seconds(items[0]), self._at(items[0]))

    def retries(self, items: list[Token]) -> tuple:
        return ("retries", int(items[0]), self._at(items[0]))

    def poll(self, items: list[Token]) -> tuple:
        return ("poll_every", _seconds(items[0]), self._at(items[0]))

    def error_reply(self, items: list[Token]) -> tuple:
        return ("error_reply", _regex(items[0]), self._at(items[0]))

    def query(self, items: list[Token]) -> tuple:
        return ("query", _unquote(items[0], self.path), self._at(items[0]))

    def reply(self, items: list[Token]) -> tuple:
        return ("reply", _regex(items[0]), self._at(items[0]))

    def set_command(self, items: list[Token]) -> tuple:
        return ("set_format", _unquote(items[0], self.path), self._at(items[0]))

    @v_args(meta=True)
    def value_map(self, meta, items: list) -> tuple:
        return ("value_map", dict(items), SourcePos(self.path, meta.line, meta.column))

    def map_entry(self, items: list) -> tuple:
        key = items[0]
        if isinstance(key, Token):
            key = _unquote(key, self.path) if key.type == "STRING" else str(key)
        return (str(key), items[1])

    @v_args(meta=True)
    def property(self, meta, items: list) -> Property:
        name, value_type, *statements = items
        prop = Property(str(name), value_type, self._at(name))
        self._apply(prop, statements, f"property '{name}'")
        return prop

    @v_args(meta=True)
    def device(self, meta, items: list) -> Device:
        name, *rest = items
        device = Device(str(name), self._at(name))
        statements = []
        for item in rest:
            if isinstance(item, Token) and item.type == "STRING":
                device.description = _unquote(item, self.path)
            elif isinstance(item, tuple) and item[0] == "params":
                device.params = item[1]
            elif isinstance(item, Property):
                if item.name in device.properties:
                    raise _BuildError(
                        Diagnostic(item.pos, f"property '{item.name}' is declared twice")
                    )
                device.properties[item.name] = item
            else:
                statements.append(item)
        self._apply(device, statements, f"device '{name}'")
        return device

    def _apply(self, target: Device | Property, statements: list[tuple], owner: str) -> None:
        for key, value, pos in statements:
            if key in target.positions:
                raise _BuildError(Diagnostic(pos, f"'{key}' is given twice in {owner}"))
            setattr(target, key, value)
            target.positions[key] = pos

    # things ---------------------------------------------------------------------------------------
    def arg(self, items: list) -> tuple:
        return (str(items[0]), items[1])

    def args(self, items: list) -> tuple:
        return ("args", dict(items))

    def endpoint(self, items: list[Token]) -> tuple:
        return (str(items[0]), _unquote(items[1], self.path), self._at(items[1]))

    def component(self, items: list) -> Component:
        name, device_name, *rest = items
        kind, address, address_pos = rest[-1]
        args = rest[0][1] if len(rest) == 2 else {}
        return Component(
            str(name),
            str(device_name),
            self._at(name),
            args=args,
            endpoint_kind=kind,
            endpoint=address,
            positions={"device": self._at(device_name), "endpoint": address_pos},
        )

    def thing(self, items: list) -> Thing:
        name, *components = items
        thing = Thing(str(name), self._at(name))
        for component in components:
            if component.name in thing.components:
                raise _BuildError(
                    Diagnostic(component.pos, f"component '{component.name}' is declared twice")
                )
            thing.components[component.name] = component
        return thing

    def start(self, items: list) -> IotFile:
        model = IotFile(self.path)
        for item in items:
            table = model.devices if isinstance(item, Device) else model.things
            kind = "device" if isinstance(item, Device) else "thing"
            if item.name in table:
                raise _BuildError(Diagnostic(item.pos, f"{kind} '{item.name}' is declared twice"))
            table[item.name] = item
        return model
