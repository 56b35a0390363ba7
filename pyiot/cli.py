"""The `pyiot` command line: compile, graph, simulate, broker, run, shadow.

Heavy imports (awscrt, transitions, paho) happen inside the commands that need them, so
`pyiot compile` stays quick. Expected failures print one line (or positioned diagnostics) and
exit non-zero; a traceback is a bug.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from pyiot import __version__
from pyiot.errors import PyiotError

_LOGGER = logging.getLogger("pyiot")

DEFAULT_BROKER_PORT = 1883


class UsageError(PyiotError):
    """A mistake on the command line or in the environment; the message says what to do."""

    what = "bad command line"


class _StopSignals:
    """SIGINT and SIGTERM as a request to stop, from the moment pyiot starts.

    Installed first thing, so a signal during start-up never kills pyiot half-way (leaving a
    broker behind): a command that runs until stopped (run, broker, simulate, shadow watch) notes
    the request, finishes or skips the rest of its start-up, and stops in order, exit 0. A
    second Ctrl-C gives up waiting (exit 130). Other commands stop at once.
    """

    def __init__(self) -> None:
        self.requested = False
        self.deferred = False  # the command stops itself when it sees `requested`
        self._loop: asyncio.AbstractEventLoop | None = None
        self._event: asyncio.Event | None = None

    def install(self) -> dict[int, Any]:
        """Handle the signals (main thread only); return the handlers to restore after."""
        self.requested = self.deferred = False
        if threading.current_thread() is not threading.main_thread():
            return {}  # main() called from a thread (tests): signals stay where they were
        return {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}

    def restore(self, previous: dict[int, Any]) -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    def _on_signal(self, signum: int, frame: Any) -> None:
        if not self.deferred:
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            raise SystemExit(0)
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True
        loop, event = self._loop, self._event
        if loop is not None and event is not None:
            with contextlib.suppress(RuntimeError):  # the loop has closed meanwhile
                loop.call_soon_threadsafe(event.set)

    async def wait(self) -> None:
        """Return once a stop was requested (at once if it already was)."""
        self._loop, self._event = asyncio.get_running_loop(), asyncio.Event()
        try:
            if not self.requested:
                await self._event.wait()
        finally:
            self._loop = self._event = None


_STOP = _StopSignals()


_NO_AWS_LIMITS_HELP = (
    "let the local stack take what AWS IoT Core refuses (by default it enforces AWS's quotas: "
    "50 subscriptions and 100 $aws publishes/s per connection, 8 filters per SUBSCRIBE, topic "
    "size and depth, 20 shadow requests/s and 10 in flight per thing; so what passes here "
    "passes on AWS)"
)

def main(argv: list[str] | None = None) -> int:
    previous = _STOP.install()
    try:
        return _main(argv)
    finally:
        _STOP.restore(previous)


def _main(argv: list[str] | None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    _setup_logging(args.verbose)
    from pyiot.lang import IotError

    # Commands that run until stopped handle a stop request themselves, in order.
    _STOP.deferred = args.func in (cmd_run, cmd_broker, cmd_simulate) or (
        args.func is cmd_shadow and getattr(args, "action", None) == "watch"
    )
    try:
        return args.func(args) or 0
    except IotError as err:
        print(err.render(), file=sys.stderr)
        count = len(err.diagnostics)
        print(f"{count} error{'s' if count != 1 else ''}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except (UsageError, LookupError, ConnectionError, OSError, RuntimeError, ValueError) as err:
        print(f"pyiot: error: {err}", file=sys.stderr)
        return 1


def _setup_logging(verbose: int) -> None:
    level = logging.DEBUG if verbose > 1 else logging.INFO if verbose else logging.WARNING
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    # transitions logs every state change at INFO: useful only when debugging pyiot itself.
    logging.getLogger("transitions").setLevel(logging.DEBUG if verbose > 2 else logging.WARNING)


def _out(text: str) -> None:
    print(text, flush=True)


# ------------------------------------------------------------------------------------- compile
def cmd_compile(args: argparse.Namespace) -> int:
    from pyiot.compiler import compile_file
    from pyiot.compiler.codegen import driver_source

    program = compile_file(args.file)
    model = program.model
    if args.json:
        _out(json.dumps(model.to_data(), indent=2))
        return 0
    _out(f"{args.file}: OK")
    for device in model.devices.values():
        props = ", ".join(
            f"{p.name}: {p.type.describe()}{'' if p.writable else ' (read-only)'}"
            for p in device.properties.values()
        )
        _out(f"  device {device.name}: {len(device.properties)} properties ({props})")
        if device.groups:
            _out(f"    queries: {', '.join(device.groups)}")
        if device.modes is not None:
            _out(f"    modes from {device.modes.source}: {', '.join(device.modes.names)}")
    for thing in model.things.values():
        comps = ", ".join(
            f"{c.name}: {c.device} on {c.endpoint_kind} {c.endpoint}"
            for c in thing.components.values()
        )
        _out(f"  thing {thing.name}: {comps}")
    if args.output:
        out = Path(args.output)
        out.write_text(driver_source(program, out.name), encoding="utf-8")
        _out(f"wrote driver {out}")
    return 0


# --------------------------------------------------------------------------------------- graph
def cmd_graph(args: argparse.Namespace) -> int:
    from pyiot.compiler import compile_file
    from pyiot.compiler.graph import GraphvizMissing, as_data, render

    program = compile_file(args.file)
    model = program.model
    instances = {c.name: c for t in model.things.values() for c in t.components.values()}
    components = {name: c.device for name, c in instances.items()} or {
        name: name for name in model.devices
    }
    if args.component:
        if args.component not in components:
            raise UsageError(f"no component {args.component!r} (known: {', '.join(components)})")
        components = {args.component: components[args.component]}
    if args.format in ("svg", "png") and not args.output:
        raise UsageError(f"--format {args.format} writes a file: give -o FILE")
    if len(components) > 1 and args.format in ("svg", "png"):
        raise UsageError("pick one component with --component for an image")
    if args.format == "json":
        data = {
            name: as_data(program.machines[device], program.modes.get(device))
            for name, device in components.items()
        }
        text = json.dumps(data, indent=2)
        if args.output:
            with open(args.output, "w") as handle:
                handle.write(text + "\n")
            _out(f"wrote {args.output}")
        else:
            _out(text)
        return 0
    outputs = []
    for name, device in components.items():
        modes = program.modes.get(device)
        component_args = instances[name].args if name in instances else {}
        # With modes, the protocol machine folds to one state unless --protocol asks for it.
        fold = modes is not None and not args.protocol
        try:
            outputs.append(
                render(
                    program.machines[device],
                    f"{name} ({device})",
                    args.format,
                    modes,
                    fold,
                    component_args,
                )
            )
        except GraphvizMissing as err:
            raise UsageError(str(err)) from None
    if args.output:
        # Several outputs are text: svg and png take one component (checked above).
        texts = [output for output in outputs if isinstance(output, str)]
        written = outputs[0] if len(outputs) == 1 else "\n".join(texts)
        mode = "wb" if isinstance(written, bytes) else "w"
        with open(args.output, mode) as handle:
            handle.write(written)
        _out(f"wrote {args.output}")
    else:
        _out("\n".join(str(o) for o in outputs))
    return 0


# ------------------------------------------------------------------------------------ simulate
def cmd_simulate(args: argparse.Namespace) -> int:
    from pyiot.compiler import load_program
    from pyiot.sim import simulator_for
    from pyiot.sim.server import device_options

    if args.replay:  # answer from a recorded exchange instead of from the file
        from pyiot.probe import cmd_replay

        return cmd_replay(args, _until_stopped)
    program = load_program(args.file)
    sim = simulator_for(program.model, args.component)

    async def serve() -> None:
        if args.pty:
            url = await sim.serve_pty()
        else:
            listen = args.listen or "tcp://127.0.0.1:0"
            host, port = _host_port(listen, "tcp")
            try:
                url = await sim.serve_tcp(host, port)
            except OSError as err:
                raise UsageError(f"cannot listen on {listen}: {err.strerror or err}") from None
        for device_sim in sim.sims.values():
            device_sim.on_change = _print_sim_change
        names = ", ".join(f"{n} ({s.device.name})" for n, s in sim.sims.items())
        _out(f"simulating {names} on {url}")
        options = " ".join(device_options(program.model, list(sim.sims), url))
        _out(f"connect with: pyiot run {args.file} {options}")
        _out("type COMPONENT.PROPERTY=VALUE (or PROPERTY=VALUE) to change the device itself")
        _watch_stdin(sim)
        await _until_stopped()
        await sim.close()

    asyncio.run(serve())
    return 0


def cmd_probe(args: argparse.Namespace) -> int:
    from pyiot.probe import cmd_probe as probe

    return probe(args)


def _print_sim_change(component: str, prop: str, value: Any) -> None:
    from pyiot.lang.values import render_value

    _out(f"simulator: {component}.{prop} = {render_value(value)}")


def _watch_stdin(sim) -> None:
    """Read `component.prop=value` lines from a terminal or pipe to act on the device's side."""
    if sys.stdin is None or sys.stdin.closed or not sys.stdin.readable():
        return
    loop = asyncio.get_running_loop()
    try:
        fd = sys.stdin.fileno()
    except (OSError, ValueError):
        return

    def readable() -> None:
        line = sys.stdin.readline()
        if not line:
            loop.remove_reader(fd)
            return
        try:
            component, prop, value = _parse_change(line.strip(), sim)
            sim.change(component, prop, value)
        except (ValueError, KeyError) as err:
            _out(f"simulator: {err}")

    with contextlib.suppress(OSError, ValueError, PermissionError):
        loop.add_reader(fd, readable)


