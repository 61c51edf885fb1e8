"""Strands (issue 2, point 8): what a coroutine, thread and process strand costs.

    python bench/bench_strands.py [--quick]

* spawn+join of 100,000 coroutine strands: plait.TaskGroup vs asyncio.TaskGroup on the
  same loop (asyncio's, then uvloop's), and trio, anyio, gevent for reference;
* RSS per parked coroutine strand (20,000 strands waiting on an event) vs asyncio, trio,
  gevent and OS threads;
* ``plait.current_strand()`` from a thread and from a coroutine;
* thread strand start+join vs ``threading.Thread``;
* process strand round trip vs ``ProcessPoolExecutor.submit``.

The spawn and RSS figures each come from a fresh interpreter (``--child``), so one library's
allocations and imports never colour another's.
"""

from __future__ import annotations

import gc
import itertools
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import timeit
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from _harness import Bench, compare, measure

SPAWN_IMPLS_ASYNCIO = ["asyncio.TaskGroup", "plait.TaskGroup", "anyio (asyncio)", "trio", "gevent"]
SPAWN_IMPLS_UVLOOP = ["asyncio.TaskGroup", "plait.TaskGroup", "anyio (uvloop)"]
RSS_IMPLS = [
    "asyncio",
    "plait",
    "plait spawn(ev.async_wait)",
    "plait (asyncio.Event)",
    "trio",
    "gevent",
    "threads",
]


# -- work run in fresh child interpreters ----------------------------------------------


async def _anoop() -> None:
    pass


def _noop() -> None:
    pass


async def _asyncio_yield() -> None:
    import asyncio

    await asyncio.sleep(0)


async def _plait_yield() -> None:
    import plait

    await plait.async_sleep(0)


# What each spawned coroutine does: nothing, or yield once (issue 12's forms).
_BODIES: dict[str, Callable[[], Any]] = {
    "noop": _anoop,
    "asyncio.sleep(0)": _asyncio_yield,
    "plait.async_sleep(0)": _plait_yield,
}


def child_spawn(impl: str, loop: str, n: int, runs: int, body: str = "noop") -> list[float]:
    """Seconds to spawn and join ``n`` coroutine strands running ``body`` (no-op, or one
    yield), once per run (+1 warm-up)."""
    use_uvloop = loop == "uvloop"
    child = _BODIES[body]

    if impl == "gevent":
        import gevent

        out = []
        for _ in range(runs + 1):
            gc.collect()
            t0 = time.perf_counter()
            gevent.joinall([gevent.spawn(_noop) for _ in range(n)])
            out.append(time.perf_counter() - t0)
        return out[1:]

    if impl == "trio":
        import trio

        async def trio_main() -> list[float]:
            out = []
            for _ in range(runs + 1):
                gc.collect()
                t0 = time.perf_counter()
                async with trio.open_nursery() as nursery:
                    for _ in range(n):
                        nursery.start_soon(_anoop)
                out.append(time.perf_counter() - t0)
            return out[1:]

        result: list[float] = trio.run(trio_main)
        return result

    async def once() -> float:
        gc.collect()
        t0 = time.perf_counter()
        if impl == "asyncio.TaskGroup":
            import asyncio

            async with asyncio.TaskGroup() as tg:
                for _ in range(n):
                    tg.create_task(child())
        elif impl == "plait.TaskGroup":
            import plait

            async with plait.TaskGroup() as ptg:
                for _ in range(n):
                    ptg.spawn(child)
        elif impl.startswith("anyio"):
            import anyio

            async with anyio.create_task_group() as atg:
                for _ in range(n):
                    atg.start_soon(_anoop)
        else:
            raise ValueError(impl)
        return time.perf_counter() - t0

    async def main() -> list[float]:
        return [await once() for _ in range(runs + 1)][1:]

    if impl.startswith("anyio"):
        import anyio

        options = {"use_uvloop": use_uvloop}
        return anyio.run(main, backend="asyncio", backend_options=options)
    if impl == "plait.TaskGroup":
        import plait

        return plait.run(main, use_uvloop=use_uvloop)  # type: ignore[no-any-return]
    import asyncio

    if use_uvloop:
        import uvloop

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(main())
    return asyncio.run(main())


def _rss() -> int:
    import psutil

    gc.collect()
    return int(psutil.Process().memory_info().rss)


