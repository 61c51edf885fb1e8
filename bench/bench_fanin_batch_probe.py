"""A first measurement for issue 12, point 4: what would batching bring to queue fan-in?

    python bench/bench_fanin_batch_probe.py [--quick]

P producer processes put small ints into one bounded queue (maxsize 1000) that the parent
drains, as ``bench_scaling``'s fan-in case does; messages/s in total, timed from the first
message (not the producers' start-up). Each library runs two ways:

* ``one by one`` -- ``put(i)`` per message, ``get()`` per message (what users write today);
* ``batches of 64`` -- ``put(list_of_64)`` / ``get()`` per list, counted as 64 messages: the
  upper bound of a ``put_many``/``get_many`` that takes the queue's lock once per batch
  (no such API exists yet: this measures the lock and wake-up cost a batch would save).

It changes nothing in the queue; it only says whether batching is worth building.
"""

from __future__ import annotations

import multiprocessing
import time
from typing import Any

import plait

MAXSIZE = 1000
BATCH = 64


def produce(q: Any, n: int, batch: int) -> None:
    if batch == 1:
        for i in range(n):
            q.put(i)
    else:
        chunk = list(range(batch))
        for _ in range(n // batch):
            q.put(chunk)
    q.put(None)


def run_once(lib: str, producers: int, per_producer: int, batch: int) -> float:
    ctx = multiprocessing.get_context("forkserver")
    q: Any = plait.Queue(MAXSIZE) if lib == "plait.Queue" else ctx.Queue(MAXSIZE)
    procs = [ctx.Process(target=produce, args=(q, per_producer, batch)) for _ in range(producers)]
    for p in procs:
        p.start()
    first = q.get(timeout=60)  # the clock starts once a producer is up (not its start-up)
    started = time.perf_counter()
    done = 1 if first is None else 0
    got = 0
    while done < producers:
        item = q.get(timeout=60)
        if item is None:
            done += 1
        else:
            got += 1 if batch == 1 else len(item)
    elapsed = time.perf_counter() - started
    for p in procs:
        p.join(10)
    return got / elapsed


def main() -> None:
    from _harness import Bench

    bench = Bench.from_argv("fanin_batch_probe", description=__doc__)
    per = bench.scale(100_000, quick=20_000)
    rounds = bench.scale(3, quick=1)
    for producers in (2, 4):
        for batch, how in ((1, "one by one"), (BATCH, f"batches of {BATCH}")):
            case = f"fan-in probe, {producers} producers, {how}"
            for lib in ("multiprocessing.Queue", "plait.Queue"):
                run_once(lib, producers, per // 10, batch)  # warm-up
                got = [run_once(lib, producers, per, batch) for _ in range(rounds)]
                value = sorted(got)[len(got) // 2]
                bench.record(
                    case,
                    lib,
                    value,
                    "msg/s",
                    baseline="multiprocessing.Queue",
                    better="higher",
                    samples=got,
                )
                print(f"{case:45} {lib:24} {value:,.0f} msg/s", flush=True)
    bench.note(
        "A probe, not a feature: 'batches of 64' sends lists of 64 ints, the upper bound of "
        "a put_many/get_many that takes the lock once per batch. Producers start from the "
        "fork server; the parent drains."
    )
    bench.save()


if __name__ == "__main__":
    main()
