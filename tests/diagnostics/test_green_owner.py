"""A plain ``Lock`` taken by a green strand on the C fast path names that green strand as
its holder (issue 13): a green-green deadlock is caught by default, not only in debug mode."""

from __future__ import annotations

from typing import Any

import pytest

import plait
from green._green_helpers import in_group  # (tests/ is on sys.path: its conftest's folder)
from plait._core.strands import FASTLOCK

pytest.importorskip("greenlet", reason="green strands need the greenlet extra (plait[green])")

pytestmark = pytest.mark.timeout(30)


def _opposite_order() -> BaseExceptionGroup[Any]:
    a, b = plait.Lock(), plait.Lock()
    a_taken, b_taken = plait.Event(), plait.Event()

    def one() -> None:
        with a:
            a_taken.set()
            assert b_taken.wait(10)
            with b:
                pass

    def two() -> None:
        with b:
            b_taken.set()
            assert a_taken.wait(10)
            with a:
                pass

    with pytest.raises(BaseExceptionGroup) as info:
        in_group(one, two, names=["one", "two"])
    return info.value


@pytest.mark.skipif(
    FASTLOCK is None,
    reason="the pure-Python fast path records only the thread: green needs debug mode there",
)
def test_two_green_strands_in_opposite_order_get_a_deadlock_error_by_default() -> None:
    assert not plait.debug()
    errors = _opposite_order().exceptions
    assert [type(e) for e in errors] == [plait.DeadlockError]
    message = str(errors[0])
    assert "green 'one'" in message and "green 'two'" in message
    assert message.count(__file__) >= 2  # where each waits
    assert " at ?" not in message


@pytest.mark.skipif(FASTLOCK is None, reason="the C lock core records the taker's context")
def test_a_green_strands_fast_path_lock_names_it_and_a_threads_names_the_thread() -> None:
    lock = plait.Lock()
    seen: list[Any] = []

    def green_body() -> None:
        with lock:  # the C fast path: uncontended
            seen.append((lock._holder(), plait.current_strand()))

    in_group(green_body, names=["g"])
    holder, me = seen[0]
    assert holder is me and holder.kind == "green"
    assert lock._owner_context == 0  # cleared by the release
    here = plait.current_strand()
    with lock:
        assert lock._holder() is here and here.kind == "thread"
