"""A robust process-shared lock in shared memory: a holder's death never wedges it.

A shared queue's state is guarded by one lock that every attached process takes for a few
microseconds per operation. A named POSIX semaphore (what ``multiprocessing`` uses) stays
taken for ever when its holder is killed inside; this lock is a ``pthread`` mutex with the
*robust* and *process-shared* attributes, placed in the object's own segment:

* the kernel records the holder (its thread id, in the mutex word, set atomically with the
  acquisition) and, when the holder dies, hands the mutex to the next acquirer with
  ``EOWNERDEAD``;
* that acquirer runs the object's ``repair`` (which makes the state consistent again, see
  ``_channels/_xproc``) and marks the mutex consistent. An object that cannot be repaired
  should mark itself broken in its own memory and return (so that every later caller sees
  it: glibc tells only the next acquirer that a mutex is not recoverable); a ``repair`` that
  raises leaves the mutex not recoverable, and that acquirer gets the error.

Waiting for it honours a deadline and the calling strand's cancel scopes: it is taken in
slices (the GIL released), with the strand's cancellation checked between them. The lock is
held only by plait's own code, for microseconds, so a slice is rarely needed at all.

Uncontended, ``acquire`` and ``release`` are one C call each (``plait._ipc._robust``); where
that extension is not built (or ``PLAIT_NO_SPEEDUPS=1``) the same glibc functions are called
through ``ctypes`` on the same memory, so processes with and without it share a lock.
"""

from __future__ import annotations

import ctypes
import errno
import os
import time
from collections.abc import Callable
from typing import Any

from plait._core import checkpoint
from plait._core import safepoint as _safepoint
from plait._errors import BrokenResourceError

__all__ = ["SIZE", "LockTimeout", "RobustLock", "Uncancellable"]

SIZE = 64  # bytes reserved for the mutex (glibc's pthread_mutex_t: 40 on x86-64, 48 on arm64)
_SPIN = 200  # a contended lock is usually free again within microseconds: try before sleeping
_SLICE = 0.02  # a blocked acquirer looks at its cancel scopes this often
_EBUSY, _ETIMEDOUT = errno.EBUSY, errno.ETIMEDOUT
_EOWNERDEAD = getattr(errno, "EOWNERDEAD", 130)
_ENOTRECOVERABLE = getattr(errno, "ENOTRECOVERABLE", 131)
_monotonic = time.monotonic


class LockTimeout(Exception):
    """The lock was not taken before the deadline (the caller turns it into its own error:
    ``queue.Empty``, ``queue.Full``, ``TimeoutError``)."""


def _native() -> Any:
    if os.environ.get("PLAIT_NO_SPEEDUPS"):  # (as for plait._speedups)
        return _CtypesRobust()
    try:
        from plait._ipc import _robust  # type: ignore[attr-defined]
    except ImportError:
        return _CtypesRobust()
    if _robust.SIZE > SIZE:  # pragma: no cover - a libc with a bigger mutex
        raise ImportError(f"pthread_mutex_t is {_robust.SIZE} bytes, more than {SIZE}")
    return _robust


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _CtypesRobust:
    """The C module's functions through ctypes (slower; the same mutex)."""

    def __init__(self) -> None:
        keep = ctypes.PyDLL(None)  # keeps the GIL: these calls never sleep
        free = ctypes.CDLL(None)  # releases the GIL: timedlock may sleep
        vp = [ctypes.c_void_p]
        self._try = keep.pthread_mutex_trylock
        self._unlock = keep.pthread_mutex_unlock
        self._consistent = keep.pthread_mutex_consistent
        self._timed = free.pthread_mutex_timedlock
        for fn in (self._try, self._unlock, self._consistent):
            fn.argtypes, fn.restype = vp, ctypes.c_int
        self._timed.argtypes = [ctypes.c_void_p, ctypes.POINTER(_Timespec)]
        self._timed.restype = ctypes.c_int
        self._keep = keep

    def init(self, addr: int) -> int:
        lib = self._keep
        attr = ctypes.create_string_buffer(64)
        rc = int(lib.pthread_mutexattr_init(attr))
        rc = rc or int(lib.pthread_mutexattr_setpshared(attr, 1))  # PTHREAD_PROCESS_SHARED
        rc = rc or int(lib.pthread_mutexattr_setrobust(attr, 1))  # PTHREAD_MUTEX_ROBUST
        rc = rc or int(lib.pthread_mutex_init(ctypes.c_void_p(addr), attr))
        lib.pthread_mutexattr_destroy(attr)
        return rc

    def trylock(self, addr: int) -> int:
        return int(self._try(addr))

    def unlock(self, addr: int) -> int:
        return int(self._unlock(addr))

    def consistent(self, addr: int) -> int:
        return int(self._consistent(addr))

    def timedlock(self, addr: int, seconds: float) -> int:
        until = time.time() + max(seconds, 0.0)
        ts = _Timespec(int(until), int((until % 1) * 1e9))
        return int(self._timed(addr, ctypes.byref(ts)))


