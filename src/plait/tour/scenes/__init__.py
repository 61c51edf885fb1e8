"""The tour's scene modules, in tour order.

To add scenes: write ``plait/tour/scenes/<topic>.py`` exposing ``SCENES: list[Scene]``
(see :mod:`plait.tour._framework`; name each scene ``<topic>-<what>``, keep it under a few
seconds on 2 cores, no input, print what it measured), then add ``"<topic>"`` to
``MODULES`` below — that one line is the whole registration. ``tests/test_tour.py`` runs
every registered scene.
"""

from __future__ import annotations

__all__ = ["MODULES"]

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

# Written, not registered yet: ``scaleout`` (the seed's Pool(5) on a local Dask cluster,
# issue 17) starts 5 Dask worker processes (5-17 s on 2 loaded cores), which pushes the
# whole tour past the 60 s that tests/test_tour.py gives it. Register it by adding
# "scaleout" above once that test allows for it; run it meanwhile with
# ``python -c "from plait.tour.scenes.scaleout import SCENES; SCENES[0].run()"``.