def _parse_change(text: str, sim) -> tuple[str, str, Any]:
    if "=" not in text:
        raise ValueError("expected COMPONENT.PROPERTY=VALUE")
    target, _, raw = text.partition("=")
    component, _, prop = target.strip().rpartition(".")
    if not component:
        owners = [n for n, s in sim.sims.items() if prop in s.device.properties]
        if not owners:
            raise ValueError(f"no property {prop!r}")
        component = owners[0]
    return component, prop, parse_value(raw.strip())


def parse_value(raw: str) -> Any:
    """`true`, `12`, `1.5`, `"text"`, `{"a": 1}` as JSON; anything else as a plain string."""
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw


def _host_port(url: str, scheme: str) -> tuple[str, int]:
    rest = url.removeprefix(f"{scheme}://")
    host, _, port = rest.rpartition(":")
    if not host or not port.isdigit():
        raise UsageError(f"expected {scheme}://HOST:PORT, got {url!r}")
    if int(port) > 65535:
        raise UsageError(f"{url}: a port is 0 to 65535 (0: any free port)")
    return host, int(port)


async def _until_stopped() -> None:
    """Wait for SIGINT or SIGTERM (the handlers are in place since pyiot started)."""
    await _STOP.wait()


def _stopping() -> bool:
    """A stop was asked for during start-up: skip the rest of it."""
    return _STOP.requested


