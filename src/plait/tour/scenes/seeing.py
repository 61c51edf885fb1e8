"""Seeing concurrency (seed S5, issue 13): deadlocks named, lock order checked, blocked loops
caught.

* ``seeing-deadlock``: the seed's deadlock program run twice, as written: by ``python``
  (it hangs: the scene stops it after a timeout) and by ``plait run`` (it ends with a report
  naming the threads, the locks and the lines, and exit status 3).
* ``seeing-lockorder``: two threads take two locks in opposite orders, one after the other
  -- this run cannot deadlock, yet debug mode's lock-order check reports the inversion.
* ``seeing-watchdog``: a coroutine calls ``time.sleep`` on its event loop; the watchdog
  reports the blocked loop while it is blocked, with the stack of the sleeping line.

Every verdict printed is computed from what the scene measured.
"""

from __future__ import annotations

import asyncio
import io
import os
import re
import subprocess
import sys
import tempfile
import time

import plait
from plait.tour._framework import Scene

__all__ = ["SCENES"]

HANG_TIMEOUT = 1.5  # how long the scene lets the plain-python run hang before stopping it

# The seed's deadlock program, as the seed writes it (its layout restored).
SEED_DEADLOCK = """\
import threading
import time

mutexA = threading.Lock()
mutexB = threading.Lock()


class MyThread(threading.Thread):
    def __init__(self):
        threading.Thread.__init__(self)

    def run(self):
        self.fun1()
        self.fun2()

    def fun1(self):
        mutexA.acquire()
        print("I am %s , get res: %s---%s" % (self.name, "ResA", time.time()))
        mutexB.acquire()
        print("I am %s , get res: %s---%s" % (self.name, "ResB", time.time()))
        mutexB.release()
        mutexA.release()

    def fun2(self):
        mutexB.acquire()
        print("I am %s , get res: %s---%s" % (self.name, "ResB", time.time()))
        time.sleep(0.2)
        mutexA.acquire()
        print("I am %s , get res: %s---%s" % (self.name, "ResA", time.time()))
        mutexA.release()
        mutexB.release()


if __name__ == "__main__":
    print("start---------------------------%s" % time.time())
    for i in range(0, 10):
        my_thread = MyThread()
        my_thread.start()
"""


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _run_program(argv: list[str], timeout: float) -> tuple[int | None, float, str, str]:
    """Run ``argv``; (exit status or ``None`` if it had to be stopped, seconds, out, err)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    started = time.perf_counter()
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
        code: int | None = proc.returncode
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        code = None
    return code, time.perf_counter() - started, out, err


def _deadlock() -> None:
    with tempfile.TemporaryDirectory(prefix="plait-tour-") as where:
        script = os.path.join(where, "seed_deadlock.py")
        with open(script, "w", encoding="utf-8") as f:
            f.write(SEED_DEADLOCK)
        _say("the seed's deadlock program (10 threads; fun1 takes A then B, fun2 B then A):")
        code, took, out, _ = _run_program([sys.executable, script], HANG_TIMEOUT)
        lines = len(out.splitlines())
        if code is None:
            _say(
                f"  python:    still running after {took:.2f} s, {lines} line(s) printed, "
                f"then silence -- stopped by this scene (it would hang for ever, and say "
                f"nothing about why)"
            )
        else:
            _say(f"  python:    ended by itself in {took:.2f} s, exit status {code} (no deadlock)")
        argv = [sys.executable, "-m", "plait.cli", "run", script]
        code, took, out, err = _run_program(argv, 30.0)
        threads = sorted(set(re.findall(r"thread '(Thread-\d+)'", err)))
        locks = sorted(set(re.findall(r"plait\.Lock '(mutex[AB])'", err)))
        waits = sorted(set(re.findall(r"seed_deadlock\.py:(\d+) \((fun\d)\)", err)))
        if code is None:
            _say(f"  plait run: still running after {took:.2f} s -- the deadlock was NOT seen")
            return
        _say(
            f"  plait run: ended in {took:.2f} s with exit status {code}; its report names "
            f"thread(s) {', '.join(threads) or 'none'}, lock(s) {', '.join(locks) or 'none'}"
        )
        if waits:
            sites = ", ".join(f"line {n} in {fn}" for n, fn in waits)
            _say(f"             and the lines where each waits or took its lock: {sites}")
        report = err[err.find("deadlock: these strands") :].splitlines()[:3]
        for line in report:
            _say("    | " + line.strip())


INVERSION = """\
import threading

