"""Threads (seed S1, S2): overlapping waits, and what ``join()`` and daemon threads change.

The seed sleeps 1 s / 2 s and 3 s / 5 s; the tour sleeps 0.2 s / 0.4 s so it stays short.
The join/daemon variants each run as their own small program in a fresh interpreter,
because a daemon thread only shows what it is for when its program exits.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import plait
from plait import Thread
from plait.tour._framework import Scene, stamp

__all__ = ["SCENES"]

SHORT, LONG = 0.2, 0.4


def say(line: str) -> None:
    """Print ``line`` in one write, so lines from two threads never interleave."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _sayhi(num: float, t0: float) -> None:
    say(f"  running on number:{num}  {stamp(t0)}")
    time.sleep(num)
    say(f"  stop on number:{num}     {stamp(t0)}")


class _MyThread(Thread):
    """The seed's subclassed form: ``run()`` overridden."""

    def __init__(self, num: float, t0: float) -> None:
        super().__init__()
        self.num = num
        self.t0 = t0

    def run(self) -> None:
        _sayhi(self.num, self.t0)


def _timing() -> None:
    print(f"sayhi({SHORT}) and sayhi({LONG}), one after the other:")
    t0 = time.perf_counter()
    _sayhi(SHORT, t0)
    _sayhi(LONG, t0)
    sequential = time.perf_counter() - t0

    print("\nthe same in two plait.Thread(target=sayhi, args=(n,)):")
    t0 = time.perf_counter()
    threads = [Thread(target=_sayhi, args=(n, t0)) for n in (SHORT, LONG)]
    for t in threads:
        t.start()
    print(f"  main thread goes on at once  {stamp(t0)}   names: {[t.name for t in threads]}")
    for t in threads:
        t.join()
    threaded = time.perf_counter() - t0

    print("\nthe same with a Thread subclass that overrides run():")
    t0 = time.perf_counter()
    subclassed = [_MyThread(n, t0) for n in (SHORT, LONG)]
    for t in subclassed:
        t.start()
    for t in subclassed:
        t.join()
    subclass_time = time.perf_counter() - t0

    print(
        f"\nmeasured: sequential {sequential:.2f} s, two threads {threaded:.2f} s, "
        f"subclass {subclass_time:.2f} s"
    )
    print(overlap_verdict(threaded, SHORT, LONG, "two threads"))
    print(overlap_verdict(subclass_time, SHORT, LONG, "the subclass"))


def overlap_verdict(elapsed: float, short: float, long: float, who: str) -> str:
    """Did two sleeps of ``short`` and ``long`` seconds overlap, judging by ``elapsed``?
    Overlapping sleeps take about the longer one; back-to-back ones, about the sum."""
    total = short + long
    if elapsed < (long + total) / 2:
        return (
            f"{who}: the waits overlapped -- {elapsed:.2f} s is close to the longer sleep "
            f"({long} s), not the sum ({total:.1f} s)"
        )
    return (
        f"{who}: the waits did NOT overlap -- {elapsed:.2f} s is close to the sum of the "
        f"sleeps ({total:.1f} s), not the longer one ({long} s)"
    )


_PROGRAM_HEAD = f"""\
import atexit, sys, time
T0 = time.perf_counter()
def stamp():
    return "t+%.2fs" % (time.perf_counter() - T0)
def say(line):  # one write per line, so two threads' lines never interleave
    sys.stdout.write(line + "\\n")
    sys.stdout.flush()
import plait
import plait as threading  # the seed's program, with plait's drop-in Thread
def music(name):
    say("Begin listening to %s. %s" % (name, stamp()))
    time.sleep({SHORT})
    say("end listening %s" % stamp())
def blog(title):
    say("Begin recording the %s. %s" % (title, stamp()))
    time.sleep({LONG})
    say("end recording %s" % stamp())
t1 = threading.Thread(target=music, args=("a song",))
t2 = threading.Thread(target=blog, args=("blog",))
threads = [t1, t2]
atexit.register(lambda: say("[interpreter exits at %s]" % stamp()))
"""


@dataclass(frozen=True)
class Observed:
    """What one run of a variant showed, read from its output lines."""

    ends_before_all_over: frozenset[str]  # "music", "blog": 'end' lines before 'all over'
    ends_printed: frozenset[str]
    overlapped: bool  # blog began before music ended

    @classmethod
    def read(cls, output: str) -> Observed:
        lines = output.splitlines()

        def where(prefix: str) -> int:
            found = [i for i, line in enumerate(lines) if line.startswith(prefix)]
            return found[0] if found else len(lines)

        ends = {"music": where("end listening"), "blog": where("end recording")}
        all_over = where("all over")
        return cls(
            ends_before_all_over=frozenset(k for k, i in ends.items() if i < all_over),
            ends_printed=frozenset(k for k, i in ends.items() if i < len(lines)),
            overlapped=where("Begin recording") < ends["music"]
            and where("Begin listening") < ends["blog"],
        )

    def describe(self) -> str:
        def ends(which: frozenset[str]) -> str:
            if not which:
                return "no end line"
            if len(which) == 1:
                return f"only {next(iter(which))}'s end"
            return "both end lines"

        ran = "the threads ran " + (
            "at the same time" if self.overlapped else "one after the other"
        )
        return (
            f"'all over' after {ends(self.ends_before_all_over)}; "
            f"{ends(self.ends_printed)} printed; {ran}"
        )