def child_rss(impl: str, n: int) -> dict[str, float]:
    """RSS growth per strand while ``n`` strands wait on an event.

    Every strand runs the same two-line waiter (``await ev.wait()``). A warm-up round of
    ``WARM`` strands first pays for first-use allocations; the measured round is the only
    large one, so its growth is fresh memory rather than reuse of freed blocks.
    """
    warm = min(1000, n)
    if impl == "threads":
        n = min(n, 2000)  # 20k OS threads is more than this check needs
        started = threading.Semaphore(0)

        def once(count: int) -> int:
            ev = threading.Event()

            def waiter() -> None:
                started.release()
                ev.wait()

            before = _rss()
            threads = [threading.Thread(target=waiter) for _ in range(count)]
            for t in threads:
                t.start()
            for _ in range(count):
                started.acquire()
            after = _rss()
            ev.set()
            for t in threads:
                t.join()
            return after - before

        once(min(warm, 100))
        return {"bytes": once(n) / n, "n": n}

    if impl == "gevent":
        import gevent
        import gevent.event

        def gonce(count: int) -> int:
            ev = gevent.event.Event()

            def waiter() -> None:
                ev.wait()

            before = _rss()
            greenlets = [gevent.spawn(waiter) for _ in range(count)]
            gevent.sleep(0)
            gevent.sleep(0)
            assert not any(g.dead for g in greenlets)
            after = _rss()
            ev.set()
            gevent.joinall(greenlets)
            return after - before

        gonce(warm)
        return {"bytes": gonce(n) / n, "n": n}

    if impl == "trio":
        import trio
        import trio.testing

        async def tonce(count: int) -> int:
            ev = trio.Event()

            async def waiter() -> None:
                await ev.wait()

            async with trio.open_nursery() as nursery:
                before = _rss()
                for _ in range(count):
                    nursery.start_soon(waiter)
                await trio.testing.wait_all_tasks_blocked()
                after = _rss()
                ev.set()
            return after - before

        async def tmain() -> int:
            await tonce(warm)
            return await tonce(n)

        return {"bytes": trio.run(tmain) / n, "n": n}

    import asyncio

    async def aonce(count: int) -> int:
        if impl == "asyncio":
            ev = asyncio.Event()

            async def waiter() -> None:
                await ev.wait()

            async with asyncio.TaskGroup() as tg:
                before = _rss()
                tasks = [tg.create_task(waiter()) for _ in range(count)]
                for _ in range(3):
                    await asyncio.sleep(0)
                assert not any(t.done() for t in tasks)
                after = _rss()
                ev.set()
            return after - before
        import plait

        if "asyncio.Event" in impl:
            aev = asyncio.Event()

            async def pwaiter() -> None:
                await aev.wait()

            release: Callable[[], None] = aev.set
        else:
            pev = _plait_event()()

            async def pwaiter() -> None:
                await pev.async_wait()

            release = pev.set
        async with plait.TaskGroup() as ptg:
            before = _rss()
            if impl == "plait spawn(ev.async_wait)":  # no wrapper coroutine (issue 12)
                ptasks = [ptg.spawn(pev.async_wait) for _ in range(count)]
            else:
                ptasks = [ptg.spawn(pwaiter) for _ in range(count)]
            for _ in range(3):
                await asyncio.sleep(0)
            assert all(t.kind == "async" and not t.done() for t in ptasks)
            after = _rss()
            release()
        return after - before

    async def amain() -> int:
        await aonce(warm)
        return await aonce(n)

    if impl.startswith("plait"):
        import plait

        return {"bytes": plait.run(amain) / n, "n": n}
    return {"bytes": asyncio.run(amain()) / n, "n": n}


def _plait_event() -> Any:
    import plait

    event = getattr(plait, "Event", None)
    if event is None:
        from plait._sync import Event as event
    return event


