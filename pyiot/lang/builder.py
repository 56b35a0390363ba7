"""Lark parse tree -> model: one method per grammar rule, bottom-up.

Body statements come back typed (`statements.TIMEOUT.at(seconds, pos)`, see
`pyiot/lang/statements.py`) and are applied to their device or property in one place, `_apply`.
A duplicate (two `timeout`s, a property declared twice) is a positioned diagnostic in
`problems`; the first one stays, so the rest of the file is still built and checked. Mistakes
that leave nothing to build with (a bad string escape) raise `BuildError`.
"""

from __future__ import annotations

from typing import Any

from lark import Token, Transformer, v_args

from pyiot.lang import limits
from pyiot.lang import statements as S
from pyiot.lang.build_values import (
    BuildError,
    ValueRules,
    count_at,
    regex_token,
    seconds,
    token_pos,
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
    ErrorQueue,
    GroupQuery,
    Import,
    IotFile,
    JointSet,
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
    Value,
)
from pyiot.lang.statements import Statement


class ModelBuilder(ValueRules, Transformer):
    """Bottom-up: each rule returns a typed statement, a small record or a model object."""

    def __init__(self, path: str):
        super().__init__()
        self.path = path
        #: Duplicates found while building; the first of each stays in the model.
        self.problems: list[Diagnostic] = []

    def _at(self, item: Token | Any) -> SourcePos:
        return token_pos(item, self.path)

    def _meta_at(self, meta: Any) -> SourcePos:
        return SourcePos(self.path, meta.line, meta.column)

    def _error(self, pos: SourcePos, message: str) -> BuildError:
        return BuildError(Diagnostic(pos, message))

    def _problem(self, pos: SourcePos, message: str) -> None:
        self.problems.append(Diagnostic(pos, message))

    # device statements ----------------------------------------------------------------------------
    @v_args(meta=True)
    def param(self, meta: Any, items: list) -> Param:
        return Param(str(items[0]), items[1], self._meta_at(meta))

    def params(self, items: list[Param]) -> S.Params:
        return S.Params(items)

    def setting(self, items: list) -> tuple[str, Value]:
        return (str(items[0]), items[1])

    def transport(self, items: list) -> Statement[Transport]:
        return S.TRANSPORT.at(Transport(str(items[0]), dict(items[1:])), self._at(items[0]))

    def prompt(self, items: list[Token]) -> Statement[str]:
        return S.PROMPT.at(unquote(items[0], self.path), self._at(items[0]))

    @v_args(meta=True)
    def echo(self, meta: Any, items: list) -> Statement[bool]:
        return S.ECHO.at(True, self._meta_at(meta))

    @v_args(meta=True)
    def any_case(self, meta: Any, items: list) -> Statement[bool]:
        return S.ANY_CASE.at(True, self._meta_at(meta))

    def framing(self, items: list) -> list[Statement]:
        terminator = items[0]
        line = S.LINE_FRAMING.at(unquote(terminator, self.path), self._at(terminator))
        return [line, *items[1:]]

    def packet_framing(self, items: list) -> list[Statement]:
        template = items[0]
        packet = S.PACKET_FRAMING.at(unquote(template, self.path), self._at(template))
        return [packet, *items[1:]]

    def packet_end(self, items: list[Token]) -> Statement[str]:
        return S.PACKET_END.at(unquote(items[0], self.path), self._at(items[0]))

    def packet_reply_end(self, items: list[Token]) -> Statement[str]:
        return S.PACKET_REPLY_END.at(unquote(items[0], self.path), self._at(items[0]))

    def packet_reply(self, items: list[Token]) -> Statement[str]:
        return S.PACKET_REPLY.at(unquote(items[0], self.path), self._at(items[0]))

    def line_counted(self, items: list[Token]) -> Statement[Regex]:
        return S.LINE_COUNTED.at(regex_token(items[0], self.path), self._at(items[0]))

    def line_before(self, items: list[Token]) -> Statement[str]:
        return S.LINE_BEFORE.at(unquote(items[0], self.path), self._at(items[0]))

    def reply_terminators(self, items: list[Token]) -> Statement[list[str]]:
        texts = [unquote(item, self.path) for item in items]
        return S.REPLY_TERMINATORS.at(texts, self._at(items[0]))

    def command_terminators(self, items: list[Token]) -> Statement[list[str]]:
        texts = [unquote(item, self.path) for item in items]
        return S.COMMAND_TERMINATORS.at(texts, self._at(items[0]))

    def timeout(self, items: list[Token]) -> Statement[float]:
        return S.TIMEOUT.at(seconds(items[0], self.path), self._at(items[0]))

    def retries(self, items: list[Token]) -> Statement[int]:
        retries = count_at(items[0], self.path, "retries", limits.MAX_RETRIES)
        return S.RETRIES.at(retries, self._at(items[0]))

    def backoff(self, items: list[Token]) -> Statement[float]:
        return S.BACKOFF.at(seconds(items[0], self.path), self._at(items[0]))

    def poll(self, items: list) -> list[Statement]:
        statements: list[Statement] = [
            S.POLL_EVERY.at(seconds(items[0], self.path), self._at(items[0]))
        ]
        if len(items) > 1:
            statements.append(S.POLL_WHEN.at(items[1], items[1].comparisons[0].pos))
        return statements

    def error_reply(self, items: list[Token]) -> Statement[Regex]:
        return S.ERROR_REPLY.at(regex_token(items[0], self.path), self._at(items[0]))

    def ack_reply(self, items: list[Token]) -> Statement[Regex]:
        return S.ACK.at(regex_token(items[0], self.path), self._at(items[0]))

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
    def query(self, items: list[Token]) -> Statement[str]:
        return S.QUERY.at(unquote(items[0], self.path), self._at(items[0]))

    def reply(self, items: list) -> list[Statement]:
        statements: list[Statement] = [
            S.REPLY.at(regex_token(items[0], self.path), self._at(items[0]))
        ]
        then = [item for item in items[1:] if isinstance(item, Regex)]
        if then:
            statements.append(S.REPLY_THEN.at(then, self._at(items[0])))
        return statements + [item for item in items[1:] if isinstance(item, Statement)]

    @v_args(meta=True)
    def reply_only(self, meta: Any, items: list) -> Statement[bool]:
        return S.REPLY_ONLY.at(True, self._meta_at(meta))

    def reply_then(self, items: list[Token]) -> Regex:
        return regex_token(items[0], self.path)

    def connect_send(self, items: list[Token]) -> Statement[list[str]]:
        texts = [unquote(item, self.path) for item in items]
        return S.CONNECT_SEND.at(texts, self._at(items[0]))

    def greeting(self, items: list[Token]) -> Statement[str]:
        return S.GREETING.at(unquote(items[0], self.path), self._at(items[0]))

    def joint_set(self, items: list[Token]) -> JointSet:
        text, *names = items
        return JointSet([str(n) for n in names], unquote(text, self.path), self._at(text))

    def login(self, items: list[Token]) -> Statement[Login]:
        digest, fmt, greeting, *refused = items
        login = Login(
            str(digest),
            unquote(fmt, self.path),
            regex_token(greeting, self.path),
            unquote(refused[0], self.path) if refused else None,
        )
        return S.LOGIN.at(login, self._at(digest))

    def error_queue(self, items: list[Token]) -> Statement[ErrorQueue]:
        texts = [unquote(item, self.path) for item in items]
        texts += [""] * (4 - len(texts))
        return S.ERROR_QUEUE.at(ErrorQueue(*texts), self._at(items[0]))

    def set_timeout(self, items: list[Token]) -> Statement[float]:
        return S.SET_TIMEOUT.at(seconds(items[0], self.path), self._at(items[0]))

    def reply_end(self, items: list[Token]) -> Statement[str]:
        return S.REPLY_END.at(unquote(items[0], self.path), self._at(items[0]))

    def set_answered(self, items: list[Token]) -> Statement[float | str]:
        item = items[0]
        after = seconds(item, self.path) if item.type == "DURATION" else str(item)
        return S.SET_ANSWERED.at(after, self._at(item))

    def reply_format(self, items: list[Token]) -> Statement[str]:
        return S.REPLY_FORMAT.at(unquote(items[0], self.path), self._at(items[0]))

    def set_command(self, items: list) -> list[Statement]:
        statements: list[Statement] = [S.SET.at(unquote(items[0], self.path), self._at(items[0]))]
        for item in items[1:]:
            if isinstance(item, Statement):
                statements.append(item)  # `without reply`
            else:
                wires = [(k, _wire(v)) for k, v in item.entries]
                statements.append(S.SET_MAP.at(wires, item.pos))
        return statements

    @v_args(meta=True)
    def unanswered(self, meta: Any, items: list) -> Statement[bool]:
        return S.SET_UNANSWERED.at(True, self._meta_at(meta))

    inline_set = set_command

    @v_args(meta=True)
    def set_map(self, meta: Any, items: list[S.MapLiteral]) -> S.MapLiteral:
        return S.MapLiteral(items[0].entries, self._meta_at(meta))

    @v_args(meta=True)
    def value_map(self, meta: Any, items: list[S.MapLiteral]) -> Statement[dict[str, Value]]:
        values = {str(k): v for k, v in items[0].entries}
        return S.VALUE_MAP.at(values, self._meta_at(meta))

    @v_args(meta=True)
    def mapping(self, meta: Any, items: list) -> S.MapLiteral:
        return S.MapLiteral(items, self._meta_at(meta))

    def map_entry(self, items: list) -> tuple[Value, Value]:
        key = items[0]
        if isinstance(key, Token):
            if key.type == "STRING":
                key = unquote(key, self.path)
            elif key.type == "BOOL":
                key = str(key) == "true"
            else:
                key = str(key)
        return (key, items[1])

    def source(self, items: list[Token]) -> list[Statement]:
        return [
            S.GROUP.at(str(items[0]), self._at(items[0])),
            S.GROUP_FIELD.at(str(items[1]), self._at(items[1])),
        ]

    @v_args(meta=True)
    def confirm(self, meta: Any, items: list) -> Statement[bool]:
        return S.CONFIRM.at(True, self._meta_at(meta))

    def access(self, items: list[Token]) -> Statement[str]:
        return S.ACCESS.at(str(items[0]), self._at(items[0]))

    def unit(self, items: list[Token]) -> Statement[str]:
        return S.UNIT.at(unquote(items[0], self.path), self._at(items[0]))

    @v_args(meta=True)
    def convert(self, meta: Any, items: list) -> Statement[Convert]:
        return S.CONVERT.at(Convert(items[0], items[1]), self._meta_at(meta))

    def adjust(self, items: list) -> list[Statement]:
        target, amount = items
        pos = self._at(target)
        # A mapping gives the button's value -> its step; a number, the step of a plain button.
        # A step that is no number is the checks' to report (check.py), with its position.
        steps: dict[str, Value] = {"": amount}
        if isinstance(amount, S.MapLiteral):
            steps = {str(k): v for k, v in amount.entries}
        return [S.ADJUSTS.at(str(target), pos), S.ADJUST_BY.at(steps, pos)]

    def prop_error(self, items: list[Token]) -> Statement[Regex]:
        return S.PROP_ERROR.at(regex_token(items[0], self.path), self._at(items[0]))

    @v_args(meta=True)
    def initial(self, meta: Any, items: list) -> Statement[Value]:
        return S.INITIAL.at(items[0], self._meta_at(meta))

    def python_hook(self, items: list[Token]) -> Statement[str]:
        return S.hook(str(items[0])).at(unquote(items[1], self.path), self._at(items[1]))

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

    def reject_answer(self, items: list[Token]) -> S.Answer:
        return S.Answer(unquote(items[0], self.path))

    def _hold(self, action: str, meta: Any, items: list) -> ModeHold:
        props, modes, *rest = items
        answer = next((item.text for item in rest if isinstance(item, S.Answer)), None)
        reason = [item for item in rest if not isinstance(item, S.Answer)]
        text = unquote(reason[0], self.path) if reason else None
        return ModeHold(action, props, modes, self._meta_at(meta), text, answer)

    def modes(self, items: list) -> Statement[Modes]:
        source, *statements = items
        modes = Modes(str(source), self._at(source))
        for statement in statements:
            if isinstance(statement, ModeTransition):
                modes.transitions.append(statement)
            else:
                modes.holds.append(statement)
        return S.MODES.at(modes, self._at(source))

    # devices --------------------------------------------------------------------------------------
    def device(self, items: list) -> Device:
        name, *rest = items
        device = Device(str(name), self._at(name))
        statements = []
        for item in _flatten(rest):
            if isinstance(item, Token) and item.type == "STRING":
                device.description = unquote(item, self.path)
            elif isinstance(item, S.Params):
                device.params = item.params
            elif isinstance(item, Property):
                if item.name in device.properties:
                    self._twice(item.pos, f"property '{item.name}'", device.properties[item.name])
                else:
                    device.properties[item.name] = item
            elif isinstance(item, GroupQuery):
                if item.name in device.groups:
                    self._twice(item.pos, f"query '{item.name}'", device.groups[item.name])
                else:
                    device.groups[item.name] = item
            elif isinstance(item, JointSet):
                device.joint_sets.append(item)
            else:
                statements.append(item)
        self._apply(device, statements, f"device '{name}'")
        for joint in device.joint_sets:
            for prop_name in joint.props:
                prop = device.properties.get(prop_name)
                if prop is None:
                    self._problem(joint.pos, f"command sets '{prop_name}', no property of {name}")
                else:
                    prop.joint.append(joint.name)
        return device

    def _apply(self, target: Device | Property, statements: list[Statement], owner: str) -> None:
        """Fill `target` from its body; a second statement of a kind is a problem, not applied."""
        for statement in statements:
            kind = statement.kind
            key = kind.key(target)
            if key is None:
                self._problem(statement.pos, f"'{kind.keyword}' does not belong in {owner}")
            elif key in target.positions:
                first = target.positions[key]
                self._problem(
                    statement.pos,
                    f"'{kind.keyword}' is given twice in {owner} (first at line {first.line})",
                )
            else:
                target.positions[key] = statement.pos
                kind.fill(target, statement.value)

    def _twice(self, pos: SourcePos, what: str, first: Any) -> None:
        self._problem(pos, f"{what} is declared twice (first at line {first.pos.line})")

    # things ---------------------------------------------------------------------------------------
    def arg(self, items: list) -> tuple[str, Value]:
        return (str(items[0]), items[1])

    def args(self, items: list[tuple[str, Value]]) -> S.Args:
        return S.Args(dict(items))

    def endpoint(self, items: list[Token]) -> Endpoint:
        return Endpoint(str(items[0]), unquote(items[1], self.path), self._at(items[1]))

    def port_ref(self, items: list[Token]) -> S.PortRef:
        return S.PortRef(str(items[0]), self._at(items[0]))

    def port_decl(self, items: list) -> S.PortDecl:
        return S.PortDecl(str(items[0]), items[1], self._at(items[0]))

    def component(self, items: list) -> Component:
        name, device_name, *rest = items
        args = rest[0].values if isinstance(rest[0], S.Args) else {}
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
            component.port = where.name
            component.positions["endpoint"] = where.pos
        return component

    def shadow_path(self, items: list[Token]) -> list[str]:
        return [str(i) for i in items]

    def shadow_rename(self, items: list) -> ShadowName:
        return ShadowName(str(items[0]), str(items[1]), items[2], self._at(items[0]))

    def shadow_nest(self, items: list) -> ShadowName:
        return ShadowName(str(items[0]), "*", items[1], self._at(items[0]))

    def shadow_block(self, items: list[ShadowName]) -> S.ShadowBlock:
        return S.ShadowBlock(items)

    def rule_action(self, items: list) -> RuleAction:
        return RuleAction(str(items[0]), str(items[1]), items[2], self._at(items[0]))

    def rule(self, items: list) -> Rule:
        component, prop, value, *actions = items
        return Rule(str(component), str(prop), value, actions, self._at(component))

    def rule_block(self, items: list[Rule]) -> S.RuleBlock:
        return S.RuleBlock(items)

    def thing(self, items: list) -> Thing:
        name, *statements = items
        thing = Thing(str(name), self._at(name))
        for item in statements:
            if isinstance(item, Component):
                if item.name in thing.components:
                    self._twice(item.pos, f"component '{item.name}'", thing.components[item.name])
                else:
                    thing.components[item.name] = item
            elif isinstance(item, S.PortDecl):
                if item.name in thing.ports:
                    first = thing.ports[item.name]
                    self._twice(item.pos, f"port '{item.name}'", first)
                else:
                    thing.ports[item.name] = item.endpoint
            elif isinstance(item, S.ShadowBlock):
                thing.shadow.extend(item.names)
            else:
                thing.rules.extend(item.rules)
        return thing

    def import_file(self, items: list[Token]) -> Import:
        return Import(unquote(items[0], self.path), self._at(items[0]))

    def start(self, items: list) -> IotFile:
        model = IotFile(self.path)
        for item in items:
            if isinstance(item, Import):
                model.imports.append(item)
                continue
            table: dict[str, Any] = model.devices if isinstance(item, Device) else model.things
            kind = "device" if isinstance(item, Device) else "thing"
            if item.name in table:
                self._twice(item.pos, f"{kind} '{item.name}'", table[item.name])
            else:
                table[item.name] = item
        return model


def _flatten(items: list) -> list:
    """Rules that yield several statements return lists; splice them in."""
    flat = []
    for item in items:
        if isinstance(item, list) and item and isinstance(item[0], Statement):
            flat.extend(item)
        else:
            flat.append(item)
    return flat


def _wire(value: Any) -> str:
    return value if isinstance(value, str) else str(value)
