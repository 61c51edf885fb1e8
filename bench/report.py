"""Assemble ``bench/results/*.json`` into BENCHMARKS.md.

    python bench/report.py

One section per topic (a table of medians, ratios against the baseline measured in the
same run, and the issue's target where one is set), under a header naming the machine.
A topic with no results file here keeps the section BENCHMARKS.md already has, so one
engineer's run never erases another's figures.
"""

from __future__ import annotations

import datetime as _dt
import json
import re
import sys
from pathlib import Path
from typing import Any

from _harness import RESULTS_DIR, format_value, machine_info

ROOT = Path(__file__).resolve().parent.parent
OUTPUT = ROOT / "BENCHMARKS.md"
SECTION = re.compile(r"<!-- topic:(?P<topic>[\w-]+) -->\n.*?<!-- /topic:(?P=topic) -->\n", re.S)

INTRO = """\
# Benchmarks

plait and its peers, measured in the same run on the same machine; each figure is a median
of repeats. **ratio** is the figure divided by the baseline's figure from that run (for a
rate such as tasks/s, higher is better; for seconds or bytes, lower is better). **target**
is the bound the issue sets, where it sets one. Regenerate with
`python bench/bench_<topic>.py` and then `python bench/report.py`; each section says when
and where it was measured. Timings on a shared 2-core machine move by 10-20 % between runs:
read ratios, not absolute figures.
"""


def _machine_line(machine: dict[str, Any]) -> str:
    gil = "" if machine.get("gil", True) else ", free-threaded"
    return (
        f"{machine.get('cpu', '?')}, {machine.get('cores', '?')} cores "
        f"({machine.get('usable_cores', '?')} usable), {machine.get('python', '?')}{gil}, "
        f"{machine.get('platform', '?')}, plait {machine.get('plait', '?')}"
    )


def render_topic(data: dict[str, Any]) -> str:
    """One topic's section, between markers that later runs recognise."""
    topic = data["topic"]
    results: list[dict[str, Any]] = data["results"]
    baselines = {(r["case"], r["baseline"]) for r in results if r.get("baseline")}
    quick = " (quick run: small sizes)" if data.get("quick") else ""
    lines = [
        f"<!-- topic:{topic} -->",
        f"## {topic}",
        "",
        f"Measured {data.get('date', '?')}{quick} on {_machine_line(data.get('machine', {}))}.",
        "",
        "| case | implementation | median | ratio | vs | target |",
        "|---|---|---:|---:|---|---|",
    ]
    for r in results:
        target = r.get("target") or ""
        if r.get("meets") is not None:
            target += " ✅" if r["meets"] else " ❌"
        if r.get("ratio") is not None:
            ratio, vs = f"{r['ratio']:.2f}x", r["baseline"]
        elif (r["case"], r["impl"]) in baselines:
            ratio, vs = "1.00x", "(baseline)"
        else:
            ratio, vs = "", ""
        impl = f"{r['impl']} ({r['note']})" if r.get("note") else r["impl"]
        lines.append(
            f"| {r['case']} | {impl} | {format_value(r['value'], r['unit'])} | "
            f"{ratio} | {vs} | {target} |"
        )
    notes = data.get("notes") or []
    if notes:
        lines.append("")
        lines.extend(f"- {note}" for note in notes)
    lines += ["", f"<!-- /topic:{topic} -->", ""]
    return "\n".join(lines)


def _existing_sections(text: str) -> dict[str, str]:
    return {m.group("topic"): m.group(0) for m in SECTION.finditer(text)}


def build(results_dir: Path = RESULTS_DIR, previous: str = "") -> str:
    """The whole of BENCHMARKS.md from the results files (and the previous text)."""
    sections = _existing_sections(previous)
    for path in sorted(results_dir.glob("*.json")):
        data = json.loads(path.read_text())
        sections[data["topic"]] = render_topic(data)
    today = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d")
    header = [
        INTRO,
        f"Report assembled {today}. This machine: {_machine_line(machine_info())}.",
        "",
    ]
    if sections:
        header.append("Topics: " + ", ".join(f"[{t}](#{t})" for t in sorted(sections)) + ".")
        header.append("")
    body = [sections[topic] for topic in sorted(sections)]
    return "\n".join(header) + "\n" + "\n".join(body)


def main() -> int:
    previous = OUTPUT.read_text() if OUTPUT.exists() else ""
    OUTPUT.write_text(build(previous=previous))
    print(f"wrote {OUTPUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