# -------------------------------------------------------------------------------------- broker
def cmd_broker(args: argparse.Namespace) -> int:
    from pyiot.local import LocalStack, TlsFiles
    from pyiot.local.auth import parse_grant

    if bool(args.username) != bool(args.password):
        raise UsageError("--username and --password go together")
    tls_files = [args.tls_ca, args.tls_cert, args.tls_key]
    if any(tls_files) and not all(tls_files):
        raise UsageError("a TLS listener needs all of --tls-ca, --tls-cert and --tls-key")
    tls = None
    if all(tls_files):
        for path in tls_files:
            if not Path(path).is_file():
                raise UsageError(f"TLS file {path} not found")
        tls = TlsFiles(Path(args.tls_ca), Path(args.tls_cert), Path(args.tls_key))
    if args.password_file and not Path(args.password_file).is_file():
        raise UsageError(f"password file {args.password_file} not found")
    grants: dict[str, list[str]] = {}
    for text in getattr(args, "grant", None) or []:
        user, things = parse_grant(text)
        grants.setdefault(user, []).extend(things)
    stack = LocalStack(
        port=args.port,
        prefer_port=DEFAULT_BROKER_PORT,
        data_dir=Path(args.data) if args.data else None,
        listen=args.listen,
        users={args.username: args.password} if args.username else None,
        password_file=Path(args.password_file) if args.password_file else None,
        grants=grants,
        tls=tls,
        tls_port=args.tls_port,
        aws_limits=args.aws_limits,
    )
    try:
        stack.start()
        login = " (login required)" if args.username or args.password_file else ""
        _out(f"broker: {stack.url}{login} (shadows in {stack.store_path}){stack.port_note}")
        if tls is not None:
            _out(
                f"TLS listener: mqtts://{args.listen}:{stack.tls_port} "
                f"(client certificates signed by {args.tls_ca})"
            )
        asyncio.run(_until_stopped())
    finally:
        stack.stop()
    return 0


