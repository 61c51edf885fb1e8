"""CPython's ``test.test_concurrent_futures`` process-executor tests, run on ``plait.Pool``.

The suite is taken from the interpreter that runs this module (it ships as a package from
3.13; older interpreters lack it and this module is skipped). Its executor mixins choose
the executor through ``executor_type``; the adapter a user would write renames only the
constructor's arguments (``max_workers`` -> ``processes``, ``mp_context`` -> ``context``,
``max_tasks_per_child`` -> ``maxtasksperchild``). Skips, each with its reason, are in
``skips_pool.py``.
"""

from __future__ import annotations

import importlib
from typing import Any

import pytest

import plait

try:
    _util = importlib.import_module("test.test_concurrent_futures.util")
except ImportError:  # pragma: no cover - depends on the interpreter
    pytest.skip(
        "this interpreter ships no test.test_concurrent_futures package (it has one from 3.13)",
        allow_module_level=True,
    )


class PlaitExecutor(plait.Pool):
    """``ProcessPoolExecutor``'s constructor over ``plait.Pool``."""

    def __init__(
        self,
        max_workers: int | None = None,
        mp_context: Any = None,
        initializer: Any = None,
        initargs: tuple[Any, ...] = (),
        *,
        max_tasks_per_child: int | None = None,
    ) -> None:
        super().__init__(
            processes=max_workers,
            initializer=initializer,
            initargs=initargs,
            maxtasksperchild=max_tasks_per_child,
            context=mp_context,
        )


class PlaitPoolMixin(_util.ProcessPoolForkserverMixin):  # type: ignore[misc,name-defined]
    executor_type = PlaitExecutor


def _install(module_name: str, mixin_name: str) -> None:
    module = importlib.import_module(f"test.test_concurrent_futures.{module_name}")
    mixin = getattr(module, mixin_name)
    name = f"Plait{mixin_name}"
    globals()[name] = type(name, (mixin, PlaitPoolMixin, _util.BaseTestCase), {})


for _module, _mixin in (
    ("test_process_pool", "ProcessPoolExecutorTest"),
    ("test_deadlock", "ExecutorDeadlockTest"),
    ("test_shutdown", "ProcessPoolShutdownTest"),
    ("test_wait", "WaitTests"),
    ("test_as_completed", "AsCompletedTests"),
    ("test_init", "InitializerMixin"),
    ("test_init", "FailingInitializerMixin"),
):
    _install(_module, _mixin)
