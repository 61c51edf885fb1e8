"""CPython's own test suites, run against plait's classes.

Each ``test_cpython_*.py`` module here imports a suite from the interpreter that runs it
(``test.lock_tests``, ``test.test_queue``, ``test._test_multiprocessing``,
``test.test_threading``, ``test.test_concurrent_futures``), points it at plait's classes with
the smallest adapter a user would write, and lets pytest collect the ``unittest`` classes.
The suite-wide timeout (pytest-timeout) turns a hang into a failure.

Nothing is skipped except the entries of the ``skips_*.py`` modules beside this file: each
maps a test (the end of its node id, ``Class::test_name``, or a ``Class::`` prefix for a
whole class) to the reason it cannot apply to plait -- a CPython-private attribute, or a
difference listed in the README's "Differences from the standard library". One module per
area keeps the lists apart.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

_HERE = Path(__file__).parent


def _skips() -> dict[str, str]:
    found: dict[str, str] = {}
    for path in sorted(_HERE.glob("skips_*.py")):
        spec = importlib.util.spec_from_file_location(f"_plait_compat_{path.stem}", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        for key, reason in module.SKIPS.items():
            if not reason.strip():
                raise ValueError(f"{path.name}: {key!r} is skipped without a reason")
            found[key] = f"{path.stem}: {reason}"
    return found


def _reason_for(nodeid: str, skips: dict[str, str]) -> str | None:
    # nodeid: tests/compat/test_cpython_x.py::Class::test_name
    parts = nodeid.split("::")
    if len(parts) < 3:
        return None
    cls, name = parts[-2], parts[-1]
    for key in (f"{cls}::{name}", f"*::{name}", f"{cls}::"):
        if key in skips:
            return skips[key]
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skips = _skips()
    for item in items:
        if "/compat/" not in item.nodeid.replace("\\", "/"):
            continue
        reason = _reason_for(item.nodeid, skips)
        if reason is not None:
            item.add_marker(pytest.mark.skip(reason=reason))
