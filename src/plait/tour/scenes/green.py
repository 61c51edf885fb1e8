"""Seed S17, S18: the seed's greenlet and gevent programs, as plait green strands.

* ``green-switch``: the seed's ``greenlet`` program (two functions switching by hand), then
  the same hand-over as two green strands that wait on each other's events -- nobody
  names the greenlet to switch to.
* ``green-sleep``: the seed's gevent ``foo``/``bar`` program: two strands that sleep 0.2 s
  and 0.5 s take about the longer sleep, not the sum (the seed sleeps 2 s and 5 s).
* ``green-urllib``: the seed's ``monkey.patch_all()`` + ``urllib`` program against three
  slow local HTTP endpoints (this tour cannot reach the internet): with
  ``plait.green.patch()``, three fetches in green strands take about the slowest, one
  after the other about the sum.

Green strands need the ``greenlet`` package (``pip install 'plait[green]'``); without it
each scene says so and returns.
"""

from __future__ import annotations

import http.server
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from typing import Any

import plait
from plait.tour._framework import Scene, stamp
from plait.tour.scenes.threads import overlap_verdict

__all__ = ["SCENES"]

FOO_S, BAR_S = 0.2, 0.5
DELAYS = {"/slow-0.2": 0.2, "/slow-0.3": 0.3, "/slow-0.4": 0.4}


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _have_greenlet() -> bool:
    try:
        import greenlet  # noqa: F401
    except ImportError:
        _say("  (skipped: green strands need greenlet -- pip install 'plait[green]')")
        return False
    return True


def _green_group(*bodies: Callable[[], Any]) -> list[Any]:
    async def main() -> list[Any]:
        async with plait.TaskGroup() as tg:
            tasks = [tg.spawn(body, on="green") for body in bodies]
        return [t.result() for t in tasks]

    return plait.run(main)  # type: ignore[no-any-return]


def _switch() -> None:
    if not _have_greenlet():
        return
    from greenlet import greenlet

    printed: list[str] = []
    print("the seed's greenlet program: test1 and test2 switch to each other by name")

    def test1() -> None:
        printed.append("12")
        gr2.switch()
        printed.append("34")
        gr2.switch()

    def test2() -> None:
        printed.append("56")
        gr1.switch()
        printed.append("78")

    gr1, gr2 = greenlet(test1), greenlet(test2)
    gr1.switch()
    print(f"  printed {' '.join(printed)}")

    print("\nthe same hand-over as two plait green strands: each waits for its turn")
    turns = [plait.Event() for _ in range(4)]
    seen: list[str] = []

    def first() -> None:
        seen.append("12")
        turns[0].set()
        turns[1].wait(5)
        seen.append("34")
        turns[2].set()

    def second() -> None:
        turns[0].wait(5)
        seen.append("56")
        turns[1].set()
        turns[2].wait(5)
        seen.append("78")

    _green_group(first, second)
    print(f"  printed {' '.join(seen)}")
    same = "the same order" if seen == printed else "a DIFFERENT order"
    print(f"\nmeasured: {same} as the hand-written switches, without naming who runs next")


def _sleep() -> None:
    if not _have_greenlet():
        return
    print(f"the seed's gevent program: foo sleeps {FOO_S} s, bar {BAR_S} s, as green strands")
    t0 = time.perf_counter()

    def foo() -> None:
        _say(f"  running in foo         {stamp(t0)}")
        plait.sleep(FOO_S)
        _say(f"  switch to foo again    {stamp(t0)}")

    def bar() -> None:
        _say(f"  switch to bar          {stamp(t0)}")
        plait.sleep(BAR_S)
        _say(f"  switch to bar again    {stamp(t0)}")

    _green_group(foo, bar)
    elapsed = time.perf_counter() - t0
    print(f"\nmeasured: {elapsed:.2f} s in all (one thread, one event loop)")
    print(overlap_verdict(elapsed, FOO_S, BAR_S, "the two green strands"))


class _Slow(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        time.sleep(DELAYS.get(self.path, 0.0))
        body = b"x" * 1000
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def _urllib() -> None:
    if not _have_greenlet():
        return
    import plait.green

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Slow)
    server.daemon_threads = True
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    t0 = time.perf_counter()

    def f(path: str) -> None:
        _say(f"  GET: {path}  {stamp(t0)}")
        start = time.perf_counter()
        with urllib.request.urlopen(base + path, timeout=10) as response:
            data = response.read()
        _say(f"  {len(data)} bytes received from {path}. time: {time.perf_counter() - start:.2f}")

    plait.green.patch()
    try:
        print("with plait.green.patch(): three fetches in green strands")
        _green_group(*[lambda p=p: f(p) for p in DELAYS])
        together = time.perf_counter() - t0
        print("\nthe same three, one after the other:")
        t0 = time.perf_counter()
        for path in DELAYS:
            f(path)
        apart = time.perf_counter() - t0
    finally:
        plait.green.unpatch()
        server.shutdown()
        server.server_close()
    slowest, total = max(DELAYS.values()), sum(DELAYS.values())
    print(f"\nmeasured: together {together:.2f} s, one after the other {apart:.2f} s")
    if together < (slowest + total) / 2:
        print(f"the green fetches overlapped: about the slowest ({slowest} s), not the sum")
    else:
        print(f"the green fetches did NOT overlap: about the sum ({total:.1f} s)")


SCENES = [
    Scene("green-switch", "greenlet's hand-written switches, as green strands",
          "two green strands hand over by waiting, in the seed's order", _switch, "S17"),
    Scene("green-sleep", "gevent's foo/bar sleeps, as green strands",
          "two sleeps on one loop overlap", _sleep, "S18"),
    Scene("green-urllib", "monkey.patch_all() + urllib, as plait.green.patch()",
          "blocking HTTP calls in green strands overlap", _urllib, "S18"),
]  # fmt: skip
