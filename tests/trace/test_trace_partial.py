"""A trace cut short -- by a crash, a kill, a fork, a truncated file -- is kept and read."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from trace_helpers import events

import plait
from plait.trace.export import load_trace

_CRASHING = """
import os, sys, threading, plait
lock = plait.Lock()
session = plait.trace(sys.argv[1], interval=0.02)
session.__enter__()
def work():
    for _ in range(5):
        with lock:
            pass
t = plait.Thread(target=work, name="worker")
t.start()
t.join()
session.recorder.flush()   # what the flusher does every interval
os._exit(9)                # a crash: nothing after this runs
"""


def _run(code: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_crashed_run_leaves_a_partial_trace_that_opens(tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    done = _run(_CRASHING, str(out))
    assert done.returncode == 9, done.stderr
    assert not out.exists() and (tmp_path / "out.json.parts").is_dir()
    data = load_trace(str(out))  # finds the parts folder the crash left
    assert data["otherData"]["plait"]["partial"] is True
    holds = [e for e in events(data, cat="lock") if e["ph"] == "b"]
    assert len(holds) == 5
    page = tmp_path / "page.html"
    from plait.cli import main

    assert main(["trace", "--html", str(page), str(out)]) == 0
    assert '"partial":true' in page.read_text()


def test_a_truncated_trace_file_opens_as_partial(tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    lock = plait.Lock()
    with plait.trace(out):
        for _ in range(20):
            with lock:
                pass
    whole = load_trace(str(out))
    assert whole["otherData"]["plait"]["partial"] is False
    text = out.read_text()
    cut = tmp_path / "cut.json"
    cut.write_text(text[: len(text) // 2])
    half = load_trace(str(cut))
    assert half["otherData"]["plait"]["partial"] is True
    assert 0 < len(half["traceEvents"]) < len(whole["traceEvents"])
    empty = tmp_path / "empty.json"
    empty.write_text("")
    with pytest.raises(ValueError, match="empty"):
        load_trace(str(empty))


_FORKING = """
import os, sys, plait
with plait.trace(sys.argv[1], interval=0.02):
    lock = plait.Lock()
    pid = os.fork()
    if pid == 0:
        with lock:
            pass
        os._exit(0)          # the child never leaves the with block
    os.waitpid(pid, 0)
    with lock:
        pass
print("parent done")
"""


def test_a_program_that_forks_finishes_its_trace_without_hanging(tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    done = _run(_FORKING, str(out))
    assert done.returncode == 0, done.stderr
    assert "parent done" in done.stdout
    data = json.loads(out.read_text())
    assert data["otherData"]["plait"]["partial"] is False
    assert any(e.get("pid") == _parent_pid(data) for e in events(data, cat="lock"))
    assert not (tmp_path / "out.json.parts").exists()


def _parent_pid(data: dict[str, list[dict[str, object]]]) -> int:
    (root,) = [
        e["pid"]
        for e in data["traceEvents"]
        if e["name"] == "process_name" and "traced program" in str(e["args"])
    ]
    assert isinstance(root, int)
    return root


def test_not_a_trace_is_a_clear_error(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.json"
    bogus.write_text("hello\nworld\n")
    from plait.cli import main

    assert main(["trace", "--html", str(tmp_path / "p.html"), str(bogus)]) == 2
    assert main(["trace", "--html", str(tmp_path / "p.html"), str(tmp_path / "nope.json")]) == 2
    assert not (tmp_path / "p.html").exists()
    assert os.listdir(tmp_path) == ["bogus.json"]
    assert plait.trace  # (the package still imports)
