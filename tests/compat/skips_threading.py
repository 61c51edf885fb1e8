"""Tests of ``test.lock_tests`` and ``test.test_threading`` that cannot apply to plait.

Each entry: ``"Class::test_name"`` (or ``"Class::"`` for a whole class) and why.
"""

from __future__ import annotations

_FORK_REINIT = "reads _at_fork_reinit(), CPython's private hook for its own fork handling"
_RECURSION_COUNT = "reads _recursion_count(), a CPython-private RLock method"

SKIPS: dict[str, str] = {
    "ThreadTests::test_lock_no_subclass": (
        "3.13's threading.Lock is a C type that refuses subclasses; plait.Lock is a class"
        " that may be subclassed (a deliberate difference, listed in the README)"
    ),
    "ThreadTests::test_disallow_instantiation": (
        "@cpython_only: checks that the C type behind threading.Lock() cannot be instantiated;"
        " plait.Lock is a class, made with plait.Lock() as the test does"
    ),
    "PlaitLockTests::test_at_fork_reinit": _FORK_REINIT,
    "PlaitEventTests::test_at_fork_reinit": _FORK_REINIT,
    "PlaitRLockTests::test_recursion_count": _RECURSION_COUNT,
    "PlaitConditionAsRLockTests::test_recursion_count": _RECURSION_COUNT,
    "PlaitConditionAsRLockTests::test_release_save_unacquired": (
        "calls _release_save(), the CPython-private hook between threading's Condition and RLock"
    ),
}
