"""The ``multiprocessing.Pool`` face: same names, same semantics."""

from __future__ import annotations

import multiprocessing
import re
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import poolhelpers as h
import pytest

from plait.pool import Pool, PoolTimeoutError


def test_apply_and_apply_async(pool: Pool) -> None:
    assert pool.apply(h.add, (1, 2)) == 3
    assert pool.apply(h.add, (1,), {"b": 5}) == 6
    result = pool.apply_async(h.square, (7,))
    assert result.get(timeout=10) == 49
    assert result.ready() and result.successful()


def test_apply_async_callbacks_run_before_get_returns(pool: Pool) -> None:
    seen: list[object] = []
    errors: list[BaseException] = []
    ok = pool.apply_async(h.square, (3,), callback=seen.append)
    bad = pool.apply_async(h.boom, (1,), error_callback=errors.append)
    assert ok.get(10) == 9
    with pytest.raises(ValueError, match="boom 1"):
        bad.get(10)
    assert seen == [9]
    assert len(errors) == 1 and isinstance(errors[0], ValueError)
    assert not bad.successful()


def test_successful_before_ready_raises(pool: Pool) -> None:
    gate = pool.apply_async(h.nap, (0.3,))
    with pytest.raises(ValueError, match="not ready"):
        gate.successful()
    with pytest.raises(multiprocessing.TimeoutError):
        gate.get(timeout=0.01)
    with pytest.raises(TimeoutError):  # the same error is also the builtin one
        gate.get(timeout=0.01)
    assert gate.get(10) == 0.3


def test_map_starmap_and_async_forms(pool: Pool) -> None:
    assert pool.map(h.square, range(100)) == [x * x for x in range(100)]
    assert pool.map(h.square, range(10), 3) == [x * x for x in range(10)]
    assert pool.map(h.square, []) == []
    assert pool.starmap(h.add, [(1, 2), (3, 4)]) == [3, 7]
    got: list[object] = []
    assert pool.map_async(h.square, range(5), callback=got.append).get(10) == [0, 1, 4, 9, 16]
    assert got == [[0, 1, 4, 9, 16]]
    assert pool.starmap_async(h.add, [(1, 1)]).get(10) == [2]


def test_map_raises_the_first_error(pool: Pool) -> None:
    with pytest.raises(ValueError, match="boom"):
        pool.map(h.boom, range(10))
    errors: list[BaseException] = []
    result = pool.map_async(h.boom, range(3), error_callback=errors.append)
    with pytest.raises(ValueError, match="boom"):
        result.get(10)
    assert isinstance(errors[0], ValueError)


def test_imap_orders_and_imap_unordered_does_not_need_to(pool: Pool) -> None:
    assert list(pool.imap(h.square, range(50))) == [x * x for x in range(50)]
    assert list(pool.imap(h.square, range(50), 7)) == [x * x for x in range(50)]
    assert sorted(pool.imap_unordered(h.square, iter(range(50)))) == sorted(
        x * x for x in range(50)
    )
    it = pool.imap(h.square, [])
    with pytest.raises(StopIteration):
        next(it)


def test_imap_next_timeout_and_error_items(pool: Pool) -> None:
    it = pool.imap(h.nap, [0.5])
    with pytest.raises(multiprocessing.TimeoutError):
        it.next(timeout=0.01)
    assert it.next(timeout=10) == 0.5
    it2 = pool.imap(h.identity, [1, 2, 3])
    assert list(it2) == [1, 2, 3]
    # a failing item raises when reached; iteration goes on after it
    it3 = pool.imap(h.die_on, [0, 1, 2], chunksize=1) if False else pool.imap(h.boom, [1])
    with pytest.raises(ValueError, match="boom"):
        next(it3)
    with pytest.raises(StopIteration):
        next(it3)


def test_imap_over_an_endless_generator_reads_a_bounded_window(pool: Pool) -> None:
    it = pool.imap(h.square, h.endless())
    first = [next(it) for _ in range(1000)]
    assert first == [x * x for x in range(1000)]
    # the input is read at most a window ahead of what was consumed
    stats = pool.statistics()
    assert stats.tasks_outstanding < 200_000


def test_input_iterator_error_reaches_the_consumer(pool: Pool) -> None:
    def gen():
        yield 1
        yield 2
        raise OSError("input broke")

    it = pool.imap(h.identity, gen())
    assert next(it) == 1
    assert next(it) == 2
    with pytest.raises(OSError, match="input broke"):
        next(it)
    with pytest.raises(StopIteration):
        next(it)


def test_close_join_and_context_manager() -> None:
    with Pool(2) as p:
        results = [p.apply_async(h.square, (i,)) for i in range(10)]
    # a normal exit waits for submitted work (nothing is lost)
    assert [r.get(0) for r in results] == [i * i for i in range(10)]
    p2 = Pool(1)
    with pytest.raises(ValueError, match="still running"):
        p2.join()
    p2.close()
    p2.join()
    with pytest.raises(ValueError, match="Pool not running"):
        p2.apply(h.square, (1,))


def test_exception_in_with_block_terminates() -> None:
    with pytest.raises(KeyError), Pool(1) as p:
        slow = p.apply_async(h.nap, (30,))
        raise KeyError("leave")
    with pytest.raises(Exception, match="terminated"):
        slow.get(5)


def test_terminate_fails_unfinished_work() -> None:
    p = Pool(1)
    running = p.apply_async(h.nap, (30,))
    queued = p.apply_async(h.square, (2,))
    p.terminate()
    p.join()
    for r in (running, queued):
        with pytest.raises(Exception, match="terminated"):
            r.get(5)
    with pytest.raises(ValueError, match="Pool not running"):
        p.apply_async(h.square, (1,))


def test_lambdas_closures_and_main_functions(pool: Pool) -> None:
    k = 10
    assert pool.apply(lambda x: x + k, (1,)) == 11
    assert pool.map(lambda x: x * k, range(3)) == [0, 10, 20]


def test_callbacks_may_submit_more(pool: Pool) -> None:
    done = threading.Event()
    out: list[int] = []

    def again(value: int) -> None:
        pool.apply_async(h.square, (value,), callback=lambda v: (out.append(v), done.set()))

    pool.apply_async(h.square, (3,), callback=again)
    assert done.wait(10)
    assert out == [81]


SEED = """
import time
import plait
import plait.pool
multiprocessing = plait if hasattr(plait, "Pool") else plait.pool

def foo(args):
    time.sleep(0.1)
    print(args)

if __name__ == '__main__':
    p = multiprocessing.Pool(5)
    for i in range(10):
        p.apply_async(func=foo, args=(i,))
    p.close()
    p.join()
    print("end")
"""


def test_seed_pool_program_runs_unchanged(tmp_path: Path) -> None:
    script = tmp_path / "seed_pool.py"
    script.write_text(textwrap.dedent(SEED))
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 0, done.stderr
    # ten processes print at once: "7" and "8\n" may interleave, so count digits
    body, _, tail = done.stdout.rpartition("end")
    assert sorted(re.findall(r"\d", body)) == [str(i) for i in range(10)]
    assert tail.strip() == ""


def test_pool_timeout_error_is_both_kinds() -> None:
    assert issubclass(PoolTimeoutError, multiprocessing.TimeoutError)
    assert issubclass(PoolTimeoutError, TimeoutError)
