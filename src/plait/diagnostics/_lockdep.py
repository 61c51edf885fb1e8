"""Lock-order checking (lockdep), in debug mode: an inversion is reported the first time
both orders have been *seen*, even on a run whose timing never deadlocked.

Locks are grouped into classes by where they were created (known for the locks that
``plait run`` makes for ``threading.Lock()``/``RLock()``, and for any lock passed to
:func:`note_created`); a lock whose creation was not seen is a class of its own. Each
time a strand takes a lock while holding others, the edge *held class -> new class* is
recorded with the line of both acquisitions; when the reverse edge is already known, a
:class:`plait.LockOrderWarning` names both classes and both orders' lines -- once per pair
of classes.
"""

from __future__ import annotations

import sys
import threading
import warnings
import weakref
from typing import Any

from plait._core.strands import Strand
from plait._errors import LockOrderWarning
from plait.diagnostics import _stacks

__all__ = ["LockOrder", "note_created"]


def _user_site() -> str:
    frame: Any = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename.startswith(_stacks._PLAIT_DIR):
        frame = frame.f_back
    return _stacks.site_of(frame)


class _Creation:
    __slots__ = ("sites",)

    def __init__(self) -> None:
        self.sites: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()


_creation = _Creation()


def note_created(lock: Any) -> Any:
    """Remember the caller's line as the class of ``lock`` (its creation site); return it."""
    try:
        _creation.sites[lock] = _user_site()
    except TypeError:
        pass
    return lock


class LockOrder:
    """The order graph of lock classes and what each strand holds now."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._class_of: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()
        self._held: dict[Strand, list[tuple[Any, str, str]]] = {}  # (lock, class, taken at)
        self._edges: dict[tuple[str, str], tuple[str, str]] = {}  # -> (held at, taken at)
        self._reported: set[frozenset[str]] = set()
        self._count = 0

    def _class(self, lock: Any, site: str) -> str:
        known = self._class_of.get(lock)
        if known is None:
            created = _creation.sites.get(lock)
            if created:
                known = f"created at {created}"
            else:  # no creation site: the lock is a class of its own
                self._count += 1
                known = f"plait.{type(lock).__name__} #{self._count}, first taken at {site}"
            self._class_of[lock] = known
        return known

    def acquired(self, strand: Strand, lock: Any, site: str) -> None:
        """``strand`` took ``lock`` at ``site``; warn if this inverts a known order."""
        warning = None
        with self._mutex:
            try:
                cls = self._class(lock, site)
            except TypeError:
                return
            held = self._held.setdefault(strand, [])
            for _, held_cls, held_at in held:
                if held_cls == cls:
                    continue
                self._edges.setdefault((held_cls, cls), (held_at, site))
                reverse = self._edges.get((cls, held_cls))
                pair = frozenset((held_cls, cls))
                if reverse is not None and pair not in self._reported:
                    self._reported.add(pair)
                    warning = _message(cls, held_cls, reverse, (held_at, site))
            held.append((lock, cls, site))
        if warning is not None:
            _warn_at_user_line(warning)

    def released(self, lock: Any) -> None:
        """``lock`` was released (by whichever strand): it is no longer held."""
        with self._mutex:
            for strand, held in list(self._held.items()):
                for i in range(len(held) - 1, -1, -1):
                    if held[i][0] is lock:
                        del held[i]
                        if not held:
                            del self._held[strand]
                        return


def _warn_at_user_line(text: str) -> None:
    """Warn as if from the user's line that took the lock (so filters by module work)."""
    frame: Any = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename.startswith(_stacks._PLAIT_DIR):
        frame = frame.f_back
    if frame is None:
        warnings.warn(LockOrderWarning(text), stacklevel=2)
        return
    warnings.warn_explicit(
        LockOrderWarning(text),
        LockOrderWarning,
        frame.f_code.co_filename,
        frame.f_lineno,
        module=frame.f_globals.get("__name__", "?"),
        registry=frame.f_globals.setdefault("__warningregistry__", {}),
    )


def _message(first: str, second: str, before: tuple[str, str], now: tuple[str, str]) -> str:
    return (
        "lock order inversion: two lock classes are taken in both orders, so two strands "
        "can deadlock on them:\n"
        f"  lock A ({first}) was held at {before[0]} when lock B ({second}) was taken at "
        f"{before[1]};\n"
        f"  now lock B was held at {now[0]} when lock A was taken at {now[1]}.\n"
        "Take them in one order everywhere."
    )
