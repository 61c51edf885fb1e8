"""Queue fan-in, one by one and in batches: N producer processes into one consumer.

    python bench/bench_fanin_batch.py [--quick] [--producers 2,4,8] [--topic T] [--out-dir D]

(``--producers 8,15 --topic fanin_16`` is the lent 16-core machine's run: its own topic, so
the 2-core table stays.)

Issue 12, point 4. P producer processes put small ints into one bounded queue that the
parent drains; messages/s in total, timed from the moment every producer is up and told to
go (the producers' start-up is not timed, and none runs alone at the start). Two ways of
writing it:

* ``one by one`` -- ``put(i)`` per message, ``get()`` per message;
* ``batches`` -- ``put_many(64 items)`` / ``get_many(1024)``: plait's and faster-fifo's
  batch calls (``multiprocessing.Queue`` has none: it runs one by one only, as the
  baseline of both).

The queues: ``plait.Queue(1000)``, ``multiprocessing.Queue(1000)`` and ``faster_fifo.Queue``
(bounded by bytes: its default 200,000), all from the fork server's processes.
"""

from __future__ import annotations

import multiprocessing
import queue as _stdqueue
import time
from typing import Any

import plait

MAXSIZE = 1000
BATCH = 64
GET_MANY = 1024
TOTAL = 200_000  # messages per run, over all producers


def _make(lib: str, ctx: Any) -> Any:
    if lib == "plait.Queue":
        return plait.Queue(MAXSIZE)
    if lib == "faster_fifo.Queue":
        import faster_fifo

        return faster_fifo.Queue()
    return ctx.Queue(MAXSIZE)


def produce(q: Any, n: int, batch: int, ready: Any, go: Any) -> None:
    ready.release()
    go.wait(60)
    if batch == 1:
        put = q.put
        for i in range(n):
            put(i)
    else:
        chunk = list(range(batch))
        put_many = q.put_many
        for _ in range(n // batch):
            while True:
                try:
                    put_many(chunk)
                    break
                except _stdqueue.Full:  # faster-fifo's put_many gives up after its timeout
                    continue
    q.put(None)


def run_once(lib: str, producers: int, total: int, batch: int) -> float:
    ctx = multiprocessing.get_context("forkserver")
    q = _make(lib, ctx)
    per = total // producers // BATCH * BATCH
    ready, go = ctx.Semaphore(0), ctx.Event()
    procs = [
        ctx.Process(target=produce, args=(q, per, batch, ready, go)) for _ in range(producers)
    ]
    for p in procs:
        p.start()
    try:
        for _ in procs:  # every producer is up before any puts: all of them run all along
            if not ready.acquire(timeout=60):
                raise TimeoutError("a producer did not start")
        go.set()
        started = time.perf_counter()
        done = got = 0
        if batch == 1:
            get = q.get
            while done < producers:
                item = get(timeout=60)
                if item is None:
                    done += 1
                else:
                    got += 1
        else:
            while done < producers:
                items = (
                    q.get_many(GET_MANY, timeout=60)
                    if lib == "plait.Queue"
                    else q.get_many(timeout=60, max_messages_to_get=GET_MANY)
                )
                nones = items.count(None)
                done += nones
                got += len(items) - nones
        elapsed = time.perf_counter() - started
    finally:
        for p in procs:
            p.join(30)
            if p.is_alive():
                p.kill()
                p.join()
    return got / elapsed


def main() -> None:
    import argparse
    from pathlib import Path

    from _harness import Bench

    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--producers", default="2,4,8", help="producer counts, comma-separated")
    parser.add_argument("--topic", default="fanin_batch")
    parser.add_argument("--out-dir", type=Path, default=None)
    own, rest = parser.parse_known_args()
    counts = [int(x) for x in own.producers.split(",")]
    bench = Bench.from_argv(own.topic, rest, description=__doc__)
    total = bench.scale(TOTAL, quick=100_000)
    rounds = bench.scale(3, quick=1)
    try:
        import faster_fifo  # noqa: F401

        peers = ["faster_fifo.Queue"]
    except ImportError:  # pragma: no cover - the bench extra installs it
        peers = []
        bench.note("faster-fifo is not installed: its rows are missing.")
    ways = (
        (1, "one by one", ["multiprocessing.Queue", *peers, "plait.Queue"]),
        (BATCH, f"put_many({BATCH})/get_many({GET_MANY})", [*peers, "plait.Queue"]),
    )
    gains = []
    for producers in counts:
        base = None
        plait_rates = {}
        for batch, how, libs in ways:
            case = f"fan-in, {producers} producers, {how}"
            for lib in libs:
                run_once(lib, producers, total // 10, batch)  # warm-up
                got = [run_once(lib, producers, total, batch) for _ in range(rounds)]
                value = sorted(got)[len(got) // 2]
                if lib == "multiprocessing.Queue":
                    base = value
                if lib == "plait.Queue":
                    plait_rates[batch] = value
                goal = {}
                if batch == 1 and lib == "plait.Queue":  # issue 12: >= 2x at every count
                    goal = {"target": ">= 2x multiprocessing.Queue", "target_ratio": 2.0}
                bench.record(
                    case,
                    lib,
                    value,
                    "msg/s",
                    baseline="multiprocessing.Queue" if batch == 1 else "faster_fifo.Queue",
                    better="higher",
                    samples=got,
                    **goal,
                )
                vs = f"  {value / base:.2f}x mp.Queue one by one" if base else ""
                print(f"{case:55} {lib:22} {value:12,.0f} msg/s{vs}", flush=True)
        gains.append(f"{producers} producers {plait_rates[BATCH] / plait_rates[1]:.2f}x")
    bench.note("plait put_many/get_many over plait one by one, same run: " + ", ".join(gains))
    bench.note(
        "Producers start from the fork server and wait until all are up; the parent drains, "
        "timed from its go. Batch rows compare with faster-fifo's put_many/get_many in the "
        "same run (multiprocessing.Queue has no batch calls); each plait batch row's ratio to "
        "plait one by one at the same producer count is the batching gain (issue 12 point 4)."
    )
    bench.save(own.out_dir)


if __name__ == "__main__":
    main()
