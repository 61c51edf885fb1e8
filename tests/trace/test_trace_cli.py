"""``plait trace -o``, ``plait trace --html`` and ``plait tour --trace``."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from trace_helpers import tracks

_SCRIPT = """
import sys, threading, queue
lock = threading.Lock()
q = queue.Queue()
def worker():
    for i in range(10):
        with lock:
            q.put(i)
threads = [threading.Thread(target=worker, name=f"w{n}") for n in range(2)]
for t in threads: t.start()
for t in threads: t.join()
open(sys.argv[1], "w").write(f"{q.qsize()} {sys.argv[2:]}")
"""


def _plait(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "plait", *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
    )


def test_trace_records_an_unmodified_program_and_writes_the_page(tmp_path: Path) -> None:
    script = tmp_path / "prog.py"
    script.write_text(textwrap.dedent(_SCRIPT))
    ran = tmp_path / "ran.txt"
    done = _plait("trace", "-o", "out.json", "--html", "out.html", str(script), str(ran), "x",
                  cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert ran.read_text() == "20 ['x']"  # the script's own arguments reached it
    data = json.loads((tmp_path / "out.json").read_text())
    assert {"thread w0", "thread w1"} <= set(tracks(data).values())
    summary = data["otherData"]["plait"]["summary"]
    assert sum(c["puts"] for c in summary["channels"]) == 20  # threading's Queue was plait's
    assert sum(row["holds"] for row in summary["locks"]) == 20
    page = (tmp_path / "out.html").read_text()
    assert "<script" in page and "http://" not in page and "https://" not in page
    again = _plait("trace", "--html", "again.html", "out.json", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "again.html").exists()


def test_unwritable_output_is_an_error_before_the_program_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from plait.cli import main

    script = tmp_path / "prog.py"
    script.write_text(textwrap.dedent(_SCRIPT))
    ran = tmp_path / "ran.txt"
    missing = str(tmp_path / "no" / "such" / "out.json")
    assert main(["trace", "-o", missing, str(script), str(ran)]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and "no/such" in err
    assert not ran.exists()
    assert main(["trace", "-o", str(tmp_path), str(script), str(ran)]) == 2
    assert "it is a folder" in capsys.readouterr().err
    assert not ran.exists()
    assert main(["trace", str(script)]) == 2
    assert "plait trace -o out.json SCRIPT" in capsys.readouterr().err


def test_tour_writes_a_trace_and_a_page_per_scene(tmp_path: Path) -> None:
    done = _plait("tour", "--trace", "traces", "primitives-deadlock", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    folder = tmp_path / "traces"
    assert sorted(p.name for p in folder.iterdir()) == [
        "primitives-deadlock.html",
        "primitives-deadlock.json",
    ]
    data = json.loads((folder / "primitives-deadlock.json").read_text())
    waits = data["otherData"]["plait"]["summary"]["objects"]
    assert any(row["timeouts"] for row in waits)  # the acquire that timed out is seen
    bad = _plait("tour", "--trace", "/proc/no-such/traces", "primitives-deadlock", cwd=tmp_path)
    assert bad.returncode == 2 and "cannot make the trace folder" in bad.stderr


_DEADLOCK = """
import threading
a, b = threading.Lock(), threading.Lock()
both = threading.Barrier(2)
def one():
    with a:
        both.wait()
        with b:
            pass
def two():
    with b:
        both.wait()
        with a:
            pass
threads = [threading.Thread(target=f, name=f.__name__) for f in (one, two)]
for t in threads: t.start()
for t in threads: t.join()
"""


def test_a_deadlocked_run_still_writes_its_trace(tmp_path: Path) -> None:
    script = tmp_path / "deadlock.py"
    script.write_text(textwrap.dedent(_DEADLOCK))
    done = _plait("trace", "-o", "out.json", str(script), cwd=tmp_path)
    assert done.returncode == 3, done.stderr  # plait run's deadlock exit
    assert "DeadlockError" in done.stderr
    data = json.loads((tmp_path / "out.json").read_text())
    assert {"thread one", "thread two"} <= set(tracks(data).values())
    waits = [e for e in data["traceEvents"] if e["ph"] == "X" and e["cat"] == "wait"]
    assert any(e["args"]["object"].startswith("Lock") for e in waits)
