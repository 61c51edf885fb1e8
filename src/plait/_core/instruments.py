"""Instrument hooks: the one source that tracing and diagnostics read.

An :class:`Instrument` overrides the hooks it cares about. With none installed, each hook
site in plait costs one attribute check (``if hooks.active:``), so instruments are free
until someone asks for them.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from plait._core.strands import Strand

__all__ = ["Instrument", "add_instrument", "hooks", "remove_instrument"]


class Instrument:
    """Base class: override any of these; each is called on the strand's own thread."""

    #: A counting lane for the hottest hooks, ``sent``/``received`` from the C queue's
    #: coroutine fast paths, taken while this is the only instrument installed: ``None``
    #: (the hooks are called), or ``(register, number)`` -- the C code then counts each
    #: put/get in the queue itself (``_lane_puts``/``_lane_gets``, for ``_lane_number ==
    #: number``), after calling ``register(queue)`` the first time it counts that queue under
    #: ``number`` (its counts start from zero then). A new lane needs a new, unique number.
    #: A lane of six, ``(register, number, append, seq, strands, objects)``, also takes the
    #: C queue's coroutine parks, unparks and wakes (``strand_parked``/``strand_unparked``/
    #: ``woke``): each is ``append((code, time.monotonic_ns(), sid, id(on), b, next(seq)))``
    #: with code ``"pk"`` (b: ``None``), ``"up"`` (b: ``"woken"``) or ``"wk"`` (sid: the
    #: waker's, b: the woken strand's sid), while the strand's sid is in the set ``strands``
    #: and ``id(on)`` a key of the dict ``objects``; else the hook is called (see Recorder).
    lane: tuple[Any, ...] | None = None

    def strand_spawned(self, strand: Strand) -> None:
        """``strand`` was created and is about to start."""

    def strand_started(self, strand: Strand) -> None:
        """``strand`` began to run."""

    def strand_parked(self, strand: Strand, on: object) -> None:
        """``strand`` is about to wait for ``on``."""

    def strand_unparked(self, strand: Strand, on: object, outcome: str) -> None:
        """``strand`` stopped waiting for ``on``: ``outcome`` is woken/timeout/cancelled."""

    def strand_exited(self, strand: Strand, error: BaseException | None) -> None:
        """``strand`` finished, with ``error`` if it raised."""

    def woke(self, strand: Strand, woken: Strand, on: object) -> None:
        """``strand`` woke ``woken``, parked on ``on`` (set an event, notified a condition,
        released a lock or permit to it): called on the waker's thread as it delivers the
        wake-up, before ``woken`` runs again and reports ``strand_unparked``."""

    def acquired(self, strand: Strand, resource: object) -> None:
        """``strand`` now holds ``resource`` (a lock, a permit)."""

    def released(self, strand: Strand, resource: object) -> None:
        """``strand`` gave ``resource`` back."""

    def sent(self, strand: Strand, channel: object, item: Any) -> None:
        """``strand`` put ``item`` into ``channel``."""

    def received(self, strand: Strand, channel: object, item: Any) -> None:
        """``strand`` took ``item`` from ``channel``."""

    def task_ran(
        self, name: str, items: int, started_ns: int, ended_ns: int, strand: Strand | None = None
    ) -> None:
        """A pool worker ran one task (``items`` > 1: a chunk) of function ``name`` from
        ``started_ns`` to ``ended_ns`` (``time.monotonic_ns``), on the calling thread; on
        ``strand``'s track when given (a coroutine worker's slot), else the caller's."""


class _Hooks:
    """Fans each hook out to the installed instruments; ``active`` is falsy when none."""

    __slots__ = ("_lock", "active", "lane")

    def __init__(self) -> None:
        self.active: tuple[Instrument, ...] = ()
        self.lane: tuple[Any, ...] | None = None  # the only instrument's lane (C reads it)
        self._lock = threading.Lock()

    def add(self, instrument: Instrument) -> None:
        with self._lock:
            if instrument not in self.active:
                self.lane = None  # (first: the C code never takes a lane for the wrong set)
                self.active = (*self.active, instrument)
                self.lane = instrument.lane if len(self.active) == 1 else None

    def remove(self, instrument: Instrument) -> None:
        with self._lock:
            self.lane = None
            self.active = tuple(i for i in self.active if i is not instrument)
            self.lane = self.active[0].lane if len(self.active) == 1 else None

    def relane(self) -> None:
        """Take the only instrument's lane again (it made a new one)."""
        with self._lock:
            self.lane = self.active[0].lane if len(self.active) == 1 else None

    def spawned(self, strand: Strand) -> None:
        for i in self.active:
            i.strand_spawned(strand)

    def started(self, strand: Strand) -> None:
        for i in self.active:
            i.strand_started(strand)

    def parked(self, strand: Strand, on: object) -> None:
        for i in self.active:
            i.strand_parked(strand, on)

    def unparked(self, strand: Strand, on: object, outcome: str) -> None:
        for i in self.active:
            i.strand_unparked(strand, on, outcome)

    def exited(self, strand: Strand, error: BaseException | None) -> None:
        for i in self.active:
            i.strand_exited(strand, error)

    def woke(self, strand: Strand, woken: Strand, on: object) -> None:
        for i in self.active:
            i.woke(strand, woken, on)

    def acquired(self, strand: Strand, resource: object) -> None:
        for i in self.active:
            i.acquired(strand, resource)

    def released(self, strand: Strand, resource: object) -> None:
        for i in self.active:
            i.released(strand, resource)

    def sent(self, strand: Strand, channel: object, item: Any) -> None:
        for i in self.active:
            i.sent(strand, channel, item)

    def received(self, strand: Strand, channel: object, item: Any) -> None:
        for i in self.active:
            i.received(strand, channel, item)

    def task_ran(
        self, name: str, items: int, started_ns: int, ended_ns: int, strand: Strand | None = None
    ) -> None:
        for i in self.active:
            i.task_ran(name, items, started_ns, ended_ns, strand)


hooks = _Hooks()


def add_instrument(instrument: Instrument) -> None:
    """Install ``instrument`` process-wide."""
    if not isinstance(instrument, Instrument):
        raise TypeError(
            f"add_instrument() needs a plait.Instrument (subclass it and override the hooks "
            f"you need), not {type(instrument).__name__} {instrument!r}"
        )
    hooks.add(instrument)


def remove_instrument(instrument: Instrument) -> None:
    """Uninstall ``instrument``; unknown instruments are ignored."""
    hooks.remove(instrument)
