"""Shared-memory segments: named, mapped, owner-tagged, swept after crashes.

A :class:`Segment` is a POSIX shared-memory object (``/dev/shm/plait_*`` on Linux) mapped
into this process. plait opens them with ``_posixshmem`` directly rather than through
``multiprocessing.shared_memory`` so that no resource-tracker process warns about segments
that another process legitimately removes.

Names. Every long-lived object (a shared queue: its ring segment, its named semaphores,
the big-item segments written into it) shares one *owner-tagged prefix*::

    plait_<kind>_<family>_<pid>_<start>_<random>_

``pid`` and ``start`` (the process's start time in clock ticks since boot, from
``/proc/<pid>/stat``) name the process that created it: a pid that was reused by another
process has another start time, so a dead owner is never mistaken for a live one.
``family`` is the pid of the first plait process of a process tree (inherited through
``PLAIT_SHM_FAMILY``); it only tells whose names these are (a test session checks its own).

Holders. Every process that maps a long-lived segment opened with ``hold=True`` keeps a
shared ``flock`` on it for as long as it uses it; the kernel drops the lock when the
process dies, even by ``SIGKILL``. So "does anyone still use this?" is one non-blocking
exclusive ``flock`` away (:func:`held`), with no pid guessing.

Lifetime rules:

* A segment that carries one message (a large buffer) has one reader: the reader maps it
  and unlinks the name at once; the mapping -- and any NumPy array or ``memoryview`` built
  on it, without a copy -- stays valid until the last reference goes.
* A long-lived name set is removed by the last process that lets go of it (:func:`track`:
  when the object using it is collected, or at exit -- multiprocessing children too):
  processes still attached keep their mappings (the kernel frees the memory after the
  last one).
* If every holder was killed, :func:`sweep_dead` -- run when the next plait program starts
  (:func:`sweep_at_start`), by the next promotion in any plait process, and at exit --
  removes every name under a prefix whose owner is dead and whose anchor segment no live
  process holds. A live owner's names are never touched (it may be creating them right
  now), nor are names a live process still holds.
"""

from __future__ import annotations

import _posixshmem  # type: ignore[import-not-found]
import fcntl
import itertools
import mmap
import os
import re
import threading
import weakref
from multiprocessing import util as mp_util
from typing import Any

__all__ = [
    "SHM_DIR",
    "Segment",
    "exit_hook",
    "family",
    "held",
    "let_go",
    "my_tag",
    "new_prefix",
    "owner_alive",
    "owner_of",
    "remove",
    "start_ticks",
    "sweep_at_start",
    "sweep_dead",
    "track",
]

SHM_DIR = "/dev/shm"
FAMILY_ENV = "PLAIT_SHM_FAMILY"
_counter = itertools.count()
_POPULATE = getattr(mmap, "MAP_POPULATE", 0)
_lock = threading.Lock()
# plait_<kind>_<family>_<pid>_<start>_<random>_ (a named semaphore's file: "sem." first)
_OWNED = re.compile(r"(?:sem\.)?(plait_[a-z]+_(\d+)_(\d+)_(\d+)_[0-9a-f]+_)")
ANCHOR = "ring"  # the held segment of every owner-tagged name set (a shared queue's ring)


def family() -> str:
    """The pid of the first plait process of this process tree (set for children to inherit)."""
    fam = os.environ.get(FAMILY_ENV, "")
    if not fam.isdigit():
        fam = str(os.getpid())
        os.environ[FAMILY_ENV] = fam
    return fam


family()  # at import: children started from here on inherit it


