"""``plait tour``: the seed tutorial's scenes, run and measured.

Each scene says what it shows and prints what it measured. See
:mod:`plait.tour.scenes` for how to add one.
"""

from __future__ import annotations

from plait.tour._framework import Scene, UnknownSceneError, all_scenes, run_scenes, select

__all__ = ["Scene", "UnknownSceneError", "all_scenes", "run_scenes", "select"]
