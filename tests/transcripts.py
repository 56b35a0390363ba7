"""Assert a device file against a transcript: a recording of a real device as a regression test.

A transcript (docs/transcripts.md) is what `pyiot probe --record` writes; this helper serves it
as a device (`pyiot.probe.Replay`, over real TCP) and probes the file's component against it:
every query the file sends must be answered as its patterns expect, and the recording must hold
no line that no pattern of the file matches.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from pyiot.lang import load_file
from pyiot.probe import Report, Transcript, probe_transcript


def check_transcript(iot_file: str | Path, component: str, transcript: str | Path) -> Report:
    model = load_file(iot_file)
    return asyncio.run(probe_transcript(model, component, Transcript.load(transcript)))


def assert_meets_transcript(iot_file: str | Path, component: str, transcript: str | Path) -> None:
    report = check_transcript(iot_file, component, transcript)
    assert report.all_matched and not report.stray, "\n".join(report.lines())
