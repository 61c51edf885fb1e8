"""Run ``async def`` tests of this folder on a fresh asyncio loop each."""

from __future__ import annotations

import asyncio
import gc
import inspect
from typing import Any

import pytest


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: Any) -> bool | None:
    fn = pyfuncitem.obj
    if not inspect.iscoroutinefunction(fn):
        return None
    names = pyfuncitem._fixtureinfo.argnames
    kwargs = {name: pyfuncitem.funcargs[name] for name in names}
    asyncio.run(fn(**kwargs))
    return True


@pytest.fixture(autouse=True)
def _collect_shared_queues() -> Any:
    """A shared queue's segment lives as long as the queue object in its owner process;
    collect the cycles a test's tracebacks left so that the session ends with none."""
    yield

    gc.collect()
