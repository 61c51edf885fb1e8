"""The primitives' tour scenes run, quickly, and print what they measured."""

from __future__ import annotations

import io
import time

import pytest

from plait.tour._framework import run_scenes
from plait.tour.scenes.primitives import SCENES

EXPECT = {
    "primitives-race": "final num: 0",
    "primitives-deadlock": "deadlock",
    "primitives-rlock": "10/10 threads finished",
    "primitives-event": "OhYeah!",
    "primitives-semaphore": "at most 5 in use at once",
}


@pytest.mark.parametrize("scene", SCENES, ids=lambda s: s.name)
def test_scene_runs(scene, capsys) -> None:  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    run_scenes([scene], out=io.StringIO())
    out = capsys.readouterr().out
    assert time.perf_counter() - t0 < 5
    assert EXPECT[scene.name] in out