def start_ticks(pid: int) -> int | None:
    """The start time of process ``pid`` (clock ticks since boot); ``None`` if it is gone
    (a zombie counts as gone: it holds no resources), ``-1`` if this system cannot tell."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except FileNotFoundError:
        return None
    except OSError:
        return -1
    fields = stat[stat.rfind(b")") + 2 :].split()
    if fields[0] in (b"Z", b"X"):
        return None
    return int(fields[19])


_me: tuple[int, int] = (0, 0)


def _my_tag() -> tuple[int, int]:
    global _me
    pid = os.getpid()
    if _me[0] != pid:  # first use, or a forked child
        _me = (pid, start_ticks(pid) or 0)
    return _me


def my_tag() -> tuple[int, int]:
    """``(pid, start)`` of the calling process (see :func:`start_ticks`)."""
    return _my_tag()


def new_prefix(kind: str) -> str:
    """A fresh owner-tagged name prefix for the calling process (``kind``: letters only)."""
    import secrets  # (here: it costs 2 ms at import, and plait imports this module)

    pid, start = _my_tag()
    return f"plait_{kind}_{family()}_{pid}_{start}_{secrets.token_hex(5)}_"


def owner_of(name: str) -> tuple[str, int, int, int] | None:
    """``(prefix, family, pid, start)`` of an owner-tagged name (a ``sem.`` file too)."""
    m = _OWNED.match(name)
    if m is None:
        return None
    return m.group(1), int(m.group(2)), int(m.group(3)), int(m.group(4))


def owner_alive(pid: int, start: int) -> bool:
    """Whether the process that created a name still runs (the same process, not a reuse
    of its pid). Where start times cannot be read, any process with that pid counts."""
    ticks = start_ticks(pid)
    if ticks is None:
        return False
    if ticks == -1:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass
        return True
    return ticks == start


def _next_id() -> int:
    with _lock:
        return next(_counter)


class Segment:
    """One mapped shared-memory segment (create with ``size``, or open an existing name).

    With ``hold=True`` the process keeps a shared ``flock`` on it until :meth:`let_go`
    (or its death), so :func:`held` can tell whether anyone still uses it.
    """

    __slots__ = ("__weakref__", "buf", "lock_fd", "map", "name", "size")

    def __init__(
        self,
        name: str,
        size: int = 0,
        *,
        create: bool = False,
        populate: bool = True,
        hold: bool = False,
    ) -> None:
        self.name = name
        self.lock_fd = -1
        flags = os.O_RDWR | (os.O_CREAT | os.O_EXCL if create else 0)
        fd = _posixshmem.shm_open("/" + name, flags, mode=0o600)
        try:
            if hold:
                # A descriptor of its own: the mapping keeps a duplicate of ``fd`` (one
                # open file, one lock) that must not keep the hold after let_go().
                self.lock_fd = _posixshmem.shm_open("/" + name, os.O_RDONLY, mode=0o600)
                fcntl.flock(self.lock_fd, fcntl.LOCK_SH)
            if create:
                os.ftruncate(fd, max(size, 1))
            else:
                size = os.fstat(fd).st_size
            # A message segment is written or read in full: fault every page in at once.
            flags = mmap.MAP_SHARED | (_POPULATE if populate else 0)
            self.map = mmap.mmap(fd, max(size, 1), flags=flags)
        except BaseException:
            os.close(fd)
            self.let_go()
            if create:
                _unlink(name)
            raise
        os.close(fd)
        self.size = size
        self.buf = memoryview(self.map)

    @classmethod
    def create(cls, prefix: str, size: int) -> Segment:
        """A new segment named ``prefix<pid>_<n>``."""
        return cls(f"{prefix}{os.getpid()}_{_next_id()}", size, create=True)

    def unlink(self) -> None:
        """Remove the name (mappings stay valid until closed); idempotent."""
        _unlink(self.name)

    def let_go(self) -> None:
        """Drop this process's hold (the mapping stays usable); idempotent."""
        fd, self.lock_fd = self.lock_fd, -1
        if fd >= 0:
            os.close(fd)

    def close(self) -> None:
        """Unmap, if no exported view is alive; otherwise the mapping goes with the views."""
        self.let_go()
        try:
            self.buf.release()
            self.map.close()
        except BufferError:
            pass

    def __repr__(self) -> str:
        return f"<plait shm {self.name} {self.size} bytes>"


def _unlink(name: str) -> None:
    try:
        _posixshmem.shm_unlink("/" + name)
    except FileNotFoundError:
        pass


def _sem_unlink(name: str) -> None:
    import _multiprocessing  # type: ignore[import-not-found]

    try:
        _multiprocessing.sem_unlink("/" + name)
    except OSError:
        pass


def held(name: str) -> bool:
    """Whether any live process holds segment ``name`` (``False`` if it is gone)."""
    try:
        fd = _posixshmem.shm_open("/" + name, os.O_RDONLY, mode=0o600)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # (also drops the exclusive lock, if taken)
    return False


def _listdir() -> list[str]:
    try:
        return os.listdir(SHM_DIR)
    except OSError:  # no /dev/shm here
        return []


