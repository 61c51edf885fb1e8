"""map/imap agree with the builtin map for random inputs and chunk sizes; every start
method works."""

from __future__ import annotations

import random

import poolhelpers as h
import pytest

from plait.pool import Pool


def test_map_and_imap_match_builtin_map(pool: Pool) -> None:
    # Random inputs and chunk sizes against one pool (a pool per hypothesis example would
    # spend the test's time starting workers).
    rng = random.Random(5)
    for _ in range(40):
        data = [rng.randint(-1000, 1000) for _ in range(rng.randint(0, 300))]
        chunksize = rng.choice([None, rng.randint(1, 50)])
        expected = [x * x for x in data]
        assert pool.map(h.square, data, chunksize) == expected
        assert list(pool.imap(h.square, data, chunksize)) == expected
        assert sorted(pool.imap_unordered(h.square, iter(data), chunksize)) == sorted(expected)
        assert pool.starmap(h.add, [(x, 1) for x in data], chunksize) == [x + 1 for x in data]


@pytest.mark.parametrize("method", ["spawn", "fork", "forkserver"])
def test_every_start_method(method: str) -> None:
    with Pool(1, start_method=method) as p:  # type: ignore[arg-type]
        assert p.apply(h.square, (4,)) == 16
        assert p.map(lambda x: x + 1, [1, 2]) == [2, 3]


def test_unpicklable_initargs_fail_at_construction() -> None:
    import threading

    from plait import SerializationError

    with pytest.raises(SerializationError):
        Pool(1, initializer=h.remember, initargs=(threading.Lock(),))