# ----------------------------------------------------------------------------------------- run
def cmd_run(args: argparse.Namespace) -> int:
    from pyiot.compiler import load_program
    from pyiot.config import settings_from_args
    from pyiot.runtime.gateway import check_unique_things

    programs = []
    for file in args.files:
        program = load_program(file)
        if not program.model.things:
            raise UsageError(f"{file} declares no thing: add `thing NAME {{ component ... }}`")
        programs.append(program)
    check_unique_things(programs)
    endpoints = dict(_parse_device_option(d) for d in args.device)
    settings = settings_from_args(args)
    args.log_format = _log_format(args.log_format, programs)
    asyncio.run(_run(args, programs, endpoints, settings))
    return 0


def _log_format(requested: str, programs: list) -> str:
    """`auto` is the live table on a terminal and text lines otherwise; `json` switches the
    log handlers to one JSON object per line, tagged with the thing and component."""
    tty = sys.stdout.isatty()
    if requested == "auto":
        return "live" if tty else "text"
    if requested == "live" and not tty:
        raise UsageError("--log-format live needs a terminal; use text or json")
    if requested == "json":
        from pyiot.runtime.logformat import NameTagger, use_json_logs

        things: dict[str, Iterable[str]] = {
            t.name: list(t.components) for p in programs for t in p.model.things.values()
        }
        use_json_logs(NameTagger(things))
    return requested


def _parse_device_option(text: str) -> tuple[str, str]:
    name, sep, url = text.partition("=")
    if not sep or not name or not url:
        raise UsageError(f"--device takes COMPONENT=URL, got {text!r}")
    return name, url


def _check_device_options(programs: list, endpoints: dict[str, str]) -> None:
    """Each --device names one component or port: `NAME`, or `THING.NAME` when several things
    have one of that name."""
    qualified = [
        f"{t.name}.{c}"
        for p in programs
        for t in p.model.things.values()
        for c in [*t.components, *t.ports]
    ]
    for name in endpoints:
        if name in qualified:
            continue
        owners = [q for q in qualified if q.split(".", 1)[1] == name]
        if not owners:
            known = ", ".join(q.split(".", 1)[1] for q in qualified)
            raise UsageError(f"--device: no component {name!r} (known: {known})")
        if len(owners) > 1:
            raise UsageError(f"--device: {name!r} is ambiguous; use one of {', '.join(owners)}")


def _check_python_allowed(programs: list, endpoints: dict[str, str], allowed: bool) -> None:
    """Without --allow-python, a file naming Python (hooks, a custom transport) or an endpoint
    URL that acts (`spy://`) stops the run here, before a broker or simulator is started, with
    the error the Gateway would give."""
    if allowed:
        return
    from pyiot.runtime.gateway import check_endpoints, endpoint_for
    from pyiot.runtime.hooks import resolve_hooks
    from pyiot.runtime.transport import open_link

    check_endpoints(programs, endpoints)

    for program in programs:
        for thing in program.model.things.values():
            for component in thing.components.values():
                kind, address = endpoint_for(endpoints, thing, component)
                if kind == "custom":
                    open_link(kind, address)  # raises PythonNotAllowed
                resolve_hooks(program.model.devices[component.device], allow=False)


