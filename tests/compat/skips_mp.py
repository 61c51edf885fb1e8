"""Tests of ``test._test_multiprocessing`` that cannot apply to plait.

Each entry: ``"Class::test_name"`` (or ``"Class::"`` for a whole class) and why.
"""

from __future__ import annotations

_CONDITION_COUNTERS = (
    "check_invariant() reads multiprocessing.Condition's private counters"
    " (_sleeping_count, _woken_count, _wait_semaphore)"
)

SKIPS: dict[str, str] = {
    "WithProcessesTestCondition::test_notify": _CONDITION_COUNTERS,
    "WithProcessesTestCondition::test_notify_all": _CONDITION_COUNTERS,
    "WithProcessesTestCondition::test_notify_n": _CONDITION_COUNTERS,
    "WithProcessesTestSemaphore::test_timeout": (
        "acquire(False, timeout): plait's Semaphore is threading's and raises ValueError, as"
        " threading does; multiprocessing ignores the timeout (README, Differences)"
    ),
    "WithProcessesTestEvent::test_repr": (
        "one Event for threads and processes: plait.Event's repr has threading's form"
        " (<plait.Event at ...: unset>), not multiprocessing's (<Event at ... unset>)"
    ),
    "WithProcessesTestQueue::test_queue_feeder_donot_stop_onexc": (
        "an unpicklable item: multiprocessing's feeder thread drops it later (stderr);"
        " plait.Queue keeps it while the queue is local and refuses it at put() with"
        " SerializationError once shared (README, Differences)"
    ),
}
