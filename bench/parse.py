"""Parse + check + compile time: every file in devices/, and a generated 10,000-line file.

The baseline, measured in the same run, is Lark's bare LALR parse of the same text (no model,
no checks, no machine tables): what is left is pyiot's own work.

    python bench/parse.py [--lines 10000]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pyiot.compiler import Program  # noqa: E402
from pyiot.lang import load  # noqa: E402
from pyiot.lang.parser import _lark  # noqa: E402

DEVICE = """
device Amp{n}(zone: int) "generated amplifier {n}" {{
    transport serial {{ baud 9600 }}
    framing line "\\r\\n" prompt "#" echo
    timeout 500ms retries 2
    query status "?{{zone}}" every 5s reply /^>(?P<zone>{{zone}})(?P<power>\\d\\d)(?P<volume>\\d\\d)$/
    property power: bool from status.power set "<{{zone}}PR{{value}}" {{ map {{ "01" = true, "00" = false }} }}
    property volume: int 0..38 from status.volume set "<{{zone}}VO{{value:02d}}"
    property input: enum {{ tv = "1", dvd = "2", aux = "3" }} {{
        query "?{{zone}}IN" reply /^IN(?P<value>\\d)$/ set "<{{zone}}IN{{value}}" poll every 10s when power == true
    }}
}}
thing house{n} {{ component zone{n}: Amp{n}(zone = 11) on serial "/dev/ttyUSB0" }}
"""


def generated(lines: int) -> str:
    per_device = DEVICE.count("\n")
    return "".join(DEVICE.format(n=n) for n in range(lines // per_device + 1))


def best_of(runs: int, work) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lines", type=int, default=10_000)
    args = parser.parse_args()
    _lark()  # build the parser once, as a long-running process would
    sources = {str(p.relative_to(ROOT)): p.read_text() for p in sorted(ROOT.glob("devices/*.iot"))}
    big = generated(args.lines)
    print(f"{'input':<34}{'lines':>8}{'lark only ms':>14}{'pyiot ms':>11}")
    total_lark = total_pyiot = 0.0
    for name, text in sources.items():
        lark_s = best_of(5, lambda t=text: _lark().parse(t))
        pyiot_s = best_of(5, lambda t=text, n=name: Program.from_model(load(t, n)))
        total_lark += lark_s
        total_pyiot += pyiot_s
        print(f"{name:<34}{text.count(chr(10)):>8}{lark_s * 1e3:>14.2f}{pyiot_s * 1e3:>11.2f}")
    print(
        f"{'all of devices/':<34}{'':>8}{total_lark * 1e3:>14.2f}{total_pyiot * 1e3:>11.2f}"
        "   (target: well under 1000 ms)"
    )
    lark_s = best_of(3, lambda: _lark().parse(big))
    pyiot_s = best_of(3, lambda: Program.from_model(load(big, "generated.iot")))
    print(
        f"{'generated':<34}{big.count(chr(10)):>8}{lark_s * 1e3:>14.2f}{pyiot_s * 1e3:>11.2f}"
        "   (target: under 1000 ms)"
    )


if __name__ == "__main__":
    main()
