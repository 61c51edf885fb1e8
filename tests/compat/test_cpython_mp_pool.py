"""CPython's ``test._test_multiprocessing`` pool test classes, run on ``plait.Pool``.

The suite is taken from the interpreter that runs this module. Its test classes read the
pool type from their mixin (``ProcessesMixin.Pool``); the adapter a user would write is
``Pool = plait.Pool`` (same signature). Each pool class is combined with that mixin as the
suite's own ``install_tests_in_module_dict`` does. One change of fixture: ``_TestPool``
makes one pool per class in ``setUpClass``; here each test gets its own (made in ``setUp``,
terminated in ``tearDown``), so that the suite-wide guard against leftover child processes
still applies to every test. Skips, each with its reason, are in ``skips_pool.py``.
"""

from __future__ import annotations

import importlib
import unittest

import pytest

import plait

try:
    _suite = importlib.import_module("test._test_multiprocessing")
except ImportError:  # pragma: no cover - depends on the interpreter
    pytest.skip("this interpreter ships no test._test_multiprocessing", allow_module_level=True)


class PlaitProcessesMixin(_suite.ProcessesMixin):  # type: ignore[misc,name-defined]
    Pool = staticmethod(plait.Pool)


class _PoolPerTest:
    """``_TestPool``'s class-wide pool, made per test instead."""

    pool: plait.Pool

    @classmethod
    def setUpClass(cls) -> None:
        PlaitProcessesMixin.setUpClass.__func__(cls)  # type: ignore[attr-defined]

    @classmethod
    def tearDownClass(cls) -> None:
        PlaitProcessesMixin.tearDownClass.__func__(cls)  # type: ignore[attr-defined]

    def setUp(self) -> None:
        super().setUp()  # type: ignore[misc]
        self.pool = plait.Pool(4)

    def tearDown(self) -> None:
        self.pool.terminate()
        self.pool.join()
        super().tearDown()  # type: ignore[misc]


for _name in ("_TestPool", "_TestPoolWorkerErrors", "_TestPoolWorkerLifetime"):
    _base = getattr(_suite, _name)
    _new = "WithPlait" + _name[1:]
    _bases: tuple[type, ...] = (_base, PlaitProcessesMixin, unittest.TestCase)
    if _name == "_TestPool":
        _bases = (_PoolPerTest, *_bases)
    globals()[_new] = type(_new, _bases, {})