async def _run(args: argparse.Namespace, programs: list, endpoints: dict[str, str], settings):
    from pyiot.local.discovery import check_shadow_service, choose_broker
    from pyiot.runtime.gateway import Gateway, endpoint_for
    from pyiot.runtime.pool import ConnectionPool
    from pyiot.sim import DeviceSimulator, PortSimulator, port_groups

    _check_device_options(programs, endpoints)
    _check_python_allowed(programs, endpoints, args.allow_python)
    from pyiot.config import homeassistant_settings
    from pyiot.runtime.homeassistant import start_homeassistant, stop_homeassistant

    homeassistant = homeassistant_settings(args, settings)  # refuses AWS alone, before starting
    bridge = None
    simulators: list[PortSimulator] = []
    stack = None
    gateway = None
    shadow = None
    view = None
    things = [t for p in programs for t in p.model.things.values()]
    try:
        if args.simulate:
            for program in programs:
                model = program.model
                for (thing, _, _), components in port_groups(model).items():
                    names = [f"{thing}.{c[0]}" for c in components]
                    owner = model.things[thing]
                    if any(
                        endpoint_for(endpoints, owner, owner.components[c[0]])
                        != endpoint_for({}, owner, owner.components[c[0]])
                        for c in components
                    ):
                        continue  # pointed at a real device on the command line
                    kind, address = endpoint_for({}, owner, owner.components[components[0][0]])
                    if kind == "custom":
                        # The link is Python the user allowed, a stand-in of its own (GPIO on
                        # mock pins): a simulator's socket cannot take its place.
                        listed = ", ".join(c[0] for c in components)
                        _out(f"simulator: {listed} not simulated: on custom transport {address}")
                        continue
                    sim = PortSimulator(
                        [DeviceSimulator(n, model.devices[d], a) for n, d, a in components]
                    )
                    for device_sim in sim.sims.values():
                        device_sim.on_change = _print_sim_change
                    url = await sim.serve_tcp()
                    simulators.append(sim)
                    endpoints.update({n: url for n in names})
                    _out(f"simulator: {', '.join(c[0] for c in components)} on {url}")
        if _stopping():
            return
        choice = await choose_broker(
            settings,
            args.data,
            start=True,
            port=getattr(args, "port", None),
            aws_limits=args.aws_limits,
            say=_out,
        )
        stack, broker = choice.stack, choice.broker
        if _stopping():
            return
        # On AWS a policy usually ties the client id to a thing name: use the first thing's
        # (with `-1`, `-2`, ... when the things need several connections: docs/aws.md).
        client_id = settings.client_id or (things[0].name if settings.is_tls else None)
        shadow = ConnectionPool(
            broker,
            [thing.name for thing in things],
            client_id,
            aws_limits=settings.is_tls or args.aws_limits,
        )
        # Built before connecting: a file asking for Python it may not run stops here.
        gateway = Gateway(programs, shadow, endpoints, allow_python=args.allow_python)
        if args.log_format == "live":
            from pyiot.runtime.liveview import LiveView

            view = LiveView(gateway.engines, title=f"pyiot run on {broker}")
            await view.start()  # the lines below print above the table
        await shadow.connect()
        if settings.is_tls:
            ids = shadow.client_ids
            named = ", ".join(ids) if len(ids) <= 3 else f"{ids[0]} ... {ids[-1]}"
            more = f" ({len(ids)} connections for {len(things)} things)" if len(ids) > 1 else ""
            _out(f"connected to {broker} as {named}{more}")
        elif len(shadow.connections) > 1:
            _out(f"{len(things)} things over {len(shadow.connections)} connections")
        await check_shadow_service(shadow.connections[0], broker, things[0].name)
        if _stopping():
            return
        await gateway.start()
        bridge = await start_homeassistant(homeassistant, gateway, broker)
        if bridge is not None:
            _out(f"home assistant: {bridge.summary()}")
        for thing in things:
            comps = ", ".join(
                f"{c.name} on {endpoint_for(endpoints, thing, c)[1]}"
                for c in thing.components.values()
            )
            _out(f"thing {thing.name}: {comps}")
        if settings.is_tls:
            hint = " (with the same --endpoint/--cert/--key/--ca)"
        elif choice.local:
            # `pyiot shadow` finds the stack through the same data folder.
            hint = f" --data {args.data}" if args.data else ""
        else:
            hint = f" --broker {broker}"
        _out(f"ready; try: pyiot shadow get {things[0].name}{hint}")
        await _until_stopped()
    finally:
        if view is not None:
            await view.stop()
        await stop_homeassistant(bridge)
        if gateway is not None:
            await gateway.stop()
        if shadow is not None:
            await shadow.close()
        for sim in simulators:
            await sim.close()
        if stack is not None:
            await asyncio.get_running_loop().run_in_executor(None, stack.stop)


