"""``plait tour --trace DIR``: each scene recorded into its own trace and page."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, Protocol

from plait.trace.session import TraceOutputError, trace

__all__ = ["traced_in"]


class _Named(Protocol):
    name: str


def traced_in(folder: str) -> Callable[[Any], trace]:
    """A ``scene -> context`` that records ``folder/<scene>.json`` and ``<scene>.html``;
    makes ``folder`` first (a clear error, before any scene runs, if it cannot)."""
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as exc:
        raise TraceOutputError(
            f"cannot make the trace folder {folder!r} ({exc.strerror or exc}); choose a "
            f"folder you can write to"
        ) from exc
    if not os.access(folder, os.W_OK | os.X_OK):
        raise TraceOutputError(f"cannot write into the trace folder {folder!r}: permission denied")

    def around(scene: _Named) -> trace:
        base = os.path.join(folder, scene.name)
        return trace(base + ".json", html=base + ".html")

    return around