def _expect(before: str, printed: str, overlapped: bool = True) -> Observed:
    return Observed(frozenset(before.split()), frozenset(printed.split()), overlapped)


# (what the variant's main block does, what to notice, what its output should show)
_VARIANTS: tuple[tuple[str, str, Observed], ...] = (
    (
        """
        for t in threads:
            t.start()
        say("all over %s" % stamp())
        """,
        "no join: 'all over' comes first; the program still waits for both threads to end",
        _expect("", "music blog"),
    ),
    (
        """
        for t in threads:
            t.start()
            t.join()
        say("all over %s" % stamp())
        """,
        "join inside the loop: the threads run one after the other (no overlap at all)",
        _expect("music blog", "music blog", overlapped=False),
    ),
    (
        """
        for t in threads:
            t.start()
        t1.join()
        say("all over %s" % stamp())
        """,
        "t1.join(): 'all over' after the short thread, before the long one ends",
        _expect("music", "music blog"),
    ),
    (
        """
        for t in threads:
            t.start()
        t2.join()
        say("all over %s" % stamp())
        """,
        "t2.join(): 'all over' after the long thread, so after both",
        _expect("music blog", "music blog"),
    ),
    (
        """
        for t in threads:
            t.daemon = True  # the seed's t.setDaemon(True)
            t.start()
        say("all over %s" % stamp())
        """,
        "both daemon: the program exits at once; no 'end' line is ever printed",
        _expect("", ""),
    ),
    (
        """
        t1.daemon = True
        for t in threads:
            t.start()
        say("all over %s" % stamp())
        """,
        "t1 daemon: the program waits for t2 (the long one), so t1 ends too",
        _expect("", "music blog"),
    ),
    (
        """
        t2.daemon = True
        for t in threads:
            t.start()
        say("all over %s" % stamp())
        """,
        "t2 daemon: the program waits only for t1; t2 is cut off without its 'end' line",
        _expect("", "music"),
    ),
    (
        """
        with plait.TaskGroup() as tg:  # plait's structured form: the group owns both
            tg.spawn(music, "a song")
            tg.spawn(blog, "blog")
        say("all over %s" % stamp())
        """,
        "plait.TaskGroup: the block ends when both threads have, so nothing is abandoned",
        _expect("music blog", "music blog"),
    ),
)


def _child_env() -> dict[str, str]:
    env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONIOENCODING="utf-8")
    src = str(Path(plait.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH", "")) if p)
    return env


def run_program(source: str, timeout: float = 30.0) -> str:
    """Run ``source`` in a fresh interpreter; return its stdout (stderr is passed through)."""
    done = subprocess.run(
        [sys.executable, "-c", source],
        capture_output=True,
        text=True,
        encoding="utf-8",
        env=_child_env(),
        timeout=timeout,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    if done.returncode != 0:
        raise RuntimeError(f"variant failed with exit code {done.returncode}:\n{done.stderr}")
    return done.stdout


def _join_daemon() -> None:
    print(f"music sleeps {SHORT} s, blog sleeps {LONG} s; each variant is its own program:")
    matched = 0
    for index, (main, notice, expected) in enumerate(_VARIANTS, 1):
        body = textwrap.dedent(main).strip("\n")
        print(f"\n--- variant {index}: {notice}")
        print(textwrap.indent(body, "    | "))
        output = run_program(_PROGRAM_HEAD + body + "\n")
        print(textwrap.indent(output.rstrip("\n"), "    > "))
        observed = Observed.read(output)
        if observed == expected:
            matched += 1
            print(f"    observed: {observed.describe()} -- as described")
        else:
            print(f"    observed: {observed.describe()}")
            print(f"    -- NOT as described; expected: {expected.describe()}")
    print(f"\n{matched} of {len(_VARIANTS)} variants behaved as described", end="")
    print("." if matched == len(_VARIANTS) else " (a busy machine can delay a thread enough")
    if matched != len(_VARIANTS):
        print(" to reorder lines that are 0.2 s apart; rerun `plait tour threads-join-daemon`).")


SCENES: list[Scene] = [
    Scene(
        name="threads-timing",
        title="two sleeping functions, one after the other vs in two threads",
        shows="threads overlap their waits: two sleeps take as long as the longer one",
        run=_timing,
        seed="S1",
    ),
    Scene(
        name="threads-join-daemon",
        title="every join() / daemon variant of the seed's music-and-blog program",
        shows="join() makes the caller wait; a daemon thread is cut off when the program exits",
        run=_join_daemon,
        seed="S2",
    ),
]
