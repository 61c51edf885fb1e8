"""Large payloads both ways, threads that end by themselves, no busy restart loop."""

from __future__ import annotations

import threading
import time

import poolhelpers as h

from plait.pool import Pool


def test_large_arguments_and_results_do_not_deadlock() -> None:
    blob = bytes(4 * 1024 * 1024)
    with Pool(1) as p:  # one worker, several 4 MB tasks queued behind each other
        results = [p.apply_async(h.echo_size, (blob,)) for _ in range(6)]
        assert [len(r.get(30)) for r in results] == [len(blob)] * 6
        assert [len(x) for x in p.map(h.echo_size, [blob] * 4, 1)] == [len(blob)] * 4


def _pool_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("plait-pool-")]


def test_shutdown_without_wait_lets_everything_end() -> None:
    before = set(_pool_threads())
    p = Pool(2)
    futures = [p.submit(h.nap, 0.05) for _ in range(4)]
    p.shutdown(wait=False)
    assert [f.result(10) for f in futures] == [0.05] * 4
    deadline = time.monotonic() + 5
    while set(_pool_threads()) - before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not set(_pool_threads()) - before
    p.join()


def test_failing_initializer_does_not_spin() -> None:
    with Pool(2, initializer=h.failing_initializer) as p:
        time.sleep(0.5)  # idle: after a few failures workers start only on demand
        started = p.statistics().workers_replaced
        time.sleep(0.5)
        assert p.statistics().workers_replaced - started <= 1
        assert p.statistics().workers_replaced < 10


def test_breaking_out_of_imap_over_an_endless_input_does_not_hang_join() -> None:
    with Pool(2) as p:
        for x in p.imap(h.square, h.endless()):
            if x > 100:
                break
        for x in p.imap_unordered(h.square, h.endless()):
            if x > 100:
                break
    # leaving the block closed and joined the pool: the dropped inputs were not read on


def test_join_before_consuming_reads_the_whole_input() -> None:
    p = Pool(2)
    it = p.imap(h.square, iter(range(5000)))
    p.close()
    p.join()  # as multiprocessing: join() finishes every task, results wait in `it`
    assert list(it) == [x * x for x in range(5000)]


def test_statistics_snapshot() -> None:
    with Pool(2) as p:
        assert p.map(h.square, range(10), 1) == [x * x for x in range(10)]
        # The second worker may still be starting on a loaded machine: wait for it (with a
        # deadline) rather than assume it beat ten tiny tasks.
        deadline = time.monotonic() + 10
        while p.statistics().workers_alive < 2 and time.monotonic() < deadline:
            time.sleep(0.005)
        stats = p.statistics()
        assert stats.state == "running"
        assert stats.processes == 2
        assert stats.workers_alive == 2
        assert stats.completed == 10
        assert stats.tasks_outstanding == stats.tasks_queued == stats.tasks_running == 0
        assert stats.crashed == stats.timed_out == stats.retried == 0
        assert len(p.pids) == 2
        assert "running" in repr(p)
    assert p.statistics().state == "closed"
    assert p.statistics().workers_alive == 0


def test_waiting_inside_a_callback_raises_instead_of_deadlocking() -> None:
    errors: list[BaseException] = []
    done = threading.Event()

    def callback(_: object) -> None:
        try:
            p.apply(h.square, (2,))
        except RuntimeError as exc:
            errors.append(exc)
        done.set()

    with Pool(1) as p:
        p.apply_async(h.square, (1,), callback=callback)
        assert done.wait(10)
    assert errors
    assert "deadlock" in str(errors[0])