def run_child(*args: str) -> Any:
    """Run this file with ``--child ARGS`` in a fresh interpreter; return its JSON answer."""
    done = subprocess.run(
        [sys.executable, __file__, "--child", *args],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    if done.returncode != 0:
        raise RuntimeError(f"child {args} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def child_main(argv: list[str]) -> None:
    what, *rest = argv
    if what == "spawn":
        impl, loop, n, runs, *body = rest
        answer: Any = child_spawn(impl, loop, int(n), int(runs), *body)
    elif what == "rss":
        impl, n = rest
        answer = child_rss(impl, int(n))
    else:
        raise SystemExit(f"unknown child job {what!r}")
    print(json.dumps(answer))


# -- in-process measurements ----------------------------------------------------------


def per_call_ns(fn: Callable[[], object], number: int, repeat: int = 7) -> float:
    """Median ns per ``fn()`` call in a tight ``timeit`` loop (loop overhead included)."""
    times = timeit.Timer(fn).repeat(repeat=repeat, number=number)
    return statistics.median(times) / number * 1e9


def interleaved_ns(
    fns: dict[str, Callable[[], object]], number: int, rounds: int = 7
) -> dict[str, float]:
    """Like :func:`per_call_ns` for several functions, alternating between them each round
    so that a change in machine load affects them alike."""
    out: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            out[name].append(timeit.Timer(fn).timeit(number) / number * 1e9)
    return {name: statistics.median(values) for name, values in out.items()}


def bench_current_strand(bench: Bench) -> None:
    import asyncio

    import plait

    number = bench.scale(500_000, 50_000)
    case = "current_strand() from a thread"
    plait.current_strand()  # the main thread's strand is made on first use
    main_thread = interleaved_ns(
        {"std": threading.current_thread, "plait": plait.current_strand}, number
    )
    bench.record(
        case,
        "threading.current_thread()",
        main_thread["std"],
        "ns",
        baseline="threading.current_thread()",
    )
    bench.record(
        case,
        "plait.current_strand()",
        main_thread["plait"],
        "ns",
        baseline="threading.current_thread()",
        target="<= 150 ns",
        target_value=150,
    )
    in_thread: dict[str, float] = {}

    def in_plait_thread() -> None:
        plait.current_strand()
        in_thread["ns"] = per_call_ns(plait.current_strand, number)

    t = plait.Thread(target=in_plait_thread)
    t.start()
    t.join()
    bench.record(
        case,
        "plait.current_strand() in plait.Thread",
        in_thread["ns"],
        "ns",
        baseline="threading.current_thread()",
        target="<= 150 ns",
        target_value=150,
    )

    case = "current_strand() from a coroutine"
    figures: dict[str, float] = {}

    async def strand_body() -> None:
        plait.current_strand()
        figures.update(
            interleaved_ns({"asyncio": asyncio.current_task, "plait": plait.current_strand}, number)
        )

    async def main() -> None:
        async with plait.TaskGroup() as tg:
            tg.spawn(strand_body)

    plait.run(main)
    bench.record(
        case, "asyncio.current_task()", figures["asyncio"], "ns", baseline="asyncio.current_task()"
    )
    bench.record(
        case,
        "plait.current_strand()",
        figures["plait"],
        "ns",
        baseline="asyncio.current_task()",
        target="<= 300 ns",
        target_value=300,
    )


def bench_thread_start(bench: Bench) -> None:
    import plait

    number = bench.scale(500, 100)
    repeat = bench.scale(7, 3)
    case = "thread start+join"

    def std() -> None:
        t = threading.Thread(target=_noop)
        t.start()
        t.join()

    def pl() -> None:
        t = plait.Thread(target=_noop)
        t.start()
        t.join()

    def group() -> None:
        with plait.TaskGroup() as tg:
            tg.spawn(_noop)

    base = "threading.Thread"
    figures = compare(
        {base: std, "plait.Thread": pl, "plait.TaskGroup: spawn(on='thread')": group},
        repeat=repeat,
        number=number,
    )
    for impl, value in figures.items():
        note = "one group per thread: group enter/exit included" if "TaskGroup" in impl else ""
        bench.record(case, impl, value, "s/op", baseline=base, note=note)

    batch = 100

    def group_batch() -> None:
        with plait.TaskGroup() as tg:
            for _ in range(batch):
                tg.spawn(_noop)

    def std_batch() -> None:
        threads = [threading.Thread(target=_noop) for _ in range(batch)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    case = f"{batch} threads started, then all joined"
    n = max(1, number // batch)
    figures = compare(
        {"threading.Thread": std_batch, "plait.TaskGroup": group_batch}, repeat=repeat, number=n
    )
    for impl, value in figures.items():
        bench.record(case, impl, value / batch, "s/op", baseline="threading.Thread")


def _square(x: int) -> int:
    return x * x


def bench_process_round_trip(bench: Bench) -> None:
    import plait
    from plait._ipc.context import get_context

    ctx = get_context()
    number = bench.scale(10, 3)
    repeat = bench.scale(5, 3)
    case = "process round trip, new process each"
    base = "ProcessPoolExecutor(1): submit+result"

    def executor_cold() -> None:
        with ProcessPoolExecutor(1, mp_context=ctx) as ex:
            assert ex.submit(_square, 7).result() == 49

    def mp_process() -> None:
        p = ctx.Process(target=_square, args=(7,))  # type: ignore[attr-defined]
        p.start()
        p.join()

    process_cls: Any = getattr(plait, "Process", None)
    if process_cls is None:
        from plait._processes import Process

        process_cls = Process

    def plait_process() -> None:
        p = process_cls(target=_square, args=(7,))
        p.start()
        p.join()

    def plait_spawn() -> None:
        with plait.TaskGroup() as tg:
            task = tg.spawn(_square, 7, on="process")
        assert task.result() == 49

    figures = compare(
        {
            base: executor_cold,
            f"multiprocessing.Process ({ctx.get_start_method()})": mp_process,
            "plait.Process": plait_process,
            "plait.TaskGroup: spawn(on='process') + result": plait_spawn,
        },
        repeat=repeat,
        number=number,
    )
    for impl, value in figures.items():
        bench.record(case, impl, value, "s/op", baseline=base)

    case = "process round trip, warm worker"
    with ProcessPoolExecutor(1, mp_context=ctx) as ex:
        ex.submit(_square, 1).result()
        warm = measure(
            lambda: ex.submit(_square, 7).result(), repeat=repeat, number=bench.scale(2000, 200)
        )
    bench.record(
        case,
        "ProcessPoolExecutor.submit+result",
        warm,
        "s/op",
        baseline="ProcessPoolExecutor.submit+result",
        note="plait.Pool (issue 5) is the comparable plait figure",
    )


def bench_spawn(bench: Bench) -> None:
    """Each implementation runs in its own child, round-robin over several rounds, so a
    burst of load on a shared machine lands on all of them rather than on one."""
    sizes = [100_000, 10_000] if not bench.quick else [10_000]
    rounds = bench.scale(3, 1)
    runs = 2
    for n, (loop, impls) in itertools.product(
        sizes, (("asyncio", SPAWN_IMPLS_ASYNCIO), ("uvloop", SPAWN_IMPLS_UVLOOP))
    ):
        case = f"spawn+join {n:,} coroutines ({loop} loop)"
        seconds: dict[str, list[float]] = {impl: [] for impl in impls}
        for _ in range(rounds):
            for impl in impls:
                try:
                    seconds[impl] += run_child("spawn", impl, loop, str(n), str(runs))
                except RuntimeError as exc:
                    print(f"  {impl}: failed: {exc}", file=sys.stderr)
        for impl in impls:
            if not seconds[impl]:
                continue
            own = impl in ("trio", "gevent")
            bench.record(
                case,
                impl,
                n / statistics.median(seconds[impl]),
                "tasks/s",
                baseline="asyncio.TaskGroup",
                target=">= 0.9x asyncio.TaskGroup" if impl == "plait.TaskGroup" else None,
                target_ratio=0.9 if impl == "plait.TaskGroup" else None,
                note="its own loop" if own else "",
                samples=seconds[impl],
            )


_RSS_TARGETS = {
    "plait": ("<= 1.25x asyncio", 1.25),
    "plait spawn(ev.async_wait)": ("<= 1x asyncio", 1.0),  # issue 12
}


def bench_rss(bench: Bench) -> None:
    n = bench.scale(20_000, 5_000)
    case = "RSS per parked strand"
    for impl in RSS_IMPLS:
        repeats = []
        for _ in range(bench.scale(3, 1)):
            try:
                answer = run_child("rss", impl, str(n))
            except RuntimeError as exc:
                print(f"  {impl}: failed: {exc}", file=sys.stderr)
                break
            repeats.append(answer["bytes"])
        if not repeats:
            continue
        count = answer["n"]
        bench.record(
            case,
            f"{impl} ({count:,} parked)" if impl == "threads" else impl,
            statistics.median(repeats),
            "bytes",
            baseline="asyncio",
            target=_RSS_TARGETS.get(impl, (None, None))[0],
            target_ratio=_RSS_TARGETS.get(impl, (None, None))[1],
            samples=repeats,
        )


def main() -> None:
    bench = Bench.from_argv("strands", description=__doc__)
    os.environ.setdefault("PYTHONHASHSEED", "0")
    print("spawn+join of coroutine strands (fresh interpreter each):")
    bench_spawn(bench)
    print("RSS per parked strand (fresh interpreter each):")
    bench_rss(bench)
    print("current_strand():")
    bench_current_strand(bench)
    print("thread strands:")
    bench_thread_start(bench)
    print("process strands:")
    bench_process_round_trip(bench)
    bench.note(
        "spawn+join: each figure is n / median seconds of a run that spawns n no-op "
        "coroutines in one group and waits for them; trio and gevent run on their own loops. "
        "With 100,000 live tasks the cyclic GC's collections roughly halve the throughput "
        "(asyncio: 2.2x faster with gc disabled); the 10,000 case shows more of each "
        "library's own per-spawn overhead. Figures move by 20-30 % between runs on this "
        "shared machine."
    )
    bench.note(
        "RSS: growth of the resident set while n strands (each `await ev.wait()`) are "
        "parked, divided by n, after a 1,000-strand warm-up; fresh interpreter per figure. "
        "'plait' waits on plait.Event, 'plait (asyncio.Event)' isolates the strand's cost."
    )
    bench.note(
        "current_strand(): timeit loop, call overhead included; a thread strand caches its "
        "strand in a thread-local, a coroutine strand looks its task up."
    )
    bench.save()


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child_main(sys.argv[2:])
    else:
        main()
