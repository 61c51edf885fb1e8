"""The tour's scene modules, in tour order.

To add scenes: write ``plait/tour/scenes/<topic>.py`` exposing ``SCENES: list[Scene]``
(see :mod:`plait.tour._framework`; name each scene ``<topic>-<what>``, keep it under a few
seconds on 2 cores, no input, print what it measured), then add ``"<topic>"`` to
``MODULES`` below — that one line is the whole registration. ``tests/test_tour.py`` runs
every registered scene.
"""

from __future__ import annotations

__all__ = ["MODULES", "OPT_IN"]

MODULES: tuple[str, ...] = (
    "threads",  # S1, S2
    "primitives",  # S3-S8
    "processes",  # S10
    "queues",  # S9, S11, S16
    "pool",  # S14, S19
    "gil",  # S15
    "green",  # S17, S18
    "seeing",  # S5 seen: deadlocks, lock order, blocked loops (issue 13)
    "shared",  # S12 (issue 16)
)

#: Scenes that run only when named (``plait tour scaleout``): ``scaleout`` (the seed's
#: ``Pool(5)`` on a local Dask cluster, issue 17) starts five Dask worker processes, 5-17 s
#: on two loaded cores -- more than the rest of the tour together. ``plait tour --list``
#: shows them, marked.
OPT_IN: tuple[str, ...] = ("scaleout",)
