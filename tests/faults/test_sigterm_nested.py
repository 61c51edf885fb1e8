"""A SIGTERM handled while the process strand's SIGTERM handler itself runs (issue 18).

The handler defers a cancellation that lands in a hot path holding a shared object's
robust mutex (a semaphore's fast path) and starts a thread that sends the signal again;
``Thread.start()`` waits, and a SIGTERM handled meanwhile (the re-sent one, on a loaded
machine) raised the cancellation through the handler into the hot path: the mutex stayed
held by the dying process, which then waited for it for ever (SIGKILLed after the grace,
with its permits still counted as taken). Found by the 200-cancellation slow tier
(``test_cancelled_process_strands_leave_nothing_taken_many[Semaphore]``).

The nesting is made certain here by calling the handler as the signal machinery would.
"""

from __future__ import annotations

import signal
import sys
from typing import Any

import pytest

import plait._processes._process as process_mod
from plait._sync import _xproc


def _hot_path(nested: Any) -> str:
    """Stands for a fast path marked ``defer_in`` (it holds the mutex here)."""
    process_mod._raise_terminated(signal.SIGTERM, sys._getframe())
    return nested()


_xproc.defer_in(_hot_path)


@pytest.fixture
def resends(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    sent: list[float] = []
    monkeypatch.setattr(process_mod, "_send_again_later", lambda signum, delay: sent.append(delay))
    monkeypatch.setattr(process_mod, "_deferrals", 0)
    monkeypatch.setattr(process_mod, "_delivered", False)
    return sent


def test_a_sigterm_handled_inside_the_handler_waits_too(
    resends: list[float], monkeypatch: pytest.MonkeyPatch
) -> None:
    real_defers = _xproc.defers
    nested_calls: list[bool] = []

    def defers_and_meanwhile_another_sigterm(frame: Any) -> bool:
        answer = real_defers(frame)
        if not nested_calls:  # the second SIGTERM, handled inside the first's handler
            nested_calls.append(True)
            process_mod._raise_terminated(signal.SIGTERM, sys._getframe())
        return answer

    monkeypatch.setattr(_xproc, "defers", defers_and_meanwhile_another_sigterm)
    # No cancellation may come out inside the hot path; each SIGTERM is sent again later.
    assert _hot_path(lambda: "returned") == "returned"
    assert nested_calls == [True]
    assert len(resends) == 2


def test_once_delivered_later_sigterms_change_nothing(resends: list[float]) -> None:
    with pytest.raises(process_mod._Terminated):
        process_mod._raise_terminated(signal.SIGTERM, sys._getframe())
    process_mod._raise_terminated(signal.SIGTERM, sys._getframe())  # (no second raise)
    assert resends == []
