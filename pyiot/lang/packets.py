"""Packet templates: the bytes around a payload in a binary protocol, as one string.

`"ISCP\\x00\\x00\\x00\\x10{size:4be}\\x01\\x00\\x00\\x00{payload}"` is an Onkyo eISCP frame: fixed
bytes, the payload's length in 4 big-endian bytes, more fixed bytes, then the payload.
Fields: `{payload}` (its length given by an earlier `{size:N}`) or `{payload:N}` (always N
bytes); `{head:N}`, the payload's first N bytes placed before the size field, which then counts
only the rest (Samsung MDC: `0xAA, command, ID, length, data`: `"\\xAA{head:2}{size:1}{payload}"`);
`{size:N}`, `{size:Nbe}`, `{size:Nle}`; `{sum8}` and `{xor8}`, a one-byte checksum of every byte
before it, or from byte K on with `{sum8:K:}` (MDC sums every byte after its 0xAA header:
`{sum8:1:}`). `{{` and `}}` are literal braces. Strings are bytes: `\\x02` is byte 2.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass

CHECKSUMS = ("sum8", "xor8")
_SIZE_SPEC = re.compile(r"^(\d)(be|le)?$")
_SUM_SPEC = re.compile(r"^(\d+):$")


@dataclass(frozen=True)
class Segment:
    kind: str  # "bytes", "head", "size", "payload", "checksum"
    data: bytes = b""  # literal bytes
    # size field width, head length, or fixed payload length (0: given by the size field)
    width: int = 0
    order: str = "big"  # size field byte order
    checksum: str = ""
    start: int = 0  # a checksum covers the frame's bytes from here up to itself


def parse_template(template: str) -> list[Segment]:
    """The template's segments; `ValueError` with a message a user can act on."""
    segments: list[Segment] = []
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as err:
        raise ValueError(f"bad packet template: {err}") from None
    for literal, name, spec, _ in parts:
        if literal:
            segments.append(Segment("bytes", literal.encode("latin-1")))
        if name is None:
            continue
        if name == "payload":
            if spec and not spec.isdigit():
                raise ValueError("{payload:N} takes a byte count")
            segments.append(Segment("payload", width=int(spec or 0)))
        elif name == "head":
            if not spec or not spec.isdigit() or int(spec) == 0:
                raise ValueError("write the head field as {head:N}, N the bytes it takes")
            segments.append(Segment("head", width=int(spec)))
        elif name == "size":
            found = _SIZE_SPEC.match(spec or "")
            if not found:
                raise ValueError("write the size field as {size:2}, {size:4be} or {size:4le}")
            order = "little" if found.group(2) == "le" else "big"
            segments.append(Segment("size", width=int(found.group(1)), order=order))
        elif name in CHECKSUMS:
            found = _SUM_SPEC.match(spec or "0:")
            if not found:
                raise ValueError(f"write the checksum as {{{name}}} or {{{name}:K:}} (from byte K)")
            start = int(found.group(1))
            if start and start >= _least_bytes(segments):
                raise ValueError(f"{{{name}:{start}:}} starts past the bytes before it")
            segments.append(Segment("checksum", checksum=name, start=start))
        else:
            raise ValueError(
                f"unknown packet field {{{name}}} (use payload, head, size, sum8, xor8)"
            )
    kinds = [s.kind for s in segments]
    if kinds.count("head") > 1:
        raise ValueError("a packet template takes at most one {head:N}")
    if "head" in kinds and "payload" in kinds and kinds.index("head") > kinds.index("payload"):
        raise ValueError("{head:N} goes before the {payload}")
    if kinds.count("payload") != 1:
        raise ValueError("a packet template needs exactly one {payload}")
    payload = kinds.index("payload")
    if segments[payload].width == 0 and "size" not in kinds[:payload]:
        raise ValueError("{payload} needs a {size:N} field before it, or a fixed {payload:N}")
    if not segments or segments[0].kind != "bytes":
        raise ValueError("a packet template must start with fixed bytes to find frames by")
    return segments


def _least_bytes(segments: list[Segment]) -> int:
    """The fewest bytes these segments can take (an empty sized payload takes none)."""
    return sum(len(s.data) if s.kind == "bytes" else 1 if s.kind == "checksum" else s.width
               for s in segments)


def checksum(kind: str, data: bytes) -> int:
    if kind == "sum8":
        return sum(data) & 0xFF
    value = 0
    for byte in data:
        value ^= byte
    return value