first = threading.Lock()
second = threading.Lock()


def one():
    with first:
        with second:
            print("one took first, then second")


def two():
    with second:
        with first:
            print("two took second, then first")


for body in (one, two):  # one after the other: never both at once, so never a deadlock
    t = threading.Thread(target=body)
    t.start()
    t.join()
print("done")
"""


def _lockorder() -> None:
    with tempfile.TemporaryDirectory(prefix="plait-tour-") as where:
        script = os.path.join(where, "inversion.py")
        with open(script, "w", encoding="utf-8") as f:
            f.write(INVERSION)
        _say("thread one takes first then second; after it ends, thread two takes them the")
        _say("other way round -- under `plait run` (debug mode: lock order is checked):")
        argv = [sys.executable, "-m", "plait.cli", "run", script]
        code, took, out, err = _run_program(argv, 30.0)
    finished = out.splitlines()[-1:] == ["done"]
    warned = err.count("LockOrderWarning")
    ran = "it ran to the end" if finished and code == 0 else f"exit status {code}"
    _say(f"  {ran} in {took:.2f} s, printing {len(out.splitlines())} line(s)")
    if warned:
        _say(
            f"  this run did not deadlock, yet lockdep reported {warned} LockOrderWarning(s): "
            f"the order that can deadlock on another run, with both orders' lines:"
        )
        for line in err.splitlines():
            if "inversion.py" in line and ("held at" in line or "taken at" in line):
                _say("    | " + line.strip().replace(where + os.sep, ""))
    else:
        _say("  no LockOrderWarning was reported: the inversion went unseen")


def _watchdog() -> None:
    out = io.StringIO()
    blocked_for = 0.3
    lines: list[int] = []  # the line of the blocking call

    async def main() -> tuple[list[str], float]:
        dog = plait.diagnostics.watch_loops(0.1, file=out)
        try:
            dog.watch(asyncio.get_running_loop())
            await asyncio.sleep(0.1)
            started = time.perf_counter()
            lines.append(sys._getframe().f_lineno + 1)
            time.sleep(blocked_for)  # a blocking call in a coroutine: the loop stops
            seen_while_blocked = list(dog.reports)
            return seen_while_blocked, time.perf_counter() - started
        finally:
            dog.stop()

    reports, took = asyncio.run(main())
    _say(f"a coroutine called time.sleep({blocked_for}) on its event loop ({took:.2f} s blocked)")
    if not reports:
        _say("the watchdog reported nothing while the loop was blocked")
        return
    first = reports[0].splitlines()
    innermost = first[-1]
    at_sleep = f"seeing.py:{lines[0]} " in innermost
    points = "the time.sleep line" if at_sleep else "another line, not the time.sleep"
    _say(
        f"the watchdog reported {len(reports)} blocked loop(s) before the call returned; "
        f"the innermost frame of the stack it read is {points}:"
    )
    _say("    | " + re.sub(r" <[^>]*>", "", first[0]))
    for line in first[1:][-2:]:
        _say("    | " + line.strip())


SCENES: list[Scene] = [
    Scene(
        "seeing-deadlock",
        "the seed's deadlock: python hangs, plait run names it",
        "the same unmodified program hangs silently under python and ends within a second "
        "under `plait run` with the threads, locks and lines of the cycle",
        _deadlock,
        seed="S5",
    ),
    Scene(
        "seeing-lockorder",
        "a lock-order inversion caught on a run that did not deadlock",
        "debug mode records the order locks are taken in and warns the first time both "
        "orders have been seen, before any hang",
        _lockorder,
        seed="S5",
    ),
    Scene(
        "seeing-watchdog",
        "a blocking call in a coroutine, caught while it blocks",
        "the watchdog reports an event loop blocked for over 100 ms, with the stack of the "
        "blocking line at that moment",
        _watchdog,
        seed="S16",
    ),
]
