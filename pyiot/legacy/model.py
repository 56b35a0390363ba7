"""A legacy component as the device model a `.iot` file gives, plus its Python conversions.

`componentToProperty(prop, regex)` on one property becomes the property's `reply` (its first
group named `value`, as in a `.iot` file) and the method its `decode` hook; on a list of
properties it becomes a group query whose fields are those properties (`property x from
NAME.field`), decoded by that method. `propertyToComponent(prop, fmt)` becomes the property's
`set` format and the method its `encode` hook. A property the original read from several
messages keeps every one of them in `LegacyModel.routes`, which is what the runtime matches,
in the original's order: the first regex (subclasses first, then definition order) that
matches a message from its start decodes it.

Legacy values have no declared type (`ValueType("any")`): the decorated methods decide what
is valid, by returning a value or raising.
"""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pyiot.compiler.tables import MachineTable, machine_table
from pyiot.errors import PyiotError
from pyiot.lang.diagnostics import SourcePos
from pyiot.lang.model import Device, GroupQuery, Property, Regex, Transport, ValueType
from pyiot.lang.values import Hooks
from pyiot.legacy.component import Component, property_names, registrations

ANY = "any"

_FLAG_LETTERS = {re.I: "i", re.M: "m", re.S: "s", re.X: "x"}



class PythonRegex(Regex):
    """A pattern from a legacy component's Python code, matched with Python's `re`.

    The original pyIOT took any Python regex (lookahead, backreferences), and its author's code
    already runs with full trust; a `.iot` file's patterns, which come from elsewhere, are
    matched with RE2 instead (`Regex`).
    """

    def compile(self, args: dict[str, Any] | None = None) -> Any:
        bits = 0
        for letter in self.flags:
            bits |= {"i": re.I, "m": re.M, "s": re.S, "x": re.X}[letter]
        return re.compile(self._source(args), bits)

class LegacyModelError(PyiotError, ValueError):
    """A component class the runtime cannot run (a regex with too few groups, ...)."""

    what = "unusable component class"


@dataclass
class Route:
    """One `componentToProperty` registration: its pattern and who decodes each field."""

    pattern: re.Pattern[str]
    fields: list[tuple[str, str]]  # (named group of `pattern`, property)
    decoders: dict[str, Callable[[str | None], Any]]  # property -> value from wire text
    where: str  # "Relay.toRelayState", for log lines


@dataclass
class LegacyModel:
    """What the runtime needs of a component: the device, its hooks and its routes."""

    device: Device
    hooks: dict[str, Hooks]
    routes: list[Route]
    synchronous: bool = False

    @functools.cached_property
    def table(self) -> MachineTable:
        """The protocol machine: the one a `.iot` device of these properties gets, with its
        sets answered as `synchronous` says and one exchange for `queryStatus()`."""
        return machine_table(self.device, self.synchronous)


def build_model(component: Component) -> LegacyModel:
    """The model of one component instance (its `eol`, `timeout` and methods)."""
    cls = type(component)
    readers, writers = registrations(cls)
    names = property_names(cls)
    number = {name: index for index, name in enumerate(names)}
    props = {name: Property(name=name, type=ValueType(ANY), pos=class_pos(cls)) for name in names}
    hooks: dict[str, Hooks] = {name: {} for name in names}
    for name, (func, cmd) in writers.items():
        props[name].set_format = cmd
        props[name].pos = _pos(func)
        hooks[name]["encode"] = func.__get__(component)
    routes: list[Route] = []
    groups: dict[str, GroupQuery] = {}
    for func, targets, regex in readers:
        where = f"{cls.__name__}.{func.__name__}"
        if regex.groups < len(targets):
            raise LegacyModelError(
                f"{where}: the regex {regex.pattern!r} has {regex.groups} group(s) for "
                f"{len(targets)} propert{'y' if len(targets) == 1 else 'ies'} {list(targets)}"
            )
        method = func.__get__(component)
        decoders: dict[str, Callable[[str | None], Any]] = {
            name: functools.partial(method, name) for name in targets
        }
        first = props[targets[0]]
        if len(targets) == 1 and first.reply is None:
            source, fields = name_groups(regex, ["value"])
            first.reply = PythonRegex(source, _flag_letters(regex))
            first.pos = _pos(func)
            hooks[first.name]["decode"] = decoders[first.name]
        else:
            source, fields = name_groups(regex, [f"p{number[name]}" for name in targets])
            group = _unique(func.__name__, groups)
            reply = PythonRegex(source, _flag_letters(regex))
            groups[group] = GroupQuery(group, "", reply, _pos(func))
            for name, field in zip(targets, fields, strict=True):
                if props[name].group is None:
                    props[name].group, props[name].group_field = group, field
        pattern = re.compile(source, regex.flags)
        routes.append(Route(pattern, list(zip(fields, targets, strict=True)), decoders, where))
    device = Device(
        name=cls.__name__,
        pos=class_pos(cls),
        description=(inspect.getdoc(cls) or "").split("\n", 1)[0],
        transport=Transport("custom", {"stream": type(component._stream).__name__}),
        line_terminator=component._eol,
        timeout=component._timeout,
        retries=0,  # the original never sent a command twice
        poll_every=component._queryTiming or None,
        groups=groups,
        properties=props,
    )
    return LegacyModel(device, hooks, routes, component._synchronous)


