"""Where a pool's tasks run: plait's own worker processes, or a cluster engine.

``Pool(backend="local")`` (the default) runs tasks on plait's workers
(:class:`plait.pool._engine.Engine`). ``backend="dask"`` and ``backend="ray"`` hand the
same tasks -- the same chunks, the same pickled calls, the same replies -- to a Dask or
Ray cluster instead: the pool's front end (chunking, results, progress, ``max_pending``)
is unchanged, only the engine under it differs (:class:`~plait.pool._engine_base.EngineBase`).
Without ``address=`` the pool starts a cluster on this machine and stops it with itself.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from typing import Any

from plait.pool._engine_base import EngineBase

__all__ = ["BACKENDS", "BackendStarter", "open_backend"]

BACKENDS = ("local", "dask", "ray")

_PACKAGES = {"dask": ("distributed", "dask"), "ray": ("ray", "ray")}


class BackendStarter:
    """A checked backend choice; :meth:`start` connects (or starts a local cluster)."""

    def __init__(self, start: Callable[[], EngineBase]) -> None:
        self._start = start

    def start(self) -> EngineBase:
        return self._start()


def _require(backend: str) -> Any:
    module, extra = _PACKAGES[backend]
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(
            f"Pool(backend={backend!r}) needs the {module!r} package, which is not "
            f"installed: pip install 'plait[{extra}]'"
        ) from exc


def open_backend(
    backend: str,
    *,
    processes: int | None,
    address: str | None,
    connect_timeout: float,
    unsupported: dict[str, Any],
) -> BackendStarter:
    """Check a cluster backend's options (at the call); the starter connects later."""
    if backend not in BACKENDS:
        raise ValueError(
            f"unknown Pool backend {backend!r}: use one of {', '.join(map(repr, BACKENDS))}"
        )
    if backend == "local":
        raise ValueError(
            f"address={address!r} needs a cluster backend: pass backend='dask' or "
            "backend='ray' (the local pool runs on this machine's processes)"
        )
    if (
        isinstance(connect_timeout, bool)
        or not isinstance(connect_timeout, int | float)
        or math.isnan(connect_timeout)
        or connect_timeout <= 0
    ):
        raise ValueError(
            f"connect_timeout must be a positive number of seconds, not {connect_timeout!r}"
        )
    if address is not None and not isinstance(address, str):
        raise TypeError(
            f"address must be a str (such as 'tcp://host:8786') or None, not {address!r}"
        )
    given = [name for name, value in unsupported.items() if value is not None]
    if given:
        raise ValueError(
            f"{', '.join(given)} {'is' if len(given) == 1 else 'are'} not supported with "
            f"backend={backend!r}: the cluster manages its own worker processes (configure "
            "them there, or use backend='local')"
        )
    _require(backend)
    if backend == "dask":
        from plait.pool.backends._dask import DaskEngine

        return BackendStarter(lambda: DaskEngine(processes, address, float(connect_timeout)))
    from plait.pool.backends._ray import RayEngine

    return BackendStarter(lambda: RayEngine(processes, address, float(connect_timeout)))
