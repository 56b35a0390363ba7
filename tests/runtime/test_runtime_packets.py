"""Binary framing from a packet template: Onkyo eISCP over TCP, and a checksummed frame."""

from __future__ import annotations

import asyncio

import pytest

from pyiot.compiler import Program
from pyiot.lang import IotError, load
from pyiot.runtime.component import ComponentEngine, EngineConfig
from pyiot.runtime.framing import PacketFramer
from pyiot.runtime.transport import open_link
from tests.waiting import eventually

EISCP = "ISCP\x00\x00\x00\x10{size:4be}\x01\x00\x00\x00{payload}"

RECEIVER = r"""
device Onkyo "Onkyo eISCP over TCP port 60128" {
    transport tcp
    framing packet "ISCP\x00\x00\x00\x10{size:4be}\x01\x00\x00\x00{payload}" end "\r"
    timeout 500ms retries 1
    property power: bool {
        query "!1PWRQSTN" reply /^!1PWR(?P<value>0[01])$/ set "!1PWR{value}"
        map { "01" = true, "00" = false }
    }
    property volume: int 0..100 {
        query "!1MVLQSTN" reply /^!1MVL(?P<value>[0-9A-F]{2})$/ set "!1MVL{value:02X}"
        python decode "builtins:int"
    }
}
"""


def frame(payload: bytes) -> bytes:
    """An eISCP frame as the Onkyo ISCP-over-Ethernet document lays it out."""
    header = (
        b"ISCP" + (16).to_bytes(4, "big") + len(payload).to_bytes(4, "big") + b"\x01\x00\x00\x00"
    )
    return header + payload


def test_eiscp_frames_encode_as_the_document_shows() -> None:
    framer = PacketFramer(EISCP, "\r")
    assert framer.encode("!1PWR01") == frame(b"!1PWR01\r")


def test_eiscp_frames_decode_across_reads_and_skip_noise() -> None:
    framer = PacketFramer(EISCP)
    data = b"noise" + frame(b"!1PWR01\x1a\r\n") + frame(b"!1MVL2A\x1a")
    frames = []
    for i in range(0, len(data), 7):  # arrives in pieces
        frames += framer.feed(data[i : i + 7])
    assert frames == ["!1PWR01", "!1MVL2A"]
    assert framer.dropped == 1  # the noise before the first frame


def test_checksum_frames_reject_a_bad_sum() -> None:
    framer = PacketFramer("\x02{size:1}{payload}{sum8}")
    good = framer.encode("ON")
    assert good == b"\x02\x02ON" + bytes([(2 + 2 + ord("O") + ord("N")) & 0xFF])
    bad = good[:-1] + bytes([(good[-1] + 1) & 0xFF])
    assert framer.feed(bad + good) == ["ON"]
    assert framer.dropped >= 1


def test_a_head_before_the_size_and_a_checksum_from_byte_one() -> None:
    """Samsung MDC: 0xAA, command and ID (the head), a length counting only the data, the data,
    and a checksum of every byte after the 0xAA header."""
    framer = PacketFramer("\xaa{head:2}{size:1}{payload}{sum8:1:}")
    assert framer.encode("\x11\xff\x01") == bytes.fromhex("aa 11 ff 01 01 12")
    assert framer.feed(b"\x00" + bytes.fromhex("aa 11 ff 01 01 12")) == ["\x11\xff\x01"]
    assert framer.feed(bytes.fromhex("aa 11 ff 01 01 13")) == []  # a bad sum: dropped


def test_replies_read_in_their_own_template_with_no_byte_stripped() -> None:
    framer = PacketFramer(
        "\xaa{head:2}{size:1}{payload}{sum8:1:}",
        reads="\xaa\xff{head:1}{size:1}{payload}{sum8:1:}",
        strip="",
    )
    reply = bytes.fromhex("aa ff 01 03 41 12 0d") + bytes([(0xFF + 1 + 3 + 0x41 + 0x12 + 0x0D) % 256])
    assert framer.feed(reply) == ["\x01A\x12\r"]  # volume 13: its CR byte is data


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("ISCP{size:4be}", "exactly one {payload}"),
        ("ISCP{payload}", "needs a {size:N} field before it"),
        ("{size:2}ISCP{payload}", "must start with fixed bytes"),
        ("ISCP{size:9x}{payload}", "write the size field"),
        ("ISCP{crc}{payload:4}", "unknown packet field {crc}"),
        ("ISCP{head}{size:1}{payload}", "write the head field as {head:N}"),
        ("ISCP{size:1}{payload}{head:2}", "{head:N} goes before the {payload}"),
        ("ISCP{size:1}{payload}{sum8:x}", "write the checksum as {sum8} or {sum8:K:}"),
        ("IS{sum8:3:}{size:1}{payload}", "{sum8:3:} starts past the bytes before it"),
    ],
)
def test_bad_templates_are_compile_errors(template: str, message: str) -> None:
    source = RECEIVER.replace(
        "ISCP\\x00\\x00\\x00\\x10{size:4be}\\x01\\x00\\x00\\x00{payload}", template
    )
    with pytest.raises(IotError) as caught:
        load(source, "onkyo.iot")
    assert message in caught.value.diagnostics[0].message
    assert caught.value.line == 4


def test_engine_talks_eiscp_to_a_receiver() -> None:
    """Over real TCP: the engine frames its queries and sets, and reads framed replies."""
    state = {"PWR": "00", "MVL": "20"}

    async def receiver(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        framer = PacketFramer(EISCP)
        while data := await reader.read(4096):
            for message in framer.feed(data):
                command, argument = str(message)[2:5], str(message)[5:]
                if argument != "QSTN":
                    state[command] = argument
                writer.write(frame(f"!1{command}{state[command]}\x1a\r\n".encode()))

    async def scenario() -> None:
        server = await asyncio.start_server(receiver, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        program = Program.from_model(
            load(RECEIVER.replace('python decode "builtins:int"', ""), "onkyo.iot")
        )
        device = program.model.devices["Onkyo"]
        engine = ComponentEngine(
            EngineConfig("receiver", device, program.machines["Onkyo"]),
            open_link("tcp", f"127.0.0.1:{port}"),
        )
        await engine.start()
        try:
            await eventually(lambda: "power" in engine.values)
            assert engine.values["power"] is False
            assert await engine.set("power", True) is True
            assert state["PWR"] == "01"
        finally:
            await engine.stop()
            server.close()

    asyncio.run(scenario())


def test_a_bad_reply_template_is_a_compile_error_at_its_place() -> None:
    source = RECEIVER.replace(
        'end "\\r"', 'end "\\r" replies "\\x1a" replies packet "{size:1}{payload}"'
    )
    with pytest.raises(IotError) as caught:
        load(source, "onkyo.iot")
    assert "reply packet: a packet template must start with fixed bytes" in str(caught.value)
    assert caught.value.line == 4