def name_groups(regex: re.Pattern[str], names: list[str]) -> tuple[str, list[str]]:
    """The regex's source with its first `len(names)` capturing groups named `names`.

    A group the user named already keeps its name (a backreference may use it). Returns the
    new source and the name of each of those groups; raises LegacyModelError if the result
    does not number its groups as the original did.
    """
    source = regex.pattern
    starts = _group_starts(source, verbose=bool(regex.flags & re.X))[: len(names)]
    if len(starts) < len(names):
        raise LegacyModelError(f"cannot find {len(names)} group(s) in {regex.pattern!r}")
    fields = [given or wanted for (_, given), wanted in zip(starts, names, strict=True)]
    for (at, given), field in reversed(list(zip(starts, fields, strict=True))):
        if given is None:
            source = f"{source[:at]}(?P<{field}>{source[at + 1 :]}"
    try:
        renamed = re.compile(source, regex.flags)
    except re.error as err:
        raise LegacyModelError(f"cannot name the groups of {regex.pattern!r}: {err}") from None
    if renamed.groups != regex.groups or any(
        renamed.groupindex.get(field) != index for index, field in enumerate(fields, 1)
    ):
        raise LegacyModelError(f"cannot name the groups of {regex.pattern!r}")
    return source, fields


def _group_starts(source: str, verbose: bool) -> list[tuple[int, str | None]]:
    """Where each capturing group opens, in order, with its name if it has one."""
    found: list[tuple[int, str | None]] = []
    at, end = 0, len(source)
    while at < end:
        char = source[at]
        if char == "\\":
            at += 2
            continue
        if char == "[":  # a class: ']' first (after an optional '^') is a literal
            at += 1
            at += source.startswith("^", at)
            at += source.startswith("]", at)
            while at < end and source[at] != "]":
                at += 2 if source[at] == "\\" else 1
        elif verbose and char == "#":
            newline = source.find("\n", at)
            at = end if newline < 0 else newline
        elif char == "(":
            if source.startswith("(?P<", at):
                found.append((at, source[at + 4 : source.index(">", at)]))
            elif not source.startswith("(?", at):
                found.append((at, None))
        at += 1
    return found


def _flag_letters(regex: re.Pattern[str]) -> str:
    return "".join(letter for bit, letter in _FLAG_LETTERS.items() if regex.flags & bit)


def _unique(name: str, taken: dict[str, Any]) -> str:
    candidate, counter = name, 1
    while candidate in taken:
        counter += 1
        candidate = f"{name}_{counter}"
    return candidate


def _pos(func: Callable) -> SourcePos:
    code = getattr(func, "__code__", None)
    if code is None:
        return SourcePos("<python>", 1, 1)
    return SourcePos(code.co_filename, code.co_firstlineno, 1)


# Component and Thing classes -> where they are defined; reading the source is slow. A plain
# dict, not functools.cache: mypy does not take a class for Hashable.
_CLASS_POS: dict[type, SourcePos] = {}


def class_pos(cls: type) -> SourcePos:
    """Where a class is defined (for positions in the model and in messages)."""
    if cls not in _CLASS_POS:
        try:
            _, line = inspect.getsourcelines(cls)
            pos = SourcePos(inspect.getsourcefile(cls) or "<python>", max(line, 1), 1)
        except (OSError, TypeError):
            pos = SourcePos(f"<{cls.__module__}>", 1, 1)
        _CLASS_POS[cls] = pos
    return _CLASS_POS[cls]
