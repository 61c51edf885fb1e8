"""The seed's thread and process programs run with plait's drop-ins and print what the seed
says they print.

Each program in ``tests/seeds/`` is the seed's own code with ``import plait as threading``
(or ``from plait import Process``) and shorter sleeps. It runs as its own program, because
daemon threads and process start-up only show their behaviour at interpreter exit.

Output is checked by fragments, not whole lines: ``print(a, b)`` writes its pieces one by
one, so two threads' lines may interleave. Only orders that the semantics guarantee are
checked (``join()`` returns after the thread's last line), never orders that depend on how
long a sleep lasts — with one exception named below, where the seed's point is a race
between a sleep and the interpreter's exit, and the margin is 0.1 s or more.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import plait

SEEDS = Path(__file__).parent / "seeds"

needs_thread = pytest.mark.skipif(
    not hasattr(plait, "Thread"), reason="plait.Thread does not exist yet"
)
needs_process = pytest.mark.skipif(
    not hasattr(plait, "Process"), reason="plait.Process does not exist yet"
)


def run_seed(name: str, *, unbuffered: bool = True) -> str:
    """Run ``tests/seeds/<name>.py`` as ``__main__``; return its stdout, fail on an error.

    Thread programs run unbuffered so that lines appear in the order they were printed.
    Process programs run buffered: the seed's ``print('hello', name, ...)`` writes its
    pieces one by one, and unbuffered children writing at once interleave the pieces
    (as they would with multiprocessing); buffered, each child writes its lines at exit.
    """
    env = dict(os.environ, PYTHONIOENCODING="utf-8", PYTHONUNBUFFERED="1")
    if not unbuffered:
        env.pop("PYTHONUNBUFFERED")
    done = subprocess.run(
        [sys.executable, str(SEEDS / f"{name}.py")],
        capture_output=True,
        text=True,
        encoding="utf-8",
        cwd=SEEDS,
        env=env,
        stdin=subprocess.DEVNULL,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, f"{name} exited with {done.returncode}:\n{done.stderr}"
    assert "Traceback" not in done.stderr, done.stderr
    return done.stdout


def in_order(out: str, *fragments: str) -> None:
    """Each fragment occurs in ``out``, after the one before it."""
    position = 0
    for fragment in fragments:
        found = out.find(fragment, position)
        assert found >= 0, f"{fragment!r} missing after position {position} in:\n{out}"
        position = found + len(fragment)


def present(out: str, *fragments: str) -> None:
    for fragment in fragments:
        assert fragment in out, f"{fragment!r} missing from:\n{out}"


MUSIC_BEGIN = "Begin listening to 过火."
MUSIC_END = "end listening"
BLOG_BEGIN = "Begin recording the 博客园."
BLOG_END = "end recording"
ALL_OVER = "all over"


@needs_thread
@pytest.mark.parametrize("name", ["thread_direct", "thread_subclass"])
def test_two_threads_run_and_are_named(name: str) -> None:
    out = run_seed(name)
    present(out, "now time-->", "线程1--》》", "线程2--》》")
    for num in ("0.1", "0.2"):
        in_order(out, f"running on number:{num}", f"stop on number:{num}")
    # Thread names follow threading's numbering (the direct form adds the target's name).
    suffix = " (sayhi)" if name == "thread_direct" else ""
    assert f"Thread-1{suffix}" in out
    assert f"Thread-2{suffix}" in out


@needs_thread
def test_no_join_prints_everything() -> None:
    """No join: 'all over' comes when main is done, the program still waits for both."""
    out = run_seed("join_none")
    in_order(out, MUSIC_BEGIN, MUSIC_END)
    in_order(out, BLOG_BEGIN, BLOG_END)
    present(out, ALL_OVER)


@needs_thread
def test_join_each_runs_them_one_after_the_other() -> None:
    out = run_seed("join_each")
    in_order(out, MUSIC_BEGIN, MUSIC_END, BLOG_BEGIN, BLOG_END, ALL_OVER)


@needs_thread
def test_join_t1_waits_for_music_only() -> None:
    out = run_seed("join_t1")
    in_order(out, MUSIC_BEGIN, MUSIC_END, ALL_OVER)
    in_order(out, BLOG_BEGIN, BLOG_END)  # the program still waits for t2 at exit


@needs_thread
def test_join_t2_waits_for_blog() -> None:
    out = run_seed("join_t2")
    in_order(out, BLOG_BEGIN, BLOG_END, ALL_OVER)
    in_order(out, MUSIC_BEGIN, MUSIC_END)


@needs_thread
def test_daemon_all_are_cut_off() -> None:
    """Both daemon: the program exits right after 'all over'; no 'end' line (the exception
    named above: it relies on exit taking less than the 0.1 s sleep)."""
    out = run_seed("daemon_all")
    present(out, MUSIC_BEGIN, BLOG_BEGIN, ALL_OVER)
    assert MUSIC_END not in out
    assert BLOG_END not in out


@needs_thread
def test_daemon_t1_still_ends_because_t2_is_waited_for() -> None:
    out = run_seed("daemon_t1")
    in_order(out, BLOG_BEGIN, BLOG_END)
    present(out, ALL_OVER, MUSIC_END)


@needs_thread
def test_daemon_t2_is_cut_off() -> None:
    """t2 daemon: exit waits for t1 (0.1 s) only; t2's 0.5 s sleep never ends."""
    out = run_seed("daemon_t2")
    in_order(out, MUSIC_BEGIN, MUSIC_END)
    present(out, ALL_OVER, BLOG_BEGIN)
    assert BLOG_END not in out


@needs_process
def test_process_direct() -> None:
    out = run_seed("process_direct", unbuffered=False)
    for i in range(3):
        in_order(out, f"hello alvin:{i}", "end")
    assert out.rstrip().endswith("end")


@needs_process
def test_process_subclass() -> None:
    out = run_seed("process_subclass", unbuffered=False)
    for i in range(1, 4):
        in_order(out, f"hello MyProcess-{i}", "end")
    assert out.rstrip().endswith("end")
