"""Fixtures for the pool tests: a small pool, always torn down."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # workers import poolhelpers by reference

from plait.pool import Pool


@pytest.fixture
def pool() -> Iterator[Pool]:
    p = Pool(2)
    try:
        yield p
    finally:
        p.terminate()
        p.join()
