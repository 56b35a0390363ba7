"""Lark parse tree -> model: one method per grammar rule, bottom-up.

Statements come back as `(key, value, position)` triples and are applied to their device or
property, so "given twice" is caught in one place. Mistakes found here (a duplicate, a bad
string escape) raise `BuildError` carrying a positioned diagnostic.
"""

from __future__ import annotations

from typing import Any

from lark import Token, Transformer, v_args

from pyiot.lang import limits
from pyiot.lang.build_values import (
    BuildError,
    ValueRules,
    count_at,
    regex_token,
    seconds,
    unquote,
)
from pyiot.lang.diagnostics import Diagnostic, SourcePos
from pyiot.lang.model import (
    Comparison,
    Component,
    Condition,
    Convert,
    Device,
    Endpoint,
    GroupQuery,
    Import,
    IotFile,
    Login,
    ModeHold,
    Modes,
    ModeTransition,
    ModeTrigger,
    Param,
    Property,
    Regex,
    Rule,
    RuleAction,
    ShadowName,
    Thing,
    Transport,
)


class ModelBuilder(ValueRules, Transformer):
    """Bottom-up: each rule returns a small tagged tuple or a model object."""

    def __init__(self, path: str):
        super().__init__()
        self.path = path

    def _at(self, item: Token | Any) -> SourcePos:
        return SourcePos(self.path, item.line, item.column)

    def _meta_at(self, meta: Any) -> SourcePos:
        return SourcePos(self.path, meta.line, meta.column)

    def _error(self, pos: SourcePos, message: str) -> BuildError:
        return BuildError(Diagnostic(pos, message))

    # device statements ----------------------------------------------------------------------------
    @v_args(meta=True)
    def param(self, meta: Any, items: list) -> Param:
        return Param(str(items[0]), items[1], self._meta_at(meta))

    def params(self, items: list) -> tuple:
        return ("params", items)

    def setting(self, items: list) -> tuple:
        return (str(items[0]), items[1])

    def transport(self, items: list) -> tuple:
        return ("transport", Transport(str(items[0]), dict(items[1:])), self._at(items[0]))

    def prompt(self, items: list[Token]) -> tuple:
        return ("prompt", unquote(items[0], self.path), self._at(items[0]))

    @v_args(meta=True)
    def echo(self, meta: Any, items: list) -> tuple:
        return ("echo", True, self._meta_at(meta))

    @v_args(meta=True)
    def any_case(self, meta: Any, items: list) -> tuple:
        return ("commands_any_case", True, self._meta_at(meta))

    def framing(self, items: list) -> list[tuple]:
        terminator = items[0]
        return [
            ("line_terminator", unquote(terminator, self.path), self._at(terminator)),
            *items[1:],
        ]

    def packet_framing(self, items: list) -> list[tuple]:
        template = items[0]
        statements = [("packet", unquote(template, self.path), self._at(template))]
        statements += items[1:]
        return statements

    def packet_end(self, items: list[Token]) -> tuple:
        return ("packet_end", unquote(items[0], self.path), self._at(items[0]))

    def packet_reply_end(self, items: list[Token]) -> tuple:
        return ("packet_reply_end", unquote(items[0], self.path), self._at(items[0]))

    def reply_terminators(self, items: list[Token]) -> tuple:
        texts = [unquote(item, self.path) for item in items]
        return ("reply_terminators", texts, self._at(items[0]))

    def command_terminators(self, items: list[Token]) -> tuple:
        texts = [unquote(item, self.path) for item in items]
        return ("command_terminators", texts, self._at(items[0]))

    def timeout(self, items: list[Token]) -> tuple:
        return ("timeout", seconds(items[0], self.path), self._at(items[0]))

    def retries(self, items: list[Token]) -> tuple:
        retries = count_at(items[0], self.path, "retries", limits.MAX_RETRIES)
        return ("retries", retries, self._at(items[0]))

    def backoff(self, items: list[Token]) -> tuple:
        return ("backoff", seconds(items[0], self.path), self._at(items[0]))

    def poll(self, items: list) -> list[tuple]:
        statements = [("poll_every", seconds(items[0], self.path), self._at(items[0]))]
        if len(items) > 1:
            statements.append(("poll_when", items[1], items[1].comparisons[0].pos))
        return statements

    def error_reply(self, items: list[Token]) -> tuple:
        return ("error_reply", regex_token(items[0], self.path), self._at(items[0]))

    def ack_reply(self, items: list[Token]) -> tuple:
        return ("ack", regex_token(items[0], self.path), self._at(items[0]))

    def group_query(self, items: list) -> GroupQuery:
        name, text, *rest = items
        then = [item for item in rest if isinstance(item, Regex)]
        rest = [item for item in rest if not isinstance(item, Regex)]
        group = GroupQuery(
            str(name), unquote(text, self.path), regex_token(rest[-1], self.path), self._at(name)
        )
        group.reply_then = then
        group.positions = {"query": self._at(text), "reply": self._at(rest[-1])}
        for item in rest[:-1]:
            if isinstance(item, Condition):
                group.poll_when = item
            else:
                group.poll_every = seconds(item, self.path)
        return group

    # properties -----------------------------------------------------------------------------------
    def query(self, items: list[Token]) -> tuple:
        return ("query", unquote(items[0], self.path), self._at(items[0]))

    def reply(self, items: list) -> list[tuple]:
        statements = [("reply", regex_token(items[0], self.path), self._at(items[0]))]
        then = [item for item in items[1:] if isinstance(item, Regex)]
        if then:
            statements.append(("reply_then", then, self._at(items[0])))
        return statements + [item for item in items[1:] if isinstance(item, tuple)]

    @v_args(meta=True)
    def reply_only(self, meta: Any, items: list) -> tuple:
        return ("reply_only", True, self._meta_at(meta))

    def reply_then(self, items: list[Token]) -> Regex:
        return regex_token(items[0], self.path)

    def connect_send(self, items: list[Token]) -> tuple:
        texts = [unquote(item, self.path) for item in items]
        return ("connect_commands", texts, self._at(items[0]))

    def greeting(self, items: list[Token]) -> tuple:
        return ("greeting", unquote(items[0], self.path), self._at(items[0]))

    def login(self, items: list[Token]) -> tuple:
        digest, fmt, greeting, *refused = items
        login = Login(
            str(digest),
            unquote(fmt, self.path),
            regex_token(greeting, self.path),
            unquote(refused[0], self.path) if refused else None,
        )
        return ("login", login, self._at(digest))

    def set_timeout(self, items: list[Token]) -> tuple:
        return ("set_timeout", seconds(items[0], self.path), self._at(items[0]))

    def reply_format(self, items: list[Token]) -> tuple:
        return ("reply_format", unquote(items[0], self.path), self._at(items[0]))

    def set_command(self, items: list) -> list[tuple]:
        statements = [("set_format", unquote(items[0], self.path), self._at(items[0]))]
        for item in items[1:]:
            if item[0] == "set_unanswered":
                statements.append(item)
            else:
                entries, pos = item
                statements.append(("set_map", [(k, _wire(v)) for k, v in entries], pos))
        return statements

    @v_args(meta=True)
    def unanswered(self, meta: Any, items: list) -> tuple:
        return ("set_unanswered", True, self._meta_at(meta))

    inline_set = set_command

    @v_args(meta=True)
    def set_map(self, meta: Any, items: list) -> tuple:
        entries, _ = items[0]
        return (entries, self._meta_at(meta))

    @v_args(meta=True)
    def value_map(self, meta: Any, items: list) -> tuple:
        entries, _ = items[0]
        return ("value_map", {str(k): v for k, v in entries}, self._meta_at(meta))

    @v_args(meta=True)
    def mapping(self, meta: Any, items: list) -> tuple:
        return (items, self._meta_at(meta))

    def map_entry(self, items: list) -> tuple:
        key = items[0]
        if isinstance(key, Token):
            if key.type == "STRING":
                key = unquote(key, self.path)
            elif key.type == "BOOL":
                key = str(key) == "true"
            else:
                key = str(key)
        return (key, items[1])

    def source(self, items: list[Token]) -> list[tuple]:
        pos = self._at(items[0])
        return [("group", str(items[0]), pos), ("group_field", str(items[1]), self._at(items[1]))]

    @v_args(meta=True)
    def confirm(self, meta: Any, items: list) -> tuple:
        return ("confirm", True, self._meta_at(meta))

    def access(self, items: list[Token]) -> tuple:
        return ("access", str(items[0]), self._at(items[0]))

    def unit(self, items: list[Token]) -> tuple:
        return ("unit", unquote(items[0], self.path), self._at(items[0]))

    @v_args(meta=True)
    def convert(self, meta: Any, items: list) -> tuple:
        return ("convert", Convert(items[0], items[1]), self._meta_at(meta))

    def adjust(self, items: list) -> list[tuple]:
        target, amount = items
        pos = self._at(target)
        # A mapping gives the button's value -> its step; a number, the step of a plain button.
        steps = {str(k): v for k, v in amount[0]} if isinstance(amount, tuple) else {"": amount}
        return [("adjusts", str(target), pos), ("adjust_by", steps, pos)]

    def prop_error(self, items: list[Token]) -> tuple:
        return ("error", regex_token(items[0], self.path), self._at(items[0]))

    @v_args(meta=True)
    def initial(self, meta: Any, items: list) -> tuple:
        return ("initial", items[0], self._meta_at(meta))

    def python_hook(self, items: list[Token]) -> tuple:
        return (f"python:{items[0]}", unquote(items[1], self.path), self._at(items[1]))

    def property(self, items: list) -> Property:
        name, value_type, *statements = items
        prop = Property(str(name), value_type, self._at(name))
        self._apply(prop, _flatten(statements), f"property '{name}'")
        return prop

    # modes ----------------------------------------------------------------------------------------
    @v_args(meta=True)
    def trigger_set(self, meta: Any, items: list) -> ModeTrigger:
        return ModeTrigger("set", self._meta_at(meta), prop=str(items[0]), value=items[1])

    @v_args(meta=True)
    def trigger_after(self, meta: Any, items: list[Token]) -> ModeTrigger:
        return ModeTrigger("after", self._meta_at(meta), seconds=seconds(items[0], self.path))

    @v_args(meta=True)
    def trigger_when(self, meta: Any, items: list[Comparison]) -> ModeTrigger:
        c = items[0]
        return ModeTrigger("when", self._meta_at(meta), prop=c.prop, op=c.op, value=c.value)

    def mode_transition(self, items: list) -> ModeTransition:
        source, dest, *triggers = items
        return ModeTransition(str(source), str(dest), triggers, self._at(source))

    @v_args(meta=True)
    def mode_hold(self, meta: Any, items: list) -> ModeHold:
        return self._hold("hold", meta, items)

    @v_args(meta=True)
    def mode_reject(self, meta: Any, items: list) -> ModeHold:
        return self._hold("reject", meta, items)

    def names(self, items: list[Token]) -> list[str]:
        return [str(i) for i in items]

    def reject_answer(self, items: list[Token]) -> tuple:
        return ("answer", unquote(items[0], self.path))

    def _hold(self, action: str, meta: Any, items: list) -> ModeHold:
        props, modes, *rest = items
        answer = next((item[1] for item in rest if isinstance(item, tuple)), None)
        reason = [item for item in rest if not isinstance(item, tuple)]
        text = unquote(reason[0], self.path) if reason else None
        return ModeHold(action, props, modes, self._meta_at(meta), text, answer)

    def modes(self, items: list) -> tuple:
        source, *statements = items
        modes = Modes(str(source), self._at(source))
        for statement in statements:
            if isinstance(statement, ModeTransition):
                modes.transitions.append(statement)
            else:
                modes.holds.append(statement)
        return ("modes", modes, self._at(source))

    # devices --------------------------------------------------------------------------------------
    def device(self, items: list) -> Device:
        name, *rest = items
        device = Device(str(name), self._at(name))
        statements = []
        for item in _flatten(rest):
            if isinstance(item, Token) and item.type == "STRING":
                device.description = unquote(item, self.path)
            elif isinstance(item, tuple) and item[0] == "params":
                device.params = item[1]
            elif isinstance(item, Property):
                if item.name in device.properties:
                    raise self._error(item.pos, f"property '{item.name}' is declared twice")
                device.properties[item.name] = item
            elif isinstance(item, GroupQuery):
                if item.name in device.groups:
                    raise self._error(item.pos, f"query '{item.name}' is declared twice")
                device.groups[item.name] = item
            else:
                statements.append(item)
        renamed = [("ack_reply", *s[1:]) if s[0] == "ack" else s for s in statements]
        self._apply(device, renamed, f"device '{name}'")
        return device

    def _apply(self, target: Device | Property, statements: list[tuple], owner: str) -> None:
        for key, value, pos in statements:
            if key in target.positions:
                raise self._error(pos, f"'{key.split(':')[0]}' is given twice in {owner}")
            target.positions[key] = pos
            if key.startswith("python:"):
                target.python[key.split(":", 1)[1]] = value
            elif not hasattr(target, key):
                raise self._error(pos, f"'{key}' does not belong in {owner}")
            else:
                setattr(target, key, value)

    # things ---------------------------------------------------------------------------------------
    def arg(self, items: list) -> tuple:
        return (str(items[0]), items[1])

    def args(self, items: list) -> tuple:
        return ("args", dict(items))

    def endpoint(self, items: list[Token]) -> Endpoint:
        return Endpoint(str(items[0]), unquote(items[1], self.path), self._at(items[1]))

    def port_ref(self, items: list[Token]) -> tuple:
        return ("port", str(items[0]), self._at(items[0]))

    def port_decl(self, items: list) -> tuple:
        return ("port_decl", str(items[0]), items[1], self._at(items[0]))

    def component(self, items: list) -> Component:
        name, device_name, *rest = items
        args = rest[0][1] if len(rest) == 2 else {}
        where = rest[-1]
        component = Component(
            str(name),
            str(device_name),
            self._at(name),
            args=args,
            positions={"device": self._at(device_name)},
        )
        if isinstance(where, Endpoint):
            component.endpoint_kind, component.endpoint = where.kind, where.address
            component.positions["endpoint"] = where.pos
        else:
            component.port = where[1]
            component.positions["endpoint"] = where[2]
        return component

    def shadow_path(self, items: list[Token]) -> list[str]:
        return [str(i) for i in items]

    def shadow_rename(self, items: list) -> ShadowName:
        return ShadowName(str(items[0]), str(items[1]), items[2], self._at(items[0]))

    def shadow_nest(self, items: list) -> ShadowName:
        return ShadowName(str(items[0]), "*", items[1], self._at(items[0]))

    def shadow_block(self, items: list[ShadowName]) -> tuple:
        return ("shadow", items)

    def rule_action(self, items: list) -> RuleAction:
        return RuleAction(str(items[0]), str(items[1]), items[2], self._at(items[0]))

    def rule(self, items: list) -> Rule:
        component, prop, value, *actions = items
        return Rule(str(component), str(prop), value, actions, self._at(component))

    def rule_block(self, items: list[Rule]) -> tuple:
        return ("rules", items)

    def thing(self, items: list) -> Thing:
        name, *statements = items
        thing = Thing(str(name), self._at(name))
        for item in statements:
            if isinstance(item, Component):
                if item.name in thing.components:
                    raise self._error(item.pos, f"component '{item.name}' is declared twice")
                thing.components[item.name] = item
            elif item[0] == "port_decl":
                if item[1] in thing.ports:
                    raise self._error(item[3], f"port '{item[1]}' is declared twice")
                thing.ports[item[1]] = item[2]
            elif item[0] == "shadow":
                thing.shadow.extend(item[1])
            else:
                thing.rules.extend(item[1])
        return thing

    def import_file(self, items: list[Token]) -> Import:
        return Import(unquote(items[0], self.path), self._at(items[0]))

    def start(self, items: list) -> IotFile:
        model = IotFile(self.path)
        for item in items:
            if isinstance(item, Import):
                model.imports.append(item)
                continue
            table = model.devices if isinstance(item, Device) else model.things
            kind = "device" if isinstance(item, Device) else "thing"
            if item.name in table:
                raise self._error(item.pos, f"{kind} '{item.name}' is declared twice")
            table[item.name] = item
        return model


def _flatten(items: list) -> list:
    """Rules that yield several statements return lists; splice them in."""
    flat = []
    for item in items:
        if isinstance(item, list) and item and isinstance(item[0], tuple):
            flat.extend(item)
        else:
            flat.append(item)
    return flat


def _wire(value: Any) -> str:
    return value if isinstance(value, str) else str(value)