_lib = _native()
_trylock = _lib.trylock
_unlock = _lib.unlock
#: A shared Lock's uncontended take and give in one C call each (``None`` without the C
#: module: the caller does trylock, read, store, unlock itself).
_take: Any = getattr(_lib, "take", None)
_give: Any = getattr(_lib, "give", None)
#: A shared Semaphore's take and give in C (``SemPort``; ``None`` without the C module).
SemPort: Any = getattr(_lib, "SemPort", None)


def set_process_tag(tag: int) -> None:
    """Tell the C module this process's tag, which its takes write (no-op without it)."""
    setter = getattr(_lib, "set_process_tag", None)
    if setter is not None:
        setter(tag)


_enter = _safepoint.enter
_leave = _safepoint.leave


class RobustLock:
    """The robust mutex at ``offset`` of the mapped buffer ``buf`` (see the module docstring).

    ``repair()`` runs, the lock held, when a holder died inside; ``what`` names the object
    in errors. While it is held, no signal-raised cancellation lands (a safe-point section).
    """

    __slots__ = ("_anchor", "addr", "repair", "what")

    def __init__(
        self,
        buf: memoryview,
        offset: int,
        *,
        create: bool,
        repair: Callable[[], None],
        what: str,
    ) -> None:
        region = (ctypes.c_char * SIZE).from_buffer(buf, offset)
        self._anchor = region  # keeps the mapping exported (and so alive) while we use it
        self.addr = ctypes.addressof(region)
        self.repair = repair
        self.what = what
        if create:
            rc = _lib.init(self.addr)
            if rc:
                raise OSError(rc, f"cannot create the lock of {what}: {errno.errorcode.get(rc)}")

    def acquire(self, deadline: float | None = None, cancellable: bool = True) -> None:
        """Take the lock; :class:`LockTimeout` once ``deadline`` (monotonic) passes.
        ``cancellable=False``: the caller's cancel scopes are not looked at (for a release
        or a give-back, which must not be lost to a cancellation; the lock is held for
        microseconds, so the wait is short)."""
        _enter()
        try:
            rc = _trylock(self.addr)
            if rc:
                self._slow(rc, deadline, cancellable)
        except BaseException:
            _leave()
            raise

    def release(self) -> None:
        _unlock(self.addr)
        _leave()

    __enter__ = acquire

    def __exit__(self, *exc: object) -> None:
        _unlock(self.addr)
        _leave()

    def _slow(self, rc: int, deadline: float | None, cancellable: bool = True) -> None:
        addr = self.addr
        spins = _SPIN
        while True:
            if rc == 0:
                return
            if rc == _EOWNERDEAD:
                self._recover()
                return
            if rc == _ENOTRECOVERABLE:
                raise BrokenResourceError(
                    f"{self.what} is broken: a process died while changing it and its state "
                    "could not be repaired; make a new one"
                )
            if rc not in (_EBUSY, _ETIMEDOUT):
                raise OSError(rc, f"cannot take the lock of {self.what}")
            if spins:
                spins -= 1
                rc = _trylock(addr)
                continue
            wait = _SLICE
            if deadline is not None:
                left = deadline - _monotonic()
                if left <= 0:
                    raise LockTimeout
                wait = min(wait, left)
            if cancellable:
                checkpoint()  # a cancelled scope (or one past its deadline) raises here
            rc = _lib.timedlock(addr, wait)

    def _recover(self) -> None:
        """We hold the lock a dead process held: repair the state, or leave it broken."""
        try:
            self.repair()
        except BaseException:
            _unlock(self.addr)  # not made consistent: unrecoverable for everyone from now on
            raise
        _lib.consistent(self.addr)

    def locked(self) -> bool:
        """Whether someone holds the lock now (a snapshot, for statistics)."""
        rc = _trylock(self.addr)
        if rc == 0:
            _unlock(self.addr)
            return False
        if rc == _EOWNERDEAD:
            try:
                self._recover()
            finally:
                _unlock(self.addr)
            return False
        return True


class Uncancellable:
    """A :class:`RobustLock` taken without looking at cancel scopes: for every change that
    must not be lost to a cancellation (a release, a give-back, a doorbell withdrawal, a
    ring passed on, a notify). The lock is held for microseconds, so such a wait is short."""

    __slots__ = ("lock",)

    def __init__(self, lock: RobustLock) -> None:
        self.lock = lock

    def acquire(self) -> None:
        self.lock.acquire(None, False)

    def release(self) -> None:
        self.lock.release()

    def __enter__(self) -> None:
        self.lock.acquire(None, False)

    def __exit__(self, *exc: object) -> None:
        self.lock.release()
