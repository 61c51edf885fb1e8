"""CPython's ``test.lock_tests`` (the suite behind ``threading``'s primitives), run on plait's.

Each class subclasses the suite's own base class and names the plait type under test, as
``test.test_threading`` does for ``threading``'s types; the suite is the one of the
interpreter that runs this module. Skips: ``skips_threading.py``.
"""

from __future__ import annotations

from test import lock_tests

import plait


class PlaitLockTests(lock_tests.LockTests):
    locktype = staticmethod(plait.Lock)


class PlaitRLockTests(lock_tests.RLockTests):
    locktype = staticmethod(plait.RLock)


class PlaitConditionAsRLockTests(lock_tests.RLockTests):
    # A Condition built without a lock uses an RLock, and behaves as one.
    locktype = staticmethod(plait.Condition)


class PlaitEventTests(lock_tests.EventTests):
    eventtype = staticmethod(plait.Event)


class PlaitConditionTests(lock_tests.ConditionTests):
    condtype = staticmethod(plait.Condition)


class PlaitSemaphoreTests(lock_tests.SemaphoreTests):
    semtype = staticmethod(plait.Semaphore)


class PlaitBoundedSemaphoreTests(lock_tests.BoundedSemaphoreTests):
    semtype = staticmethod(plait.BoundedSemaphore)


class PlaitBarrierTests(lock_tests.BarrierTests):
    barriertype = staticmethod(plait.Barrier)