def remove(prefix: str, anchor: str | None = None) -> list[str]:
    """Unlink every segment and named semaphore under ``prefix``, ``prefix + anchor`` last
    (so a name set whose anchor is gone has been removed in full); return the names."""
    names = [n for n in _listdir() if n.startswith(prefix) or n.startswith("sem." + prefix)]
    last = None if anchor is None else prefix + anchor
    for name in names:
        if name == last:
            continue
        if name.startswith("sem."):
            _sem_unlink(name[4:])
        else:
            _unlink(name)
    if last is not None and last in names:
        _unlink(last)
    return names


def sweep_dead(anchor: str = ANCHOR) -> list[str]:
    """Remove what crashed processes left: every name under an owner-tagged prefix whose
    owner is dead, or that this process let go of earlier (:func:`let_go`), and whose
    ``prefix + anchor`` segment no live process holds (or is gone). Returns the names
    removed."""
    removed: list[str] = []
    for prefix in list(_deferred):  # ours: the processes that held them may have died
        if not held(prefix + anchor):
            _deferred.discard(prefix)
            removed += remove(prefix, anchor)
    dead: dict[str, bool] = {}
    alive: dict[tuple[int, int], bool] = {}
    for name in _listdir():
        owner = owner_of(name)
        if owner is None or owner[0] in dead:
            continue
        prefix, _fam, pid, start = owner
        if (pid, start) not in alive:
            alive[pid, start] = owner_alive(pid, start)
        dead[prefix] = not alive[pid, start]
    for prefix, is_dead in dead.items():
        if is_dead and not held(prefix + anchor):
            removed += remove(prefix, anchor)
    return removed


def sweep_at_start() -> None:
    """At plait's import, in the first plait process of a tree (not in its children, whose
    parent is alive): remove what killed plait processes of this user left (a sweep costs
    a listing of ``/dev/shm`` and one ``/proc`` read per distinct dead-looking owner)."""
    if os.environ.get(FAMILY_ENV) != str(os.getpid()):
        return
    try:
        sweep_dead(ANCHOR)
    except OSError:
        pass


# -- letting go: collected, or at exit ------------------------------------------------------

_finalizers: dict[int, Any] = {}  # a weakref.finalize per name set this process holds
_deferred: set[str] = set()  # prefixes let go of here while other processes held them


def let_go(prefix: str, anchor: Segment) -> None:
    """This process lets go of the names under ``prefix`` (``anchor`` is the segment it
    holds): the last process to do so removes them all -- anything a writer or reader that
    crashed mid-transfer left under the prefix too. Processes still attached keep going."""
    anchor.let_go()
    if held(prefix + ANCHOR):
        _deferred.add(prefix)  # someone still uses it: they remove it (or a later sweep)
    else:
        _deferred.discard(prefix)
        remove(prefix, ANCHOR)


def _release(key: int, prefix: str, anchor: Segment) -> None:
    _finalizers.pop(key, None)
    let_go(prefix, anchor)


def track(owner: object, prefix: str, anchor: Segment) -> None:
    """Let go of ``prefix`` when ``owner`` is collected, or when this process exits."""
    fin = weakref.finalize(owner, _release, id(owner), prefix, anchor)
    fin.atexit = False  # at exit, exit_hook lets go (after daemonic children ended)
    _finalizers[id(owner)] = fin


def exit_hook() -> None:
    """At exit (after multiprocessing ended its daemonic children): let go of every name
    set still held here, retry the ones others held earlier, sweep dead owners' names."""
    for fin in list(_finalizers.values()):
        # (detach, not call: weakref's own exit hook may have run already, and a
        # finalizer called after it does nothing)
        detached = fin.detach()
        if detached is not None:
            _obj, func, args, _kwargs = detached
            func(*args)
    sweep_dead(ANCHOR)  # (with the ones let go of earlier here)
    _deferred.clear()


class _ExitAnchor:
    """Re-arms the exit hook in a child: multiprocessing clears its finalizer registry
    when a child starts running -- after the objects it was given were unpickled."""


_exit_anchor = _ExitAnchor()


def _arm_exit_hook(_anchor: object = None) -> None:
    # multiprocessing runs this at exit in the main process and in its children (which
    # leave through os._exit, without atexit); a negative priority runs after it ended and
    # joined the daemonic children
    mp_util.Finalize(None, exit_hook, exitpriority=-10)


_arm_exit_hook()
mp_util.register_after_fork(_exit_anchor, _arm_exit_hook)
