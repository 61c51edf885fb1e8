"""``plait run --green SCRIPT``: the stdlib's blocking calls switch inside the script's
green strands for the run, without the script calling ``plait.green.patch()`` (issue 14,
point 2, as gevent's ``monkey.patch_all()``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("greenlet", reason="green strands need the greenlet extra (plait[green])")

pytestmark = pytest.mark.timeout(60)

# Two green strands of one loop, each ``time.sleep`` between two prints. If the sleep
# switches, the second strand prints before the first wakes (a1 b1 a2 b2, or b1 a1 ...);
# if it blocks the loop's thread, each strand runs to its end in turn (a1 a2 b1 b2).
# An event the first strand waits for, set by the second, makes the order certain: it
# is only reached if the first strand's sleep let the second run.
SCRIPT = """
import threading, time
import plait

def first(seen):
    print("a1", flush=True)
    time.sleep(0.05)
    print("a2", "patched" if seen.is_set() else "blocked", flush=True)

def second(seen):
    print("b1", flush=True)
    seen.set()
    time.sleep(0.05)
    print("b2", flush=True)

async def main():
    seen = plait.Event()
    async with plait.TaskGroup() as tg:
        tg.spawn(first, seen, on="green")
        tg.spawn(second, seen, on="green")
    print("patched inside the run:", time.sleep.__module__ != "time")

plait.run(main)
"""


def _plait_run(script: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "plait.cli", "run", *flags, str(script)],
        capture_output=True,
        text=True,
        timeout=45,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def test_plait_run_green_makes_time_sleep_switch_in_green_strands(tmp_path: Path) -> None:
    script = tmp_path / "greens.py"
    script.write_text(SCRIPT)
    done = _plait_run(script, "--green")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "a2 patched" in lines, lines  # the second strand ran during the first's sleep
    assert lines.index("b1") < lines.index("a2 patched"), lines
    assert "patched inside the run: True" in lines


def test_plait_run_without_green_leaves_time_sleep_blocking(tmp_path: Path) -> None:
    script = tmp_path / "greens.py"
    script.write_text(SCRIPT)
    done = _plait_run(script)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[:3] == ["a1", "a2 blocked", "b1"], lines
    assert "patched inside the run: False" in lines
