"""CPython's ``test.test_threading`` (its Thread, Timer and exception-hook tests) on plait.

The adapter is the one a user writes: ``import plait as threading``. The suite's module is
loaded a second time (from the interpreter that runs this) with its ``import threading``
answered by a view of plait: every name in ``threading.__all__`` comes from ``plait`` (a
missing one fails the tests that use it), and only the private names the suite inspects
(``threading._active``, ``threading.__excepthook__``, ...) from ``threading`` itself.
Assigning a public name through the view assigns it on plait (``threading.excepthook = hook``
in a test is ``plait.excepthook = hook``, which is threading's hook).

The suite's lock classes run in ``test_cpython_lock_tests.py``; tests that start a separate
interpreter on a script of their own (``assert_python_ok``) run the stdlib there, not plait.
Skips: ``skips_threading.py``.

``PLAIT_COMPAT_BASELINE=stdlib`` runs the same classes on threading itself (the reference
figures).
"""

from __future__ import annotations

import importlib.util
import os
import sys
import threading
import types
from typing import Any

import pytest
import test.test_threading

import plait

# A hang is a failure of that test (raised in it), not the end of the session.
pytestmark = pytest.mark.timeout(60, method="signal")

_PUBLIC = frozenset(threading.__all__)


class _ThreadingAsPlait(types.ModuleType):
    """``threading`` as ``import plait as threading`` sees it, plus threading's private
    names for the suite's white-box checks."""

    def __getattr__(self, name: str) -> Any:
        if name in _PUBLIC:
            return getattr(plait, name)
        return getattr(threading, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _PUBLIC:
            setattr(plait, name, value)
        else:
            setattr(threading, name, value)

    def __delattr__(self, name: str) -> None:
        delattr(plait if name in _PUBLIC else threading, name)


def _load_suite() -> types.ModuleType:
    if os.environ.get("PLAIT_COMPAT_BASELINE") == "stdlib":
        return test.test_threading
    spec = importlib.util.find_spec("test.test_threading")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    module.__name__ = "plait_test_threading"
    saved = sys.modules["threading"]
    sys.modules["threading"] = _ThreadingAsPlait("threading")
    try:
        spec.loader.exec_module(module)
    finally:
        sys.modules["threading"] = saved
    return module


_suite = _load_suite()

# The classes that test the Thread class, Timer, and the exception machinery.
ThreadTests = _suite.ThreadTests
ThreadJoinOnShutdown = _suite.ThreadJoinOnShutdown
ThreadingExceptionTests = _suite.ThreadingExceptionTests
ExceptHookTests = _suite.ExceptHookTests
TimerTests = _suite.TimerTests