# -------------------------------------------------------------------------------------- shadow
def cmd_shadow(args: argparse.Namespace) -> int:
    return asyncio.run(_shadow(args))


async def _shadow(args: argparse.Namespace) -> int:
    from pyiot.config import settings_from_args
    from pyiot.local.discovery import check_shadow_service, choose_broker
    from pyiot.runtime.shadow_client import ShadowConnection

    settings = settings_from_args(args)
    desired: dict[str, Any] = {}
    if args.action == "set":
        if not args.values:
            raise UsageError("shadow set needs KEY=VALUE ...")
        for item in args.values:
            key, sep, raw = item.partition("=")
            if not sep or not key or "" in key.split("."):
                raise UsageError(f"expected KEY=VALUE, got {item!r}")
            # `patio.volume=12` is {"patio": {"volume": 12}}: nested shadow names.
            *parents, leaf = key.split(".")
            node = desired
            for name in parents:
                node = node.setdefault(name, {})
                if not isinstance(node, dict):
                    raise UsageError(f"{key}: {name} is given a value and keys at once")
            node[leaf] = parse_value(raw)
    elif args.values:
        raise UsageError(f"shadow {args.action} takes no KEY=VALUE")
    # The local stack serving the data folder, never whatever answers on 1883.
    data = getattr(args, "data", None)
    choice = await choose_broker(settings, data, start=False, say=_LOGGER.info)
    broker = choice.broker
    connection = ShadowConnection(broker, choice.client_id)
    await connection.connect()
    name = f"{args.thing}" + (f" (shadow {args.shadow})" if args.shadow else "")
    try:
        await check_shadow_service(connection, broker, args.thing)
        if args.action == "get":
            document = await connection.get(args.thing, args.shadow)
            if document is None:
                raise UsageError(f"no shadow for thing {name}")
            _out(json.dumps(document, indent=2, sort_keys=True))
        elif args.action == "set":
            await connection.update(args.thing, desired=desired, shadow=args.shadow)
            _out(f"desired {json.dumps(desired)} sent to {name}")
        elif args.action == "delete":
            if not await connection.delete(args.thing, args.shadow):
                raise UsageError(f"no shadow for thing {name}")
            _out(f"deleted the shadow of {name}")
        else:
            await connection.watch_documents(
                args.thing, lambda doc: _out(json.dumps(doc, sort_keys=True)), args.shadow
            )
            _out(f"watching {name} (Ctrl-C to stop)")
            await _until_stopped()
    finally:
        await connection.close()
    return 0


# -------------------------------------------------------------------------------------- parser
class _Parser(argparse.ArgumentParser):
    """A command's parser: options go anywhere among the positionals, as people type them
    (`pyiot shadow set relayOne --broker URL relayState=true`), and a mistake prints this
    command's usage, not the top level's."""

    _parsing = False

    # typeshed overloads parse_known_args on the namespace's type; this is its plain form.
    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        if self._parsing:  # parse_known_intermixed_args calls back in (Python < 3.12.7)
            return super().parse_known_args(args, namespace)
        self._parsing = True
        try:
            parsed, extras = self.parse_known_intermixed_args(args, namespace)
        finally:
            self._parsing = False
        if extras:
            # The top-level parser would report these with its own usage.
            self.error(f"unrecognized arguments: {' '.join(extras)}")
        return parsed, extras


