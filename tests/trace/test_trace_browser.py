"""The offline page in a real headless browser: Debian's ``chromium``, driven from the
command line (``--dump-dom`` after the page's JS ran, ``--screenshot``).

CI installs it (``.ci/run``); elsewhere ``apt-get install chromium``. Without it the test
skips and says so. The screenshot is kept in ``test-artifacts/`` (git-ignored; set
``PLAIT_TEST_ARTIFACTS`` to put it elsewhere).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
from pathlib import Path

import pytest

import plait
from plait.testing import wait_parked
from plait.trace.export import load_trace
from plait.trace.html import write_html

_BROWSER = next(
    (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)),
    None,
)
pytestmark = pytest.mark.skipif(
    _BROWSER is None,
    reason="no headless browser: install Debian's chromium (apt-get install chromium; "
    ".ci/run does in CI) to run the offline page in a real browser",
)
_ARTIFACTS = Path(
    os.environ.get("PLAIT_TEST_ARTIFACTS", Path(__file__).resolve().parents[2] / "test-artifacts")
)


def _browse(page: Path, profile: Path, *extra: str) -> str:
    assert _BROWSER is not None
    command = [_BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
               f"--user-data-dir={profile}", "--hide-scrollbars", "--window-size=1200,900",
               "--virtual-time-budget=3000", *extra, page.as_uri()]  # fmt: skip
    done = subprocess.run(
        command,
        check=False,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def _record(out: Path) -> None:
    lock = plait.Lock()
    q: plait.Queue[int] = plait.Queue()
    took = threading.Event()

    def holder() -> None:
        with lock:
            took.set()
            wait_parked(on=lock, count=1, timeout=10)
        for i in range(5):
            q.put(i)

    def contender() -> None:
        assert took.wait(10)
        with lock:
            pass
        for _ in range(5):
            q.get(timeout=10)

    with plait.trace(out):
        threads = [plait.Thread(target=holder, name="holder"),
                   plait.Thread(target=contender, name="contender")]  # fmt: skip
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)


def test_page_shows_tracks_counts_and_summary_in_a_real_browser(tmp_path: Path) -> None:
    trace = tmp_path / "out.json"
    _record(trace)
    data = load_trace(str(trace))
    page = tmp_path / "out.html"
    write_html(data, str(page))
    expected_tracks = len({(e["pid"], e["tid"]) for e in data["traceEvents"] if e["ph"] == "X"})
    expected_slices = sum(1 for e in data["traceEvents"] if e["ph"] == "X")

    _ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = _ARTIFACTS / "trace-viewer.png"
    dom = _browse(page, tmp_path / "profile", "--dump-dom", f"--screenshot={shot}")
    assert shot.stat().st_size > 5000
    assert 'data-ready="1"' in dom, "the page's script did not finish"
    assert f'data-tracks="{expected_tracks}"' in dom
    assert f'data-slices="{expected_slices}"' in dom
    assert 'data-partial="0"' in dom
    rows = re.findall(r'class="track" data-pid="\d+" data-tid="\d+" data-slices="(\d+)"', dom)
    assert len(rows) == expected_tracks and sum(map(int, rows)) == expected_slices
    for name in ("thread holder", "thread contender"):
        assert f">{name}<" in dom
    assert re.search(r"<td>Lock#\d+</td><td>2</td>", dom), "lock table: two holds"
    assert re.search(r"<td>Queue#\d+</td><td>5</td><td>5</td>", dom), "channel table"
    assert "wait Lock#" in dom  # the legend names the object waited on

    # cut short: the page still opens and says it is partial
    cut = tmp_path / "cut.json"
    text = trace.read_text()
    cut.write_text(text[: len(text) * 2 // 3])
    partial_page = tmp_path / "cut.html"
    write_html(load_trace(str(cut)), str(partial_page))
    dom = _browse(partial_page, tmp_path / "profile", "--dump-dom")
    assert 'data-ready="1"' in dom and 'data-partial="1"' in dom
    assert re.search(r'<div id="partial">', dom), "the partial banner is shown"
