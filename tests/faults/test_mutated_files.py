"""1,000 mutated `.iot` files (150 by default) through the command line: no traceback.

Each mutant is one of the files in devices/ with tokens dropped, repeated, swapped for other
tokens or keywords, lines swapped or cut, numbers pushed to extremes, and characters changed.
`pyiot compile`, `pyiot compile -o driver.py` and `pyiot graph` run on it in-process through
`pyiot.cli.main` (exit 0, or 1 with a message; never an exception), the generated driver must
be valid Python, and each simulated device of a file that compiles answers its own queries
and sets. A few mutants also run as real `pyiot compile` processes, whose output must not
hold a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import random
import re
import subprocess
import sys
from pathlib import Path

from pyiot.cli import main
from pyiot.compiler import compile_file
from pyiot.lang.model import Property
from pyiot.lang.values import BadValue
from pyiot.runtime.framing import PROMPT, framer_for
from pyiot.runtime.protocol import DeviceProtocol
from pyiot.sim import simulator_for
from tests.faults.conftest import ROOT, TIMEOUT, figure, size

pytestmark = TIMEOUT

MUTANTS = size(1000, 200)
AS_PROCESSES = size(50, 8)

SOURCES = {
    path.stem: path.read_text(encoding="utf-8") for path in sorted(ROOT.glob("devices/*.iot"))
}
_LEXEME = re.compile(r'\s+|#[^\n]*|"(?:\\.|[^"\\\n])*"|/(?:\\.|[^/\\\n])+/[imsx]*|\w+|.', re.S)
TOKENS = {name: _LEXEME.findall(text) for name, text in SOURCES.items()}
POOL = sorted({t for tokens in TOKENS.values() for t in tokens if not t.isspace()})
EXTREMES = ["0", "-1", "99999999999999999999", "1e309", "0ms", "0s", "999999h", "1..0", "0..0"]
NOISE = list('{}()[]:,=./\\"#-?<>*+|^$!;@%&~` \t\n\r0123456789aZ_é€\x00\x7f\ufeff')


def kind_of(token: str) -> str:
    """A token's kind, so a mild mutation can put another of the same kind in its place."""
    if token.startswith('"'):
        return "string"
    if token.startswith("/") and len(token) > 1:
        return "regex"
    if re.fullmatch(r"\d+(ms|s|h)?", token):
        return "number"
    if re.fullmatch(r"\w+", token):
        return "word"
    return "other"


BY_KIND: dict[str, list[str]] = {}
for _token in POOL + EXTREMES:
    BY_KIND.setdefault(kind_of(_token), []).append(_token)


def mild(rng: random.Random, tokens: list[str]) -> list[str]:
    """One to three tokens swapped for others of their kind: the syntax mostly holds, the
    meaning does not (a regex of another device, a zero timeout, a keyword as a name)."""
    for _ in range(rng.randint(1, 3)):
        index = rng.randrange(len(tokens))
        kind = kind_of(tokens[index])
        if kind != "other":
            tokens[index] = rng.choice(BY_KIND[kind])
    return tokens


def mutate(rng: random.Random, name: str) -> str:
    tokens = list(TOKENS[name])
    if rng.random() < 0.5:
        return "".join(mild(rng, tokens))
    for _ in range(rng.randint(1, 6)):
        index = rng.randrange(len(tokens))
        action = rng.choice(["drop", "repeat", "replace", "insert", "extreme", "swap"])
        if action == "drop":
            del tokens[index]
        elif action == "repeat":
            tokens.insert(index, tokens[index])
        elif action == "replace":
            tokens[index] = rng.choice(POOL)
        elif action == "insert":
            tokens.insert(index, f" {rng.choice(POOL)} ")
        elif action == "extreme":
            numbers = [i for i, t in enumerate(tokens) if re.fullmatch(r"\d+(ms|s)?", t)]
            if numbers:
                tokens[rng.choice(numbers)] = rng.choice(EXTREMES)
        else:
            other = rng.randrange(len(tokens))
            tokens[index], tokens[other] = tokens[other], tokens[index]
    text = "".join(tokens)
    lines = text.split("\n")
    if rng.random() < 0.2:  # whole lines moved or the file cut short
        a, b = rng.randrange(len(lines)), rng.randrange(len(lines))
        lines[a], lines[b] = lines[b], lines[a]
    if rng.random() < 0.1:
        lines = lines[: rng.randrange(1, len(lines) + 1)]
    text = "\n".join(lines)
    for _ in range(rng.randint(0, 3)):
        index = rng.randrange(max(len(text), 1))
        text = text[:index] + rng.choice(NOISE) + text[index + rng.randint(0, 1) :]
    return text


