"""`pyiot probe`: a device file checked against a device over real sockets and ptys, transcripts
recorded bytes exact, replayed by `pyiot simulate --replay`, and asserted by a test helper."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyiot.lang import load, load_file
from pyiot.probe import Replay, Transcript, escape, probe, unescape
from pyiot.sim import simulator_for
from tests.transcripts import assert_meets_transcript, check_transcript
from tests.waiting import PATIENCE

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parents[2]
DEVICES = ROOT / "devices"
TRANSCRIPTS = ROOT / "tests" / "devices" / "transcripts"

AMP = """
device Amp {
    framing line "\\r"
    timeout 300ms
    error /^ERR$/
    property power: bool { query "P?" reply /^P(?P<value>[01])$/ set "P{value}" map { "1" = true, "0" = false } }
    property volume: int 0..50 { query "V?" reply /^V(?P<value>\\d\\d)$/ set "V{value:02d}" }
    property input: int 1..4 { query "I?" reply /^I(?P<value>\\d)$/ set "I{value}" }
}
thing t { component amp: Amp on tcp "127.0.0.1:1" }
"""


def run(coro):
    return asyncio.run(coro)


async def _probe_sim(device_source: str, sim_source: str, sets: bool = False, **kw):
    """Probe the file `device_source` against a simulator of `sim_source` over TCP."""
    port = simulator_for(load(sim_source, "sim.iot"))
    url = await port.serve_tcp()
    transcript = Transcript()
    try:
        report = await probe(load(device_source, "amp.iot"), "amp", url, sets, transcript, **kw)
    finally:
        await port.close()
    return report, transcript


def test_every_query_of_a_right_file_matches():
    report, transcript = run(_probe_sim(AMP, AMP))
    assert [(o.name, o.status) for o in report.outcomes] == [
        ("power", "matched"), ("volume", "matched"), ("input", "matched"),
    ]
    assert report.outcomes[1].line == "V00" and report.outcomes[1].values == {"volume": 0}
    assert all(o.seconds is not None and o.seconds >= 0 for o in report.outcomes)
    assert report.all_matched and not report.stray


def test_without_sets_nothing_but_queries_is_sent():
    _, transcript = run(_probe_sim(AMP, AMP))
    sent = [e.data for e in transcript.entries if e.direction == ">"]
    assert sent == [b"P?\r", b"V?\r", b"I?\r"]


def test_sets_send_back_the_value_just_reported():
    real = AMP.replace('query "V?"', 'query "V?" initial 17')
    report, transcript = run(_probe_sim(AMP, real, sets=True))
    sent = [e.data for e in transcript.entries if e.direction == ">"]
    assert sent[3:] == [b"P0\r", b"V17\r", b"I1\r"]
    assert [o.status for o in report.outcomes] == ["matched"] * 6


def test_a_wrong_pattern_is_unmatched_with_the_line_quoted():
    wrong = AMP.replace(r'reply /^V(?P<value>\d\d)$/', r'reply /^VOL(?P<value>\d\d)$/')
    report, _ = run(_probe_sim(wrong, AMP))
    volume = report.outcomes[1]
    assert (volume.status, volume.line) == ("unmatched", "V00")
    assert report.stray == ["V00"]
    assert not report.all_matched
    assert any("'V00' to 'V?' matches no pattern" in line for line in report.lines())


def test_silence_is_a_timeout_and_an_error_reply_is_named():
    extra = AMP.replace(
        'property input:', 'property tone: int { query "T?" reply /^T(?P<value>\\d)$/ }\n'
        '    property bass: int { query "B?" reply /^B(?P<value>\\d)$/ }\n    property input:'
    )
    # The simulated device knows neither T? nor B?: the first gets ERR (its error reply).
    report, _ = run(_probe_sim(extra, AMP))
    statuses = {o.name: (o.status, o.line) for o in report.outcomes}
    assert statuses["tone"] == ("error", "ERR")
    silent = AMP.replace("error /^ERR$/", "")
    report, _ = run(_probe_sim(extra, silent))
    assert {o.name: o.status for o in report.outcomes}["tone"] == "timeout"


def test_probe_over_a_pty_with_the_shared_port_file():
    async def scenario():
        model = load_file(DEVICES / "monoprice_mpr6zhmaut.iot")
        port = simulator_for(model, "kitchen")
        path = await port.serve_pty()
        try:
            return await probe(model, "living", path)
        finally:
            await port.close()

    report = run(scenario())
    assert [(o.name, o.status) for o in report.outcomes] == [("query status", "matched")]
    assert report.outcomes[0].values["source"] == 1


@given(st.binary(max_size=64))
def test_transcript_bytes_survive_escaping(data):
    line = escape(data)
    assert "\n" not in line and "\r" not in line
    assert unescape(line) == data


def test_a_transcript_reads_back_as_written():
    _, transcript = run(_probe_sim(AMP, AMP))
    again = Transcript.loads(transcript.dumps())
    assert [(e.direction, e.data) for e in again.entries] == [
        (e.direction, e.data) for e in transcript.entries
    ]
    with pytest.raises(ValueError, match="t.txt:2:"):
        Transcript.loads("# pyiot transcript 1\n0.1 ? P?\\r\n", "t.txt")


def test_replay_answers_each_command_with_what_followed_it():
    transcript = Transcript.loads(
        "0.0 < HELLO\\r\n0.1 > P?\\r\n0.2 < P1\\r\n0.3 > V?\\r\n0.4 < V2\\r\n0.5 < 0\\r\n"
    )

    async def scenario():
        replay = Replay(transcript)
        url = await replay.serve_tcp()
        host, _, number = url.removeprefix("socket://").rpartition(":")
        reader, writer = await asyncio.open_connection(host, int(number))
        try:
            got = [await asyncio.wait_for(reader.readuntil(b"\r"), PATIENCE)]
            writer.write(b"V?\rP?\r")
            got.append(await asyncio.wait_for(reader.readexactly(len(b"V2\r0\rP1\r")), PATIENCE))
            return got
        finally:
            writer.close()
            await replay.close()

    assert run(scenario()) == [b"HELLO\r", b"V2\r0\rP1\r"]


def test_a_file_is_asserted_against_the_manuals_transcript():
    assert_meets_transcript(DEVICES / "epson_escvp21.iot", "projector",
                            TRANSCRIPTS / "epson_escvp21_manual.txt")


def test_a_file_is_asserted_against_pyblackbirds_recording():
    assert_meets_transcript(DEVICES / "monoprice_blackbird.iot", "out1",
                            TRANSCRIPTS / "monoprice_blackbird_pyblackbird.txt")


def test_a_transcript_catches_a_file_that_drifted(tmp_path):
    drifted = (DEVICES / "epson_escvp21.iot").read_text().replace("MUTE=(?P<value>", "MUTE (?P<value>")
    path = tmp_path / "epson.iot"
    path.write_text(drifted)
    report = check_transcript(path, "projector", TRANSCRIPTS / "epson_escvp21_manual.txt")
    assert not report.all_matched
    assert report.stray == ["MUTE=OFF"]


def _cli(*args: str, **kw) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "pyiot", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env=env, **kw,
    )


def test_the_command_line_records_replays_and_exits_by_the_result(tmp_path):
    """simulate -> probe --record -> simulate --replay -> probe: exit 0 both times; a file
    that does not match exits 1."""
    record = tmp_path / "t.txt"
    relay = str(DEVICES / "relay.iot")
    sim = _cli("simulate", relay)
    try:
        first = sim.stdout.readline()
        url = first.rsplit(" on ", 1)[1].strip()
        probe_run = _cli("probe", relay, "--device", f"relay1={url}", "--record", str(record))
        out, err = probe_run.communicate(timeout=PATIENCE * 2)
        assert probe_run.returncode == 0, out + err
        assert "relayState" in out and "matched" in out
    finally:
        sim.terminate()
        sim.communicate(timeout=PATIENCE)
    assert "> RELAY?\\n" in record.read_text()
    replay = _cli("simulate", relay, "--replay", str(record))
    try:
        url = replay.stdout.readline().rsplit(" on ", 1)[1].strip()
        again = _cli("probe", relay, "--device", f"relay1={url}")
        out, err = again.communicate(timeout=PATIENCE * 2)
        assert again.returncode == 0, out + err
        wrong = tmp_path / "wrong.iot"
        wrong.write_text((DEVICES / "relay.iot").read_text().replace("RELAY(?P<value>", "RLY(?P<value>"))
        bad = _cli("probe", str(wrong), "--device", f"relay1={url}")
        out, err = bad.communicate(timeout=PATIENCE * 2)
        assert bad.returncode == 1, out + err
        assert "unmatched" in out
    finally:
        replay.terminate()
        replay.communicate(timeout=PATIENCE)
