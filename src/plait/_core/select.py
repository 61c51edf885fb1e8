"""The select protocol's dispatch: how an object joins ``plait.select``, with no concrete types.

An object joins a select as a *case* (the five methods documented in
``plait._channels._select``). A type that cannot name its case's class without importing a
layer above its own (a primitive whose case lives beside ``select``) registers a maker here
instead; ``select`` asks :func:`case_of` before it asks the object's ``__select_case__``.
The kernel only keeps the table: it knows no primitive, queue or case class.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["case_of", "register_case"]

_makers: dict[type, Callable[[Any], Any]] = {}


def register_case(cls: type, make: Callable[[Any], Any]) -> None:
    """Make ``make(obj)`` the select case of every ``cls`` instance (subclasses included)."""
    if not isinstance(cls, type):
        raise TypeError(f"register_case() needs a class, not {cls!r}")
    if not callable(make):
        raise TypeError(f"register_case() needs a callable that makes the case, not {make!r}")
    _makers[cls] = make


def case_of(obj: Any) -> Any | None:
    """The registered select case of ``obj``, or ``None`` when its type registered none."""
    if not _makers:
        return None
    for klass in type(obj).__mro__:
        make = _makers.get(klass)
        if make is not None:
            return make(obj)
    return None
