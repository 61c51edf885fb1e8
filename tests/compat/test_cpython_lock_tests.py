"""CPython's ``test.lock_tests`` (the suite behind ``threading``'s primitives), run on plait's.

Each class subclasses the suite's own base class and names the plait type under test, as
``test.test_threading`` does for ``threading``'s types; the suite is the one of the
interpreter that runs this module. Skips: ``skips_threading.py``.

``PLAIT_COMPAT_BASELINE=stdlib`` runs the same classes on threading's own types (the
reference figures).
"""

from __future__ import annotations

import os
import threading

import pytest
from test import lock_tests

import plait

# A hang is a failure of that test (raised in it), not the end of the session.
pytestmark = pytest.mark.timeout(60, method="signal")

_impl = threading if os.environ.get("PLAIT_COMPAT_BASELINE") == "stdlib" else plait


class PlaitLockTests(lock_tests.LockTests):
    locktype = staticmethod(_impl.Lock)


class PlaitRLockTests(lock_tests.RLockTests):
    locktype = staticmethod(_impl.RLock)


class PlaitConditionAsRLockTests(lock_tests.RLockTests):
    # A Condition built without a lock uses an RLock, and behaves as one.
    locktype = staticmethod(_impl.Condition)


class PlaitEventTests(lock_tests.EventTests):
    eventtype = staticmethod(_impl.Event)


class PlaitConditionTests(lock_tests.ConditionTests):
    condtype = staticmethod(_impl.Condition)


class PlaitSemaphoreTests(lock_tests.SemaphoreTests):
    semtype = staticmethod(_impl.Semaphore)


class PlaitBoundedSemaphoreTests(lock_tests.BoundedSemaphoreTests):
    semtype = staticmethod(_impl.BoundedSemaphore)


class PlaitBarrierTests(lock_tests.BarrierTests):
    barriertype = staticmethod(_impl.Barrier)
