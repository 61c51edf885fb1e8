"""Helpers shared by the green-strand tests: run bodies as green strands of one group, and
a fixture that patches the stdlib for one test.

``patched`` is a plain fixture that a test module opts into (``pytestmark =
pytest.mark.usefixtures("patched")`` after importing it), not an autouse conftest one:
``test_green_strands.py`` must run unpatched.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

import plait
import plait.green


def in_group(*bodies: Callable[[], Any], names: list[str] | None = None) -> list[Any]:
    """Run each body as a green strand of one TaskGroup (named by ``names``, if given) and
    return their results in order; the group's errors propagate (a BaseExceptionGroup)."""

    async def main() -> list[Any]:
        async with plait.TaskGroup() as tg:
            tasks = [
                tg.spawn(body, on="green", name=None if names is None else names[i])
                for i, body in enumerate(bodies)
            ]
        return [t.result() for t in tasks]

    return plait.run(main)  # type: ignore[no-any-return]


@pytest.fixture
def patched() -> Iterator[None]:
    """``plait.green.patch()`` for the test, undone after it even when it fails."""
    plait.green.patch()
    try:
        yield
    finally:
        plait.green.unpatch()
