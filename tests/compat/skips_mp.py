"""Tests of ``test._test_multiprocessing`` that cannot apply to plait.

Each entry: ``"Class::test_name"`` (or ``"Class::"`` for a whole class) and why.
"""

from __future__ import annotations

SKIPS: dict[str, str] = {}