def _command(sub, name: str, common: argparse.ArgumentParser, help: str, examples: str):
    """One `pyiot NAME` parser with its examples below the options."""
    lines = [line.strip() for line in examples.splitlines() if line.strip()]
    return sub.add_parser(
        name,
        parents=[common],
        help=help,
        description=help[:1].upper() + help[1:] + ".",
        epilog="examples:\n" + "\n".join(f"  {line}" for line in lines),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pyiot",
        description="Put serial and TCP devices on AWS IoT from a .iot file.",
        epilog="`pyiot COMMAND --help` shows a command's options and examples.\n"
        "examples:\n"
        "  pyiot run devices/relay.iot --simulate\n"
        "  pyiot shadow set relayOne relayState=true",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"pyiot {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    sub = parser.add_subparsers(required=True, metavar="COMMAND", parser_class=_Parser)

    p = _command(
        sub,
        "compile",
        common,
        "check a .iot file; write a driver module with -o",
        """
        pyiot compile devices/relay.iot
        pyiot compile devices/relay.iot -o relay_driver.py
        pyiot compile devices/relay.iot --json
        """,
    )
    p.add_argument("file", help="the .iot file to check")
    p.add_argument("-o", "--output", help="write a compiled driver module (.py) here")
    p.add_argument("--json", action="store_true", help="print the model as JSON")
    p.set_defaults(func=cmd_compile)

    p = _command(
        sub,
        "graph",
        common,
        "draw the components' state machines",
        """
        pyiot graph devices/relay.iot
        pyiot graph devices/relay.iot --format dot
        pyiot graph devices/epson_escvp21.iot --format svg -o epson.svg
        pyiot graph devices/relay.iot --format json
        """,
    )
    p.add_argument("file", help="the .iot file to draw")
    p.add_argument(
        "--format",
        choices=["mermaid", "dot", "svg", "png", "json"],
        default="mermaid",
        help="mermaid (default) and dot are text; svg and png need Graphviz's `dot` and -o; "
        "json: per component, its states and transitions (source, dest, trigger)",
    )
    p.add_argument("-o", "--output", help="write to this file instead of printing")
    p.add_argument("--component", help="draw only this component")
    p.add_argument(
        "--protocol",
        action="store_true",
        help="draw the protocol states too when a device has modes (folded by default)",
    )
    p.set_defaults(func=cmd_graph)

    p = _command(
        sub,
        "simulate",
        common,
        "serve a virtual device that answers as the file says",
        """
        pyiot simulate devices/relay.iot
        pyiot simulate devices/relay.iot --listen tcp://127.0.0.1:7000
        pyiot simulate devices/monoprice_mpr6zhmaut.iot --pty
        """,
    )
    p.add_argument("file", help="the .iot file whose device to play")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--listen", help="tcp://HOST:PORT to listen on (default: a free port)")
    where.add_argument("--pty", action="store_true", help="serve on a pseudo-terminal")
    p.add_argument("--component", help="simulate the port this component sits on")
    p.add_argument("--replay", metavar="TRANSCRIPT", help="answer from a recorded transcript")
    p.set_defaults(func=cmd_simulate)

    p = _command(
        sub,
        "probe",
        common,
        "check a file against the real device (queries only, unless --sets)",
        """
        pyiot probe devices/relay.iot --device relay1=/dev/ttyUSB0
        pyiot probe devices/epson_escvp21.iot --device projector=/dev/ttyUSB1 --record epson.txt
        pyiot probe devices/nad_amplifier.iot --device amp=socket://10.0.0.9:23 --sets
        """,
    )
    p.add_argument("file", help="the .iot file to check")
    p.add_argument(
        "--device",
        required=True,
        metavar="NAME=URL",
        help="the component to probe and the URL of the real device",
    )
    p.add_argument(
        "--sets",
        action="store_true",
        help="also send each set, with the value the device just reported (changes nothing)",
    )
    p.add_argument(
        "--record", metavar="FILE", help="write the exchange as a transcript (docs/transcripts.md)"
    )
    p.set_defaults(func=cmd_probe)

    p = _command(
        sub,
        "broker",
        common,
        "run the local MQTT broker + Device Shadow service",
        """
        pyiot broker
        pyiot broker --port 1884 --data ./shadows
        pyiot broker --listen 0.0.0.0 --password-file passwords
        """,
    )
    p.add_argument(
        "--port",
        type=int,
        help=f"broker port: exactly this one or an error (default: {DEFAULT_BROKER_PORT} if free, "
        "else any free port)",
    )
    p.add_argument(
        "--data",
        help="where shadows are kept; one stack per folder (default: per-user data folder)",
    )
    p.add_argument(
        "--listen",
        default="127.0.0.1",
        metavar="HOST",
        help="address to listen on; beyond loopback a login or TLS is required",
    )
    p.add_argument("--password-file", help="mosquitto password file (from mosquitto_passwd)")
    p.add_argument("--username", help="a user to allow (with --password)")
    p.add_argument("--password", help="that user's password (visible to `ps`: prefer a file)")
    p.add_argument("--tls-ca", help="TLS listener: CA that signs the clients' certificates")
    p.add_argument("--tls-cert", help="TLS listener: the broker's certificate")
    p.add_argument("--tls-key", help="TLS listener: the broker's private key")
    p.add_argument(
        "--tls-port", type=int, help="TLS listener port (default: 8883 if free, else any)"
    )
    p.add_argument(
        "--grant",
        action="append",
        metavar="USER=THING[,THING]",
        help="let a login reach these things' shadows (* for all things and plain topics); "
        "a login always reaches the thing named like it",
    )
    p.add_argument(
        "--no-aws-limits",
        dest="aws_limits",
        action="store_false",
        help=_NO_AWS_LIMITS_HELP,
    )
    p.set_defaults(func=cmd_broker)

    from pyiot.config import add_connection_arguments

    local = (
        "the local stack of the data folder (--data): the one running there, else one started "
        f"here on {DEFAULT_BROKER_PORT} (or any free port if that is taken)"
    )
    p = _command(
        sub,
        "run",
        common,
        "connect the devices and the shadows",
        """
        pyiot run devices/relay.iot --simulate
        pyiot run devices/relay.iot --device relay1=/dev/ttyUSB0
        pyiot run devices/monoprice_mpr6zhmaut.iot --device amp=socket://127.0.0.1:7000
        pyiot run relay.iot --endpoint XXXX-ats.iot.REGION.amazonaws.com --cert c.pem --key k.pem
        """,
    )
    p.add_argument(
        "files",
        nargs="+",
        metavar="FILE",
        help="one or more .iot files or driver modules from `pyiot compile -o`",
    )
    p.add_argument("--simulate", action="store_true", help="use simulated devices")
    p.add_argument(
        "--device",
        action="append",
        default=[],
        metavar="COMPONENT=URL",
        help="device port for a component or a thing's port (or THING.NAME): /dev/ttyUSB0, "
        "socket://host:port, tcp://host:port",
    )
    p.add_argument(
        "--data",
        type=Path,
        help="data folder of the local stack: use the stack running there, else start one",
    )
    p.add_argument(
        "--no-aws-limits",
        dest="aws_limits",
        action="store_false",
        help=_NO_AWS_LIMITS_HELP + ", and let pyiot's own connections skip AWS's "
        "per-connection pacing (never with --endpoint)",
    )
    p.add_argument(
        "--allow-python",
        action="store_true",
        help="let the files run the Python they name: hooks, custom transports (trusted files "
        "only)",
    )
    p.add_argument(
        "--log-format",
        choices=["auto", "live", "text", "json"],
        default="auto",
        help="live: a table of every component, updated as it changes (needs a terminal); "
        "text: log lines; json: one JSON object per log line on stderr; auto (default): live "
        "on a terminal, text otherwise",
    )
    add_connection_arguments(p, local)
    from pyiot.config import add_homeassistant_arguments

    add_homeassistant_arguments(p)
    p.set_defaults(func=cmd_run)

    p = _command(
        sub,
        "shadow",
        common,
        "act as the application: get, set, watch, delete a shadow",
        """
        pyiot shadow get relayOne
        pyiot shadow set relayOne relayState=true
        pyiot shadow set wholeHouse kitchen.volume=12 --broker mqtt://127.0.0.1:1884
        pyiot shadow watch relayOne --shadow config
        """,
    )
    p.add_argument(
        "action",
        choices=["get", "set", "watch", "delete"],
        help="get: print the document; set: send desired KEY=VALUE; watch: print every "
        "update; delete: remove the shadow",
    )
    p.add_argument("thing", help="the thing's name (`thing NAME` in the .iot file)")
    p.add_argument(
        "values",
        nargs="*",
        metavar="KEY=VALUE",
        help='desired values for set, typed as JSON: true, 12, "text", {...}; '
        "a.b=1 is nested",
    )
    p.add_argument("--shadow", metavar="NAME", help="a named shadow (default: the classic one)")
    p.add_argument(
        "--data",
        type=Path,
        help="data folder of the local stack to talk to (default: per-user data folder)",
    )
    add_connection_arguments(p, "the local stack of the data folder (see --data)")
    p.set_defaults(func=cmd_shadow)
    return parser


if __name__ == "__main__":
    sys.exit(main())
