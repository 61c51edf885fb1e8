"""The tour: registry, selection, and every scene runs and reports what it measured."""

from __future__ import annotations

import importlib
import io
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from plait.tour import Scene, UnknownSceneError, all_scenes, run_scenes, select
from plait.tour.scenes import MODULES, OPT_IN

# Whichever test first asks for ``tour_output`` runs the whole tour in its setup (about
# 20 s on an idle 2-core machine, up to 60 s under load): its own 120 s limit, with a clear
# error, must come before the per-test timeout.
pytestmark = pytest.mark.timeout(150)


def test_every_module_registers_scenes_named_after_it() -> None:
    for module_name in MODULES + OPT_IN:
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


def test_opt_in_scenes_run_only_when_named(capsys: pytest.CaptureFixture[str]) -> None:
    from plait.cli import main

    tour = [s.name for s in all_scenes()]
    everything = [s.name for s in all_scenes(opt_in=True)]
    assert "scaleout-seed" not in tour and "scaleout-seed" in everything
    assert [s.name for s in select(["scaleout"])] == ["scaleout-seed"]
    assert main(["tour", "--list"]) == 0
    listed = capsys.readouterr().out.splitlines()
    marked = [line for line in listed if "only when named" in line]
    assert len(listed) == len(everything)
    assert [line.split()[0] for line in marked] == [n for n in everything if n not in tour]
    assert "plait tour scaleout-seed" in marked[0]


