"""CPython's ``test._test_multiprocessing`` (processes, queues, primitives, values, pipes)
with plait as the ``multiprocessing`` module.

The suite builds each test class from a ``_TestX`` base and a mixin whose attributes
(``Process``, ``Queue``, ``Lock``, ``Pipe``, ``Value``, ...) are what the tests create; here
the mixin takes each of them from ``plait``, as ``import plait as multiprocessing`` would.
``connection`` stays multiprocessing's (a submodule, not a name of ``multiprocessing``).
The suite is the one of the interpreter that runs this module; the pool classes run in the
pool's own module. Skips: ``skips_mp.py``.

``PLAIT_COMPAT_BASELINE=stdlib`` runs the same classes on multiprocessing itself (the
reference figures in the report).
"""

from __future__ import annotations

import multiprocessing
import os
import unittest
from collections.abc import Iterator
from multiprocessing import forkserver

import pytest
from test import _test_multiprocessing as suite

import plait
from plait._ipc.context import get_context

# A hang is a failure of that test (raised in it), not the end of the session.
pytestmark = pytest.mark.timeout(60, method="signal")

_CLASSES = [
    "_TestProcess",
    "_TestSubclassingProcess",
    "_TestQueue",
    "_TestLock",
    "_TestSemaphore",
    "_TestCondition",
    "_TestEvent",
    "_TestBarrier",
    "_TestValue",
    "_TestArray",
    "_TestConnection",
    "_TestPoll",
    "_TestListener",
    "_TestListenerClient",
    "_TestSharedCTypes",
    "_TestFinalize",
    "_TestLogging",
    "_TestPollEintr",
    "_TestPicklingConnections",
]


class PlaitProcessesMixin(suite.ProcessesMixin):
    """The suite's processes mixin, every object from plait."""

    Process = plait.Process
    current_process = staticmethod(plait.current_process)
    parent_process = staticmethod(plait.parent_process)
    active_children = staticmethod(plait.active_children)
    set_executable = staticmethod(plait.set_executable)
    Pool = staticmethod(plait.Pool)
    Pipe = staticmethod(plait.Pipe)
    Queue = staticmethod(plait.Queue)
    JoinableQueue = staticmethod(plait.JoinableQueue)
    Lock = staticmethod(plait.Lock)
    RLock = staticmethod(plait.RLock)
    Semaphore = staticmethod(plait.Semaphore)
    BoundedSemaphore = staticmethod(plait.BoundedSemaphore)
    Condition = staticmethod(plait.Condition)
    Event = staticmethod(plait.Event)
    Barrier = staticmethod(plait.Barrier)
    Value = staticmethod(plait.Value)
    Array = staticmethod(plait.Array)
    RawValue = staticmethod(plait.RawValue)
    RawArray = staticmethod(plait.RawArray)


_BASELINE = os.environ.get("PLAIT_COMPAT_BASELINE") == "stdlib"
_Mixin: type = suite.ProcessesMixin if _BASELINE else PlaitProcessesMixin


def _install() -> None:
    # As the suite's install_tests_in_module_dict names them ("WithProcessesTestX"); the
    # classes must be importable by name: a child unpickles the tests' classmethods.
    for base_name in _CLASSES:
        base = getattr(suite, base_name)
        name = "WithProcesses" + base_name[1:]
        cls = type(name, (base, _Mixin, unittest.TestCase), {"__module__": __name__})
        cls.__qualname__ = name
        globals()[name] = cls


_install()


@pytest.fixture(autouse=True, scope="module")
def _fork_server_preloads_the_suite() -> Iterator[None]:
    """As CPython runs this suite under forkserver (its setUpModule): multiprocessing's
    default start method is the one plait starts children with, so the suite's own
    helpers (a ``multiprocessing.Lock`` inside ``_DummyList``) may cross to them; and the
    suite is preloaded in the fork server, so a child does not import it again (100
    children each importing the test package take a minute on a small machine). A fresh
    server for this module, and again after it."""
    method = plait.get_start_method()
    context = get_context(method)  # sets plait's preload list
    server = forkserver._forkserver  # type: ignore[attr-defined]
    plaits = list(server._preload_modules)
    server._stop()
    context.set_forkserver_preload([*plaits, suite.__name__, __name__])
    old_method = multiprocessing.get_start_method(allow_none=True)
    multiprocessing.set_start_method(method, force=True)
    try:
        yield
    finally:
        multiprocessing.set_start_method(old_method, force=True)
        server._stop()
        context.set_forkserver_preload(plaits)
