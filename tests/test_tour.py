"""The tour: registry, selection, and every scene runs and reports what it measured."""

from __future__ import annotations

import importlib
import io
import subprocess
import sys

import pytest

from plait.tour import Scene, UnknownSceneError, all_scenes, run_scenes, select
from plait.tour.scenes import MODULES


def test_every_module_registers_scenes_named_after_it() -> None:
    for module_name in MODULES:
        module = importlib.import_module(f"plait.tour.scenes.{module_name}")
        assert module.SCENES, f"{module_name} registers no scene"
        for scene in module.SCENES:
            assert isinstance(scene, Scene)
            assert scene.name.startswith(module_name + "-"), scene.name
            assert scene.title
            assert scene.shows


def test_scene_names_are_unique_and_in_module_order() -> None:
    names = [s.name for s in all_scenes()]
    assert len(names) == len(set(names))
    topics = [n.split("-", 1)[0] for n in names]
    assert sorted(set(topics), key=topics.index) == [m for m in MODULES if m in topics]


def test_select_by_name_by_topic_and_in_given_order() -> None:
    scenes = all_scenes()
    first, last = scenes[0], scenes[-1]
    assert select([last.name, first.name], scenes) == [last, first]
    topic = first.name.split("-", 1)[0]
    assert select([topic], scenes) == [s for s in scenes if s.name.startswith(topic + "-")]
    assert select([first.name, first.name], scenes) == [first]


def test_select_unknown_names_them_all() -> None:
    with pytest.raises(UnknownSceneError, match="nope, nada") as info:
        select(["nope", "threads", "nada"])
    assert "plait tour --list" in str(info.value)
    assert info.value.names == ("nope", "nada")


def test_run_scenes_prints_headers_and_total() -> None:
    ran: list[str] = []
    scenes = [
        Scene(name="x-one", title="first", shows="it runs", run=lambda: ran.append("one")),
        Scene(name="x-two", title="second", shows="it runs too", run=lambda: ran.append("two")),
    ]
    out = io.StringIO()
    total = run_scenes(scenes, out=out)
    text = out.getvalue()
    assert ran == ["one", "two"]
    assert total >= 0
    assert "[1/2] x-one: first" in text
    assert "shows: it runs too" in text
    assert "tour done: 2 scene(s)" in text


EXPECTED = {
    "threads-timing": ["measured: sequential", "two threads", "the waits overlap"],
    "threads-join-daemon": ["variant 8", "all over", "[interpreter exits at"],
    "processes-direct": ["hello alvin:0", "hello alvin:2", "end", "exit codes: [0, 0, 0]"],
    "processes-subclass": ["hello MyProcess", "exit codes [0, 0, 0]"],
    "processes-results": ["results [1, 4, 9]", "ValueError: -1 is not positive", "remote"],
    "gil-cpu-work": ["2 units in 2 threads", "2 units in 2 processes", "(speed-up vs", "-> "],
}


@pytest.fixture(scope="module")
def tour_output() -> str:
    """The whole tour, run once as ``python -m plait.cli tour`` with no input.

    It runs in a fresh interpreter: children started by a fork server write to the fork
    server's stdout, which in this process is whichever test's capture started it.
    """
    done = subprocess.run(
        [sys.executable, "-m", "plait.cli", "tour"],
        capture_output=True,
        text=True,
        encoding="utf-8",
        stdin=subprocess.DEVNULL,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_tour_runs_every_scene(tour_output: str) -> None:
    assert f"tour done: {len(all_scenes())} scene(s)" in tour_output


@pytest.mark.parametrize("name", [s.name for s in all_scenes()])
def test_scene_runs_and_reports(name: str, tour_output: str) -> None:
    """Each scene says what it shows and prints what it measured."""
    (scene,) = select([name])
    header = f"{name}: {scene.title} ==="
    assert header in tour_output
    section = tour_output.split(header, 1)[1].split("\n=== [", 1)[0]
    assert f"shows: {scene.shows}" in section
    assert "(scene took" in section
    for expected in EXPECTED.get(name, []):
        assert expected in section, f"{expected!r} missing from the output of {name}"