def test_the_scaleout_scene_says_why_it_skips_without_dask(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from plait.tour.scenes import scaleout

    monkeypatch.setattr(scaleout.importlib.util, "find_spec", lambda name: None)
    monkeypatch.setattr(scaleout, "Pool", None)  # (a pool started anyway would fail)
    select(["scaleout-seed"])[0].run()
    assert "skipped: Dask is not installed here (pip install 'plait[dask]')" in (
        capsys.readouterr().out
    )


@pytest.mark.slow(reason="starts a 5-process Dask LocalCluster: 5-17 s on 2 cores")
def test_the_scaleout_scene_runs_the_seed_on_dask(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("distributed", reason="Dask is an extra: pip install 'plait[dask]'")
    select(["scaleout-seed"])[0].run()
    out = capsys.readouterr().out
    assert "measured: 10 tasks" in out and "on Pool(5, backend='dask')" in out


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


# What each scene must print whatever it measured (the verdicts themselves depend on the
# machine: the tests below check that they follow the numbers).
EXPECTED = {
    "threads-timing": ["measured: sequential", "two threads: the waits", "the subclass: the waits"],
    "threads-join-daemon": ["variant 8", "all over", "[interpreter exits at", "observed: "],
    "processes-direct": ["hello alvin:0", "hello alvin:2", "end", "exit codes: [0, 0, 0]"],
    "processes-subclass": ["hello MyProcess", "exit codes [0, 0, 0]", "3 different pids"],
    "processes-results": ["results [1, 4, 9]", "ValueError: -1 is not positive", "remote"],
    "primitives-event": ['first "event set: False": printed before', 'second "event set: '],
    "queues-pipe": ["p_ID: ", "the seed's labels: id() of the parent's end", "'Hello, son!'"],
    "pool-coroutines": ["10,000 coroutine requests", "cores busy"],
    "gil-cpu-work": [
        "starting and joining a process that does nothing: ",
        "2 units in 2 threads",
        "2 units in 2 processes",
        "threads: ",
        "processes: ",
    ],
    # (the seed's programs S17/S18: the green scenes' order and overlap, computed)
    "green-switch": ["printed 12 56 34 78", "measured: the same order as the hand-written"],
    "green-sleep": ["running in foo", "switch to bar again", "the two green strands: the waits"],
    "green-urllib": ["bytes received from /slow-0.4", "measured: together", "the green fetches"],
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


# -- the conclusions follow the numbers -------------------------------------------------


def test_compare_reads_small_differences_as_about_the_same() -> None:
    from plait.tour._verdict import compare, describe_ratio

    assert compare(1.0) == compare(1.1) == compare(0.9) == "same"
    assert compare(1.2) == "faster"
    assert compare(0.8) == "slower"
    assert describe_ratio(1.85, "sequential") == "1.85x faster than sequential"
    assert describe_ratio(0.98, "sequential") == "about the same as sequential (0.98x)"
    assert describe_ratio(0.5, "sequential") == "slower than sequential (0.50x)"


def _gil_measured(**changes: object) -> object:
    from dataclasses import replace

    from plait.tour.scenes.gil import GilRun, Measured

    quiet = Measured(
        gil=True,
        cores=2,
        load=0.1,
        startup=0.012,
        sequential=GilRun(wall=1.0, cpu=1.0),
        threads=GilRun(wall=1.02, cpu=1.0),
        processes=GilRun(wall=0.52, cpu=1.0),
    )
    return replace(quiet, **changes)  # type: ignore[arg-type]


def _gil_text(**changes: object) -> str:
    from plait.tour.scenes.gil import gil_conclusions

    return "\n".join(gil_conclusions(_gil_measured(**changes)))  # type: ignore[arg-type]


def test_gil_conclusions_on_a_quiet_two_core_machine() -> None:
    text = _gil_text()
    assert "threads: about the same as sequential (0.98x)" in text
    assert "took turns" in text
    assert "processes: 1.92x faster than sequential" in text
    assert "1.92 cores busy" in text
    assert "did not beat" not in text
    assert "note:" not in text


def test_gil_conclusions_flip_when_processes_do_not_speed_up() -> None:
    from plait.tour.scenes.gil import GilRun

    text = _gil_text(processes=GilRun(wall=1.03, cpu=1.0), load=6.0)
    assert "processes: on this machine they did not beat sequential" in text
    assert "did not beat sequential (0.97x)" in text
    assert "0.97 cores busy: other programs were using the rest (load average 6.0)" in text
    assert "so they ran at the same time" not in text
    assert "note: other programs took CPU time" in text


def test_gil_conclusions_name_one_core_and_a_slow_start_up() -> None:
    from plait.tour.scenes.gil import GilRun

    text = _gil_text(cores=1, processes=GilRun(wall=1.4, cpu=1.0), startup=0.3)
    assert "did not beat sequential (0.71x)" in text
    assert "only 1 usable core" in text
    assert "start-up took 300 ms per process, 21% of the run" in text


def test_gil_conclusions_own_up_to_threads_beating_the_gil() -> None:
    from plait.tour.scenes.gil import GilRun

    text = _gil_text(sequential=GilRun(wall=1.5, cpu=0.6), load=4.0)
    assert "threads: 1.47x faster than sequential, which the GIL does not allow" in text
    assert "the sequential run got less CPU (0.40 cores busy) than the threads (0.98)" in text
    assert "the sequential run kept 0.40 of 1 core(s) busy" in text
    assert "took turns" not in text


def test_gil_conclusions_on_a_free_threaded_build() -> None:
    from plait.tour.scenes.gil import GilRun

    text = _gil_text(gil=False, threads=GilRun(wall=0.52, cpu=1.0))
    assert "threads: 1.92x faster than sequential" in text
    assert "no GIL on this build, they ran in parallel" in text
    text = _gil_text(gil=False)
    assert "about the same as sequential (0.98x) although this build has no GIL" in text


def test_gil_conclusions_name_the_kernels_session_share() -> None:
    """Linux autogroup: two processes get one session's share while other sessions are
    busy, so they cannot beat one sequential run -- the scene says so when it fits."""
    from plait.tour.scenes.gil import GilRun

    text = _gil_text(
        autogroup=True,
        load=5.0,
        sequential=GilRun(wall=1.4, cpu=1.0),
        processes=GilRun(wall=1.45, cpu=1.0),
    )
    assert "did not beat sequential (0.97x)" in text
    assert "shares the CPU between sessions, not processes (autogroup)" in text
    assert "the sequential run got 0.71 cores, the two processes 0.69 together" in text
    assert "autogroup" not in _gil_text(autogroup=False, processes=GilRun(wall=1.45, cpu=1.0))
    assert "autogroup" not in _gil_text(autogroup=True)  # two cores busy: the share is no limit


def test_gil_processes_below_ideal_say_why() -> None:
    from plait.tour.scenes.gil import GilRun

    text = _gil_text(processes=GilRun(wall=0.7, cpu=1.0), load=3.0)
    assert "processes: 1.43x faster than sequential" in text
    assert "below the ideal 2x: start-up took 12 ms, 2% of the run" in text
    assert "they kept 1.43 of 2 cores busy" in text


def test_pool_coroutines_serves_each_run_its_own_10000(tour_output: str) -> None:
    """The count in the title is the count each run serves (not the sum of both runs)."""
    section = tour_output.split("pool-coroutines:", 1)[1].split("\n=== [", 1)[0]
    rows = [line.split() for line in section.splitlines() if line.strip()[:1].isdigit()]
    served = [row[3] for row in rows if len(row) > 3 and row[2] == "s"]
    assert served == ["10,000", "10,000"], section


def test_overlap_verdict_follows_the_timing() -> None:
    from plait.tour.scenes.threads import overlap_verdict

    assert "the waits overlapped -- 0.41 s" in overlap_verdict(0.41, 0.2, 0.4, "two threads")
    assert "did NOT overlap -- 0.58 s" in overlap_verdict(0.58, 0.2, 0.4, "two threads")


def test_join_daemon_variants_are_read_back_from_their_output() -> None:
    from plait.tour.scenes.threads import _VARIANTS, Observed

    no_join = "Begin listening\nBegin recording\nall over\nend listening\nend recording\n"
    assert Observed.read(no_join) == _VARIANTS[0][2]
    assert Observed.read(no_join) != _VARIANTS[1][2]  # join in the loop: no overlap
    in_turn = "Begin listening\nend listening\nBegin recording\nend recording\nall over\n"
    assert Observed.read(in_turn) == _VARIANTS[1][2]
    cut = Observed.read("Begin listening\nBegin recording\nall over\nend listening\n")
    assert cut == _VARIANTS[6][2]  # t2 daemon: blog cut off
    assert "only music's end printed" in cut.describe()


def test_race_and_event_words_follow_the_values() -> None:
    from plait.tour.scenes.primitives import event_explained, race_verdict

    assert race_verdict(0) == "all 100 updates applied, none lost"
    assert race_verdict(93) == "93 of the 100 updates were lost (only 7 applied)"
    first, second = event_explained(False, False)
    assert first.startswith('first "event set: False": printed before')
    assert "clear()ed it after waking" in second
    first, second = event_explained(True, True)
    assert first == 'first "event set: True": something had set it before the boss did'
    assert "had not cleared it yet" in second


def test_naps_verdict_says_whether_children_slept_together() -> None:
    from plait.tour.scenes.processes import naps_verdict

    together, startup = naps_verdict([(10.1, 10.3), (10.12, 10.32), (10.15, 10.35)], 10.0, 0.4)
    assert "all 3 children were asleep together for 0.15 s" in together
    assert "0.10 s passed before the first child began" in startup
    apart = naps_verdict([(10.1, 10.3), (10.3, 10.5), (10.5, 10.7)], 10.0, 0.75)
    assert "did NOT all overlap" in apart[0]


def test_pool_seed_conclusion_counts_workers_and_waves() -> None:
    from plait.tour.scenes.pool import seed_conclusion

    five = [(pid, 10.3 + 0.2 * (i // 5)) for i, pid in enumerate([1, 2, 3, 4, 5] * 2)]
    text = seed_conclusion(five, 10.0, 0.75)
    assert text.startswith("5 worker(s) took the 10 tasks, at most 2 each: 2 wave(s)")
    assert "first task between 0.30 s and 0.30 s (start-up)" in text
    assert "the last task ended at 0.70 s and close()/join() took 0.05 s more" in text
    one = [(1, 10.3 + 0.2 * i) for i in range(10)]
    assert "1 worker(s) took the 10 tasks, at most 10 each" in seed_conclusion(one, 10.0, 2.4)


def test_coroutines_conclusions_follow_the_runs() -> None:
    from plait.tour.scenes.pool import RequestsRun, coroutines_conclusions

    one = RequestsRun(1, startup=0.1, wall=2.0, served=10_000, here_busy=0.3, workers_busy=0.95)
    two = RequestsRun(2, startup=0.1, wall=1.1, served=10_000, here_busy=0.4, workers_busy=1.8)
    text = " ".join(coroutines_conclusions(one, two, cores=4, load=0.5))
    assert "2 processes were 1.82x faster than one" in text
    assert "more processes add cores" in text
    slow = RequestsRun(2, startup=0.1, wall=2.1, served=10_000, here_busy=0.9, workers_busy=1.0)
    text = " ".join(coroutines_conclusions(one, slow, cores=2, load=5.0))
    assert "on this machine 2 processes were not faster than one (0.95x)" in text
    assert "the server, one thread in this process, kept 0.90 cores busy" in text
    assert "other programs compete for the cores (load average 5.0)" in text
    assert "add cores" not in text
    idle = RequestsRun(1, startup=0.1, wall=6.0, served=10_000, here_busy=0.1, workers_busy=0.2)
    text = " ".join(coroutines_conclusions(idle, two, cores=2, load=7.0))
    assert "Not for more cores, though" in text
    assert "2x as many requests in flight" in text


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_tour_runs_from_a_fresh_install(tmp_path: Path) -> None:
    """What a new user does: a fresh venv, ``pip install .``, ``plait tour``."""
    root = Path(__file__).resolve().parent.parent
    source = tmp_path / "plait"
    shutil.copytree(
        root,
        source,
        ignore=shutil.ignore_patterns(".git", ".venv*", "build", "*.egg-info", "__pycache__"),
    )
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    bin_dir = venv / ("Scripts" if sys.platform == "win32" else "bin")
    subprocess.run(
        [str(bin_dir / "python"), "-m", "pip", "install", "-q", str(source)],
        check=True,
        timeout=600,
        stdin=subprocess.DEVNULL,
    )
    done = subprocess.run(
        [str(bin_dir / "plait"), "tour"],
        capture_output=True,
        text=True,
        encoding="utf-8",
        cwd=tmp_path,
        timeout=240,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert f"tour done: {len(all_scenes())} scene(s)" in done.stdout
