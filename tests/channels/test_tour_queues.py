"""The queue scenes of the tour run, say what they show, and stay short."""

from __future__ import annotations

import time

import pytest

from plait.tour.scenes.queues import SCENES


@pytest.mark.parametrize("scene", SCENES, ids=[s.name for s in SCENES])
def test_scene_runs_quickly(scene, capsys):  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    scene.run()
    elapsed = time.perf_counter() - start
    out = capsys.readouterr().out
    assert elapsed < 5.0
    expected = {
        "queues-producer-consumer": "10 of 10 buns eaten, none lost",
        "queues-process-queue": "worker replied '7 squared is 49",
        "queues-pipe": "child received: 儿子你好!",
        "queues-generators": "[PRODUCER] Consumer return: 200 OK",
    }[scene.name]
    assert expected in out
