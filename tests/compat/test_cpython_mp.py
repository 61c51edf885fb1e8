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

import os
import unittest

from test import _test_multiprocessing as suite

import plait

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
