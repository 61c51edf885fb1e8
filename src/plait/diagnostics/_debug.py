"""Debug mode: ``plait.debug(True)``, ``PLAIT_DEBUG=1`` or ``plait run``.

It installs an instrument, which makes every plait lock record its owner strand even on the
uncontended fast path (with no instrument that path records nothing, to stay as cheap as
the stdlib's), and records where each lock was taken, so that a ``DeadlockError`` names
every lock of a cycle and the line that took it. It costs a stack walk per acquisition:
for finding bugs, not for production.
"""

from __future__ import annotations

import os
import sys
import time
import weakref
from typing import Any

from plait._core.instruments import Instrument, add_instrument, remove_instrument
from plait._core.strands import Strand
from plait._sync._lock import _LockCore
from plait._sync._semaphore import Semaphore
from plait.diagnostics import _dump, _stacks, _waitfor
from plait.diagnostics._lockdep import LockOrder

__all__ = ["debug"]


def _caller_site() -> str:
    frame: Any = sys._getframe(2)
    while frame is not None and frame.f_code.co_filename.startswith(_stacks._PLAIT_DIR):
        frame = frame.f_back
    return _stacks.site_of(frame)


_SIGNAL: dict[Strand, int] = {}  # the holders of a semaphore used as a signal: none, ever


class _DebugInstrument(Instrument):
    """Records, for each plait lock, who took it last and where."""

    def __init__(self) -> None:
        self.taken: weakref.WeakKeyDictionary[Any, tuple[weakref.ref[Strand], str]] = (
            weakref.WeakKeyDictionary()
        )
        self.parked_at: weakref.WeakKeyDictionary[Strand, float] = weakref.WeakKeyDictionary()
        self.order = LockOrder()
        # semaphore -> {strand: permits it holds}: a semaphore's holders are its edges
        self.holders: weakref.WeakKeyDictionary[Any, dict[Strand, int]] = (
            weakref.WeakKeyDictionary()
        )

    def strand_parked(self, strand: Strand, on: object) -> None:
        try:
            self.parked_at[strand] = time.monotonic()
        except TypeError:
            pass

    def strand_unparked(self, strand: Strand, on: object, outcome: str) -> None:
        try:
            self.parked_at.pop(strand, None)
        except TypeError:
            pass

    def acquired(self, strand: Strand, resource: object) -> None:
        if not isinstance(resource, _LockCore):
            if isinstance(resource, Semaphore):
                held = self.holders.setdefault(resource, {})
                if held is not _SIGNAL:
                    held[strand] = held.get(strand, 0) + 1
            return
        site = _caller_site()
        try:
            self.taken[resource] = (weakref.ref(strand), site)
        except TypeError:  # a strand that cannot be weakly referenced: skip it
            pass
        try:
            self.order.acquired(strand, resource, site)
        except BaseException:
            # -W error made the LockOrderWarning an exception: the acquire raises it, and
            # holds nothing (a `with` whose __enter__ raised never runs its __exit__).
            self.order.released(resource)
            resource.release()  # type: ignore[attr-defined]
            raise

    def released(self, strand: Strand, resource: object) -> None:
        if isinstance(resource, _LockCore):
            self.order.released(resource)
        elif isinstance(resource, Semaphore):
            held = self.holders.get(resource)
            if held is not None and held is not _SIGNAL:
                n = held.pop(strand, 0) - 1
                if n > 0:
                    held[strand] = n
                elif n < 0:  # released by a strand that held none: a signal, not a pool
                    self.holders[resource] = _SIGNAL  # (for good: its holders mean nothing)


class _DebugState:
    __slots__ = ("instrument",)

    def __init__(self) -> None:
        self.instrument: _DebugInstrument | None = None


_state = _DebugState()


def debug(enabled: bool | None = None) -> bool:
    """Turn plait's debug mode on or off; return whether it was on (``None`` only asks).

    Debug mode records every lock's owner and the line that took it (so deadlock reports
    are complete for plain ``Lock`` objects too) and when each wait began (for dumps), and
    turns deadlock detection on.
    """
    was = _state.instrument is not None
    if enabled is None or enabled == was:
        return was
    if enabled:
        instrument = _DebugInstrument()
        _state.instrument = instrument
        _waitfor._taken_sites = instrument.taken
        _waitfor._sem_holders = instrument.holders
        _dump.since.parked_at = instrument.parked_at
        add_instrument(instrument)
        _waitfor.detect_deadlocks(True)
    else:
        instrument_now = _state.instrument
        assert instrument_now is not None
        remove_instrument(instrument_now)
        _state.instrument = None
        _waitfor._taken_sites = None
        _waitfor._sem_holders = None
        _dump.since.parked_at = None
    return was


def debug_from_env() -> bool:
    """Whether ``PLAIT_DEBUG`` asks for debug mode."""
    return os.environ.get("PLAIT_DEBUG", "").strip() not in ("", "0", "false", "no", "off")