def run_cli(*args: str) -> tuple[int, str]:
    """`pyiot ARGS` in this process: (exit code, stdout + stderr); an exception is a traceback."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        code = main(list(args))
    return code, out.getvalue()


def some_value(prop: Property) -> object:
    kind = prop.type.kind
    if kind == "bool":
        return True
    if kind == "enum":
        return next(iter(prop.type.choices))
    if kind in ("int", "float"):
        return prop.type.minimum if prop.type.minimum is not None else 0
    return "x"


async def exercise_protocol(path: Path) -> None:
    """Each component's protocol against its simulated device, without I/O: every query and
    a set of every writable property, the replies framed and read as the engine would."""
    program = compile_file(path)
    for thing in program.model.things.values():
        for comp in thing.components.values():
            sim = simulator_for(program.model, comp.name)
            device = program.model.devices[comp.device]
            protocol = DeviceProtocol(device, comp.args)
            framer = framer_for(device)
            requests = [protocol.read_request(t) for t in protocol.readable_targets()]
            for prop in device.properties.values():
                if prop.writable:
                    with contextlib.suppress(BadValue):
                        requests.append(protocol.set_request(prop.name, some_value(prop)))
            for request in requests:
                for frame in framer.feed(sim.respond(request.text)):
                    if frame is not PROMPT:
                        protocol.answers(request, frame) or protocol.unsolicited(frame)


def test_mutated_files_never_give_a_traceback(tmp_path) -> None:
    rng = random.Random(23)
    outcomes = {"ok": 0, "error": 0}
    failures: list[str] = []
    for number in range(MUTANTS):
        name = rng.choice(sorted(SOURCES))
        text = mutate(rng, name)
        path = tmp_path / f"{name}-{number}.iot"
        path.write_text(text, encoding="utf-8")
        try:
            code, output = run_cli("compile", str(path))
            assert code in (0, 1), f"exit {code}"
            if code == 1:
                assert f"{path}:" in output, f"an error that names no place: {output!r}"
                outcomes["error"] += 1
                continue
            outcomes["ok"] += 1
            driver = tmp_path / f"driver_{number}.py"
            assert run_cli("compile", str(path), "-o", str(driver))[0] == 0
            compile(driver.read_text(encoding="utf-8"), str(driver), "exec")
            code, output = run_cli("graph", str(path))
            assert code == 0, output
            asyncio.run(exercise_protocol(path))
        except (Exception, SystemExit) as err:
            kept = tmp_path.parent / f"failing-{path.name}"
            kept.write_text(text, encoding="utf-8")
            failures.append(f"{kept}: {type(err).__name__}: {err}")
    figure(
        f"mutated files: {MUTANTS} mutants of devices/*.iot: {outcomes['ok']} compile, "
        f"{outcomes['error']} rejected with a positioned error, {len(failures)} tracebacks"
    )
    assert not failures, "\n".join(failures[:10])


def test_mutated_files_as_processes_print_no_traceback(tmp_path) -> None:
    rng = random.Random(29)
    for number in range(AS_PROCESSES):
        name = rng.choice(sorted(SOURCES))
        path = tmp_path / f"{name}-{number}.iot"
        path.write_text(mutate(rng, name), encoding="utf-8")
        done = subprocess.run(
            [sys.executable, "-m", "pyiot", "compile", str(path)],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=ROOT,
        )
        assert done.returncode in (0, 1), done.stderr
        assert "Traceback" not in done.stdout + done.stderr, done.stderr
        if done.returncode:
            assert done.stderr.startswith(f"{path}:"), done.stderr


CONSTANT_SET = r"""
device Lamp "a lamp whose set command carries no value" {
    transport serial { baud 9600 }
    framing line "\n"
    timeout 500ms
    property power: bool {
        query "P?"
        reply /^P(?P<value>ON|OFF)$/
        set   "PTOGGLE"
        map   { ON = true, OFF = false }
    }
}
thing lamp { component lamp1: Lamp on serial "/dev/null" }
"""


def test_set_without_value_is_answered_by_the_simulator(tmp_path) -> None:
    path = tmp_path / "lamp.iot"
    path.write_text(CONSTANT_SET, encoding="utf-8")
    assert run_cli("compile", str(path))[0] == 0
    sim = simulator_for(compile_file(path).model)
    assert sim.respond("P?") == b"POFF\n"
    sim.respond("PTOGGLE")  # the device's answer, or its error reply: never an exception
