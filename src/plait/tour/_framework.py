"""The tour's building blocks: a :class:`Scene`, the registry, and the runner.

A scene is one short, self-contained demonstration of a seed concept. It says what it
shows, runs with no input, prints what it measured and returns. Scenes live in
``plait/tour/scenes/<topic>.py``; each such module exposes ``SCENES: list[Scene]`` and is
listed once in ``plait/tour/scenes/__init__.py`` (that list is the tour's order).
"""

from __future__ import annotations

import importlib
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import TextIO

__all__ = [
    "Scene",
    "UnknownSceneError",
    "all_scenes",
    "run_scenes",
    "select",
    "stamp",
]


@dataclass(frozen=True)
class Scene:
    """One demonstration: ``run()`` prints what it measured and returns."""

    name: str
    title: str
    shows: str
    run: Callable[[], None]
    seed: str = ""  # the seed concept(s) it covers, e.g. "S1, S2"


class UnknownSceneError(LookupError):
    """A scene name that no module registers."""

    def __init__(self, names: Sequence[str], known: Sequence[str]) -> None:
        self.names = tuple(names)
        self.known = tuple(known)
        super().__init__(
            f"unknown scene(s): {', '.join(self.names)}; "
            f"`plait tour --list` shows the scenes: {', '.join(self.known)}"
        )


def all_scenes(opt_in: bool = False) -> list[Scene]:
    """Every registered scene, in tour order; a name is registered once. The tour runs
    these; with ``opt_in`` also the scenes that run only when named (``OPT_IN``)."""
    from plait.tour.scenes import MODULES, OPT_IN

    scenes: list[Scene] = []
    seen: set[str] = set()
    for module_name in MODULES + (OPT_IN if opt_in else ()):
        module = importlib.import_module(f"plait.tour.scenes.{module_name}")
        for scene in module.SCENES:
            if scene.name in seen:
                raise RuntimeError(f"scene {scene.name!r} is registered twice")
            seen.add(scene.name)
            scenes.append(scene)
    return scenes


def select(names: Iterable[str], scenes: Sequence[Scene] | None = None) -> list[Scene]:
    """The scenes named, in the order named; a name may also be a module's topic prefix."""
    pool = list(all_scenes(opt_in=True) if scenes is None else scenes)
    by_name = {s.name: s for s in pool}
    chosen: list[Scene] = []
    unknown: list[str] = []
    for name in names:
        if name in by_name:
            matches = [by_name[name]]
        else:
            matches = [s for s in pool if s.name.startswith(name + "-")]
        if not matches:
            unknown.append(name)
        chosen.extend(s for s in matches if s not in chosen)
    if unknown:
        raise UnknownSceneError(unknown, [s.name for s in pool])
    return chosen


def run_scenes(
    scenes: Sequence[Scene],
    out: TextIO | None = None,
    around: Callable[[Scene], AbstractContextManager[object]] | None = None,
) -> float:
    """Run ``scenes`` one after the other, each under a header; return the total seconds.

    ``around(scene)``, when given, is a context each scene runs in (``plait tour --trace``
    records each scene's trace in it)."""
    stream = sys.stdout if out is None else out
    total = 0.0
    for index, scene in enumerate(scenes, 1):
        stream.write(f"\n=== [{index}/{len(scenes)}] {scene.name}: {scene.title} ===\n")
        stream.write(f"shows: {scene.shows}\n\n")
        stream.flush()
        before = set(threading.enumerate())
        start = time.perf_counter()
        with nullcontext() if around is None else around(scene):
            scene.run()
        elapsed = time.perf_counter() - start
        total += elapsed
        _join_leftovers(before)
        stream.write(f"\n(scene took {elapsed:.2f} s)\n")
        stream.flush()
    stream.write(f"\ntour done: {len(scenes)} scene(s) in {total:.1f} s\n")
    stream.flush()
    return total


def stamp(t0: float) -> str:
    """``t+0.20s``: seconds since ``t0`` (a ``time.perf_counter()``), as the scenes print it."""
    return f"t+{time.perf_counter() - t0:.2f}s"


def _join_leftovers(before: set[threading.Thread], timeout: float = 5.0) -> None:
    """Give a scene's stray threads a moment so their output does not bleed into the next."""
    deadline = time.monotonic() + timeout
    for thread in threading.enumerate():
        if thread not in before and not thread.daemon:
            thread.join(max(0.0, deadline - time.monotonic()))
